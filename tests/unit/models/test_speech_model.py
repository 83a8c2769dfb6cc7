"""The spoken-word classifier (dlx/models/speech.py): shapes through the front end, the
strided convolutions and the encoder (traced, not compiled: compiling is most of the
cost and the smoke run compiles it), and the standardised log-mel front end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import speech
from dlx.ops import audio

FAST = {"xla_backend_optimization_level": 0}  # compiling is most of these tests' time
TINY = dict(conv_channels=(8, 8), num_mels=16, num_layers=1, num_heads=2, features=8, hidden=8)


def test_output_shapes():
  model = speech.SpeechClassifier(num_classes=10, **TINY)
  waves = jax.ShapeDtypeStruct((3, 6400), jnp.float32)

  def run(waves):
    variables = model.init(jax.random.PRNGKey(0), waves)
    logits, state = model.apply(variables, waves, mutable=["intermediates"])
    return logits, state["intermediates"]["encoded"][0]

  logits, encoded = jax.eval_shape(run, waves)
  assert logits.shape == (3, 10)
  assert encoded.shape == (3, 21, 8)  # two stride-2 convolutions: 81 frames -> 41 -> 21


def test_front_end_is_a_standardised_log_mel():
  model = speech.SpeechClassifier(**TINY)
  waves = np.random.default_rng(0).standard_normal((2, 1600)).astype(np.float32)
  log_mel = jax.jit(lambda w: model.apply({}, w, method=model.log_mel), compiler_options=FAST)
  features = np.asarray(log_mel(waves))
  assert features.shape == (2, audio.num_frames(1600, 200, 80), 16)
  raw = np.asarray(audio.log_mel_spectrogram(waves, 8000, 200, 80, 256, num_mels=16))
  expected = (raw - raw.mean((1, 2), keepdims=True)) / raw.std((1, 2), keepdims=True)
  np.testing.assert_allclose(features, expected, atol=1e-3)
  # A louder recording gives the same features.
  np.testing.assert_allclose(np.asarray(log_mel(7.0 * waves)), features, atol=1e-3)


def test_audio_must_be_batch_by_samples():
  model = speech.SpeechClassifier(**TINY)
  with pytest.raises(ValueError, match="batch, samples"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((2, 1600, 1)))


def test_spec_augment_zeroes_one_span_of_frames_and_one_of_bands():
  model = speech.SpeechClassifier(time_masks=1, time_mask_width=5, freq_masks=1, **TINY)
  features = jnp.ones((16, 30, 12))
  masked = np.asarray(
    jax.jit(
      lambda f: model.apply({}, f, jax.random.PRNGKey(0), method=model.spec_augment),
      compiler_options=FAST,
    )(features)
  )
  for example in masked:
    zero_frames = np.flatnonzero((example == 0).all(1))
    zero_bands = np.flatnonzero((example == 0).all(0))
    for span, width in ((zero_frames, 5), (zero_bands, 8)):
      assert len(span) <= width
      if len(span):
        assert span[-1] - span[0] == len(span) - 1  # contiguous
    # Everything outside the two spans is kept.
    kept = np.delete(np.delete(example, zero_frames, 0), zero_bands, 1)
    assert (kept == 1).all()
  assert (masked == 0).any()
