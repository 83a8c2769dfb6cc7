"""The speech encoder-decoder (dlx/models/speech_seq2seq.py): shapes, a causal decoder,
and greedy decoding against a step-by-step loop over the teacher-forced model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import speech_seq2seq

FAST = {"xla_backend_optimization_level": 0}  # compiling is most of these tests' time
TINY = dict(
  conv_channels=(8, 8), num_mels=16, num_layers=1, decoder_layers=1, num_heads=2, features=8
)
BOS = 1


def _model(**kwargs):
  return speech_seq2seq.SpeechTranscriber(vocab_size=13, max_length=5, hidden=8, **TINY, **kwargs)


@pytest.fixture(scope="module")
def tiny():
  """(model, variables, audio (3, 4000), target_in (3, 5))."""
  model = _model()
  rng = np.random.default_rng(0)
  audio = (0.1 * rng.standard_normal((3, 4000))).astype(np.float32)
  target_in = rng.integers(3, 13, (3, 5)).astype(np.int32)
  target_in[:, 0] = BOS
  init = jax.jit(lambda inputs: model.init(jax.random.PRNGKey(0), inputs), compiler_options=FAST)
  params = dict(init({"audio": audio, "target_in": target_in})["params"])
  # Bigger output weights: logits that differ clearly, so argmax ties never decide a test.
  params["output"] = {**params["output"], "kernel": 30.0 * params["output"]["kernel"]}
  return model, {"params": params}, audio, target_in


def test_shapes():
  model = _model()
  inputs = {
    "audio": jax.ShapeDtypeStruct((2, 24000), jnp.float32),
    "target_in": jax.ShapeDtypeStruct((2, 5), jnp.int32),
  }

  def run(inputs):
    variables = model.init(jax.random.PRNGKey(0), inputs)
    memory = model.apply(variables, inputs["audio"], method=model.encode)
    return model.apply(variables, inputs), memory

  logits, memory = jax.eval_shape(run, inputs)
  assert logits.shape == (2, 5, 13)
  assert memory.shape == (2, 76, 8)  # 301 frames -> 151 -> 76 after two stride-2 convs


def test_targets_longer_than_max_length_are_an_error(tiny):
  model, variables, audio, _ = tiny
  with pytest.raises(ValueError, match="max_length"):
    jax.eval_shape(
      model.apply, variables, {"audio": audio, "target_in": jnp.ones((3, 6), jnp.int32)}
    )


def test_decoder_is_causal(tiny):
  """Changing the tokens from position 3 on leaves the logits at positions 0-2 as they
  were (and changes those at 3 on)."""
  model, variables, audio, target_in = tiny
  apply = jax.jit(lambda inputs: model.apply(variables, inputs), compiler_options=FAST)
  changed = target_in.copy()
  changed[:, 3:] = 3 + (changed[:, 3:] - 2) % 10  # another word at every later position
  before = np.asarray(apply({"audio": audio, "target_in": target_in}))
  after = np.asarray(apply({"audio": audio, "target_in": changed}))
  np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-5)
  assert not np.allclose(after[:, 3:], before[:, 3:], atol=1e-3)


def test_logits_depend_on_the_audio(tiny):
  model, variables, audio, target_in = tiny
  apply = jax.jit(lambda inputs: model.apply(variables, inputs), compiler_options=FAST)
  one = np.asarray(apply({"audio": audio, "target_in": target_in}))
  other = np.asarray(apply({"audio": audio[::-1].copy(), "target_in": target_in}))
  assert not np.allclose(one[0], other[0], atol=1e-3)


def _loop_decode(model, variables, audio, eos_id):
  """Greedy decoding written plainly: run the teacher-forced model on BOS + the tokens
  so far (padded to one length: the causal mask hides the padding), append the argmax
  at the next position, stop after EOS."""
  apply = jax.jit(lambda inputs: model.apply(variables, inputs), compiler_options=FAST)
  length = model.max_length
  out = []
  for example in audio:
    tokens = []
    while len(tokens) < length and eos_id not in tokens:
      target_in = np.zeros((1, length), np.int32)
      target_in[0, : len(tokens) + 1] = [BOS, *tokens]
      logits = apply({"audio": example[None], "target_in": target_in})
      tokens.append(int(np.argmax(logits[0, len(tokens)])))
    out.append(tokens + [0] * (length - len(tokens)))
  return np.array(out)


# This random model says 12 first and 7 in the middle of one example: as EOS they end
# every sequence at once, or one after three tokens.
@pytest.mark.parametrize("eos_id", [12, 7])
def test_greedy_decode_matches_a_plain_loop(tiny, eos_id):
  model, variables, audio, _ = tiny
  got = np.asarray(
    speech_seq2seq.greedy_decode(
      model, variables, audio, max_length=model.max_length, bos_id=BOS, eos_id=eos_id
    )
  )
  expected = _loop_decode(model, variables, audio, eos_id)
  np.testing.assert_array_equal(got, expected)
  assert got.shape == (3, 5) and got.dtype == np.int32
  assert np.any(got == 0)  # padding after an EOS
