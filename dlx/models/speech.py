"""A speech-recognition-style classifier (docs/curriculum.md#f23): waveform -> log-mel
spectrogram -> 1-D convolutions over time -> Transformer encoder -> one label.

The course's recipe for speech: turn the sound into a spectrogram, run a few 1-D
convolutions over its frames (strided, so a Transformer sees fewer, richer time steps),
then a Transformer encoder. Here a word is one label, so the encoder's outputs are
mean-pooled over time into a classifier (keyword spotting; a CTC or decoder head would
read the same encoder outputs to spell a sentence).

The front end runs inside the model, on raw audio, so the checkpoint holds everything
between the waveform and the label: a periodic-Hann STFT (`dlx.ops.audio`), an HTK mel
filterbank and the log, then each utterance's log-mel standardised to zero mean and unit
variance (a recording's gain becomes an additive constant in the log, which this
removes). The FFT runs in float32; under bfloat16 compute the mel projection, the
convolutions and the encoder run in bfloat16. In training, SpecAugment's time and
frequency masks (Park et al. 2019; off unless `time_masks` / `freq_masks` are set)
hide spans of the features, which helps the model carry over to new speakers.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense
from dlx.nn.transformer import Encoder
from dlx.nn.transformer import sinusoidal_positions
from dlx.ops import audio


class SpeechClassifier(nn.Module):
  """audio (B, samples) -> logits (B, num_classes); with num_classes=0, the encoder's
  outputs (B, steps, features).

  Frames: `frame_length` samples every `hop_length` (25 ms every 10 ms at 8 kHz), FFT of
  `fft_length`, `num_mels` mel bands; each conv layer (kernel `conv_kernel`, stride
  `conv_stride`, GELU) divides the frame rate by its stride. The encoder (pre-norm, GELU)
  sees the strided frames projected to `features` dims plus sinusoidal positions.
  """

  num_classes: int = 10
  sample_rate: int = 8000
  frame_length: int = 200
  hop_length: int = 80
  fft_length: int = 256
  num_mels: int = 40
  conv_channels: Sequence[int] = (64, 64)
  conv_kernel: int = 5
  conv_stride: int = 2
  num_layers: int = 2
  num_heads: int = 4
  features: int = 64
  hidden: int = 128
  dropout_rate: float = 0.1
  time_masks: int = 0  # SpecAugment in training: this many masks of up to
  time_mask_width: int = 10  # this many frames,
  freq_masks: int = 0  # and this many of up to
  freq_mask_width: int = 8  # this many mel bands, set to 0 (the mean)

  def log_mel(self, waves):
    """(B, samples) -> (B, frames, num_mels) standardised log-mel features (float32, or
    the input's dtype under mixed precision)."""
    if waves.ndim != 2:
      raise ValueError(f"SpeechClassifier expects audio (batch, samples), got {waves.shape}")
    dtype = waves.dtype
    features = audio.log_mel_spectrogram(
      waves.astype(jnp.float32),
      self.sample_rate,
      self.frame_length,
      self.hop_length,
      self.fft_length,
      num_mels=self.num_mels,
      compute_dtype=dtype,
    ).astype(jnp.float32)
    mean = jnp.mean(features, axis=(1, 2), keepdims=True)
    std = jnp.std(features, axis=(1, 2), keepdims=True)
    return ((features - mean) / (std + 1e-5)).astype(dtype)

  def spec_augment(self, features, rng):
    """SpecAugment (Park et al. 2019) without time warping: zero `time_masks` random
    spans of up to `time_mask_width` frames and `freq_masks` spans of up to
    `freq_mask_width` bands of each utterance's (standardised) log-mel."""
    batch, frames, bands = features.shape
    keep = jnp.ones((batch, frames, bands), bool)
    masks = [(self.time_masks, self.time_mask_width, frames, 1)]
    masks.append((self.freq_masks, self.freq_mask_width, bands, 2))
    for count, width, size, axis in masks:
      position = jnp.arange(size)
      for _ in range(count):
        rng, width_rng, start_rng = jax.random.split(rng, 3)
        w = jax.random.randint(width_rng, (batch, 1), 0, width + 1)
        start = jax.random.randint(start_rng, (batch, 1), 0, jnp.maximum(size - w, 0) + 1)
        inside = (position >= start) & (position < start + w)  # (batch, size)
        keep &= jnp.expand_dims(~inside, 3 - axis)
    return jnp.where(keep, features, jnp.zeros_like(features))

  @nn.compact
  def __call__(self, waves, train: bool = False):
    x = self.log_mel(waves)
    if train and (self.time_masks or self.freq_masks):
      x = self.spec_augment(x, self.make_rng("dropout"))
    for i, channels in enumerate(self.conv_channels):
      x = FlaxConv(
        channels,
        (self.conv_kernel,),
        strides=(self.conv_stride,),
        padding="SAME",
        name=f"conv_{i}",
      )(x)
      x = nn.gelu(x)
    x = Dense(self.features, name="project")(x)
    x = x + sinusoidal_positions(x.shape[1], self.features).astype(x.dtype)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    x = Encoder(
      self.num_layers,
      self.num_heads,
      self.features,
      self.hidden,
      self.dropout_rate,
      norm="pre",
      activation="gelu",
      name="encoder",
    )(x, train=train)
    self.sow("intermediates", "encoded", x)
    if not self.num_classes:  # the encoder alone, for a decoder (dlx/models/speech_seq2seq.py)
      return x
    return Dense(self.num_classes, name="head")(jnp.mean(x, axis=1))
