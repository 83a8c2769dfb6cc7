"""Captioned MNIST for CLIP (docs/curriculum.md#f16): every digit image is paired with a
short English caption made from a template, e.g. "a handwritten 7", "the number seven
written by hand", "an image of an eight".

Training pairs use the TRAIN_TEMPLATES; validation and test pairs use HELD_OUT_TEMPLATES,
word orders never seen in training built only from words that are (so no held-out token
has an untrained embedding), which makes zero-shot and retrieval scores honest about the
text tower generalising rather than matching strings it has seen. The vocabulary is fixed
(every word of every template and class name), so nothing depends on the data.

Every split holds, for N examples and captions padded to `max_length` tokens:

  inputs['image']  (N, 28, 28, 1) float32  intensities in [0, 1]
  inputs['text']   (N, max_length) int32   <bos> words <eos>, then <pad> (id 0)
  targets          (N,) int32              the digit 0-9
  template         (N,) int32              index into the split's template list

Captions follow from `seed`: each example's template and digit spelling are drawn once.
Inside `tfds_data.mocked(n)` the digits are tfds' random mock examples (smoke runs).
"""

import numpy as np

from dlx import errors
from dlx.data import core
from dlx.data import tfds_data
from dlx.data import tokenizers
from dlx.data import transforms

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# {word}: "seven", {digit}: "7", {a_word} / {a_digit}: the article before them ("an eight").
TRAIN_TEMPLATES = (
  "a handwritten {digit}",
  "a handwritten {word}",
  "the number {word} written by hand",
  "an image of {a_word} {word}",
  "a picture of the digit {digit}",
  "a photo of a handwritten {word}",
  "the digit {word}",
  "a drawing of the number {digit}",
  "this is {a_word} {word}",
  "{a_digit} {digit} written by hand",
  "a photo of the number {word}",
  "an image of the digit {digit}",
)
HELD_OUT_TEMPLATES = (
  "a photo of the digit {word}",
  "a drawing of {a_word} {word}",
  "the handwritten number {digit}",
  "this is the digit {word} written by hand",
)
ZERO_SHOT_TEMPLATE = HELD_OUT_TEMPLATES[0]
MAX_LENGTH = 12


def article(text: str) -> str:
  """'an' before a vowel sound ("an eight", "an 8", "an image"), else 'a'."""
  return "an" if text[0] in "aeiou8" else "a"


def caption(template: str, digit: int) -> str:
  word = NUMBER_WORDS[digit]
  return template.format(
    word=word, digit=str(digit), a_word=article(word), a_digit=article(str(digit))
  )


def tokenizer() -> tokenizers.WordTokenizer:
  """The fixed word vocabulary: the special tokens, then every word of every caption
  (sorted), so ids do not depend on the data or the seed."""
  words = set()
  for template in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES:
    for digit in range(10):
      words.update(tokenizers.split_words(caption(template, digit)))
  return tokenizers.WordTokenizer(list(tokenizers.WORD_SPECIALS) + sorted(words))


def encode(texts, tok: tokenizers.WordTokenizer, max_length: int = MAX_LENGTH) -> np.ndarray:
  """(N, max_length) int32: <bos> tokens <eos>, padded with <pad> (0); a caption that does
  not fit is an error."""
  out = np.full((len(texts), max_length), tok.pad_id, np.int32)
  for i, text in enumerate(texts):
    ids = [tok.bos_id, *tok.encode(text), tok.eos_id]
    if len(ids) > max_length:
      raise errors.ConfigError(
        f"caption {text!r} has {len(ids)} tokens with <bos>/<eos>; max_length is {max_length}"
      )
    out[i, : len(ids)] = ids
  return out


def caption_split(split: core.Split, templates, tok, rng, max_length: int) -> core.Split:
  """Images of a tfds split (uint8) paired with one caption each, from `templates`."""
  labels = split["targets"].astype(np.int32)
  choice = rng.integers(0, len(templates), len(labels)).astype(np.int32)
  table = [[caption(t, d) for d in range(10)] for t in templates]
  text = encode([table[c][y] for c, y in zip(choice, labels)], tok, max_length)
  images = transforms.scale_images(split)["inputs"]
  return {"inputs": {"image": images, "text": text}, "targets": labels, "template": choice}


def load_mnist_captions(
  *, data_dir=None, seed: int = 0, max_length: int = MAX_LENGTH, validation_fraction=0.1
) -> core.Dataset:
  """MNIST (read from the prepared tfds `data_dir`) with templated captions."""
  try:
    digits = tfds_data.load("mnist", data_dir=data_dir, validation_fraction=validation_fraction)
  except errors.DataNotFoundError as e:
    raise errors.DataNotFoundError(f"mnist_captions is made from tfds MNIST: {e}") from e
  if isinstance(digits.train, core.LazySplit):
    raise errors.ConfigError(
      "mnist_captions holds MNIST in memory; use --config.input_pipeline=memory"
    )
  tok = tokenizer()
  splits = {}
  for i, name in enumerate(core.SPLITS):
    templates = TRAIN_TEMPLATES if name == "train" else HELD_OUT_TEMPLATES
    rng = np.random.default_rng([seed, i])
    splits[name] = caption_split(digits.split(name), templates, tok, rng, max_length)
  info = dict(
    name="mnist_captions",
    num_classes=10,
    vocab=tok.vocab,
    max_length=max_length,
    train_templates=TRAIN_TEMPLATES,
    held_out_templates=HELD_OUT_TEMPLATES,
  )
  return core.Dataset(splits["train"], splits["validation"], splits["test"], info)


LOADERS = {"mnist_captions": load_mnist_captions}
