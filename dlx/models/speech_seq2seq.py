"""Speech recognition as sequence-to-sequence (docs/curriculum.md#f23): waveform ->
log-mel spectrogram -> strided 1-D convolutions -> Transformer encoder, then a
Transformer decoder that attends to the encoded audio and writes the words one token at
a time (an attention-based encoder-decoder, the course's recipe for speech).

The audio side is `dlx.models.speech.SpeechClassifier` without its head (num_classes=0):
the log-mel front end inside the model, SpecAugment in training, the strided
convolutions and a pre-norm encoder. The text side is the decoder of
`dlx.models.transformer.Transformer` (dlx.nn.transformer.Decoder: causal
self-attention over the words so far, cross-attention to every encoded audio step, the
FFN), pre-norm, with scaled token embeddings and sinusoidal positions. Training is
teacher forcing (target_in = BOS + the words); `greedy_decode` transcribes.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.models.speech import SpeechClassifier
from dlx.nn.attention import causal_mask
from dlx.nn.attention import combine_masks
from dlx.nn.attention import padding_mask
from dlx.nn.dense import Dense
from dlx.nn.transformer import Decoder
from dlx.nn.transformer import TokenEmbedding
from dlx.nn.transformer import sinusoidal_positions

# The fields handed to the audio encoder (see SpeechClassifier for their meaning).
_AUDIO_FIELDS = (
  "sample_rate",
  "frame_length",
  "hop_length",
  "fft_length",
  "num_mels",
  "conv_channels",
  "conv_kernel",
  "conv_stride",
  "num_heads",
  "features",
  "hidden",
  "dropout_rate",
  "time_masks",
  "time_mask_width",
  "freq_masks",
  "freq_mask_width",
)


class SpeechTranscriber(nn.Module):
  """{'audio': (B, samples), 'target_in': (B, T) int32} -> logits (B, T, vocab_size).

  `num_layers` encoder layers, `decoder_layers` decoder layers, both `features` wide with
  `num_heads` heads and an FFN of `hidden`; T <= max_length. Token `pad_id` in target_in
  is padding, hidden from the decoder's self-attention.
  """

  vocab_size: int
  max_length: int
  sample_rate: int = 8000
  frame_length: int = 200
  hop_length: int = 80
  fft_length: int = 256
  num_mels: int = 40
  conv_channels: Sequence[int] = (64, 64)
  conv_kernel: int = 5
  conv_stride: int = 2
  num_layers: int = 2
  decoder_layers: int = 2
  num_heads: int = 4
  features: int = 64
  hidden: int = 128
  dropout_rate: float = 0.1
  time_masks: int = 0
  time_mask_width: int = 10
  freq_masks: int = 0
  freq_mask_width: int = 8
  pad_id: int = 0

  def setup(self):
    audio = {name: getattr(self, name) for name in _AUDIO_FIELDS}
    self.audio_encoder = SpeechClassifier(num_classes=0, num_layers=self.num_layers, **audio)
    self.target_embedding = TokenEmbedding(
      self.vocab_size,
      self.features,
      scale=True,
      embedding_init=nn.initializers.normal(self.features**-0.5),
    )
    self.embedding_dropout = nn.Dropout(self.dropout_rate)
    self.decoder = Decoder(
      self.decoder_layers,
      self.num_heads,
      self.features,
      self.hidden,
      self.dropout_rate,
      norm="pre",
      activation="gelu",
    )
    self.output = Dense(self.vocab_size)

  def encode(self, audio, train: bool = False):
    """(B, samples) -> the encoded audio (B, steps, features)."""
    return self.audio_encoder(audio, train=train)

  def decode(self, target_in, memory, train: bool = False):
    """(B, T) tokens so far + encoded audio -> next-token logits (B, T, vocab_size)."""
    length = target_in.shape[1]
    if length > self.max_length:
      raise ValueError(f"target length {length} > max_length {self.max_length}")
    x = self.target_embedding(target_in)
    x = x + sinusoidal_positions(length, self.features).astype(x.dtype)
    x = self.embedding_dropout(x, deterministic=not train)
    mask = combine_masks(causal_mask(length), padding_mask(target_in, self.pad_id))
    # Every audio step is real (fixed-length utterances): no cross-attention mask.
    return self.output(self.decoder(x, memory, mask, None, train))

  def __call__(self, inputs, train: bool = False):
    memory = self.encode(inputs["audio"], train)
    return self.decode(inputs["target_in"], memory, train)


@functools.partial(jax.jit, static_argnames=("model", "max_length", "bos_id", "eos_id"))
def greedy_decode(model, variables, audio, *, max_length: int, bos_id: int, eos_id: int):
  """Greedy transcription: audio (B, samples) -> tokens (B, max_length) int32.

  The audio is encoded once; at step t the decoder re-reads [BOS, y_0 .. y_{t-1}] (no
  cache: T is a handful of words) and y_t is the argmax of its logits at t. After a
  sequence's EOS the rest is padding. `model` may be wrapped (mixed precision); it is
  static, so each model and shape compiles once.
  """
  memory = model.apply(variables, audio, method="encode")
  batch = audio.shape[0]
  pad_id = model.pad_id
  bos = jnp.full((batch, 1), bos_id, jnp.int32)

  def step(t, tokens):
    target_in = jnp.concatenate([bos, tokens[:, :-1]], axis=1)
    logits = model.apply(variables, target_in, memory, method="decode")
    token = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, t, 1, False), -1).astype(jnp.int32)
    finished = jnp.any(tokens == eos_id, axis=1)
    return tokens.at[:, t].set(jnp.where(finished, pad_id, token))

  tokens = jnp.full((batch, max_length), pad_id, jnp.int32)
  return jax.lax.fori_loop(0, max_length, step, tokens)
