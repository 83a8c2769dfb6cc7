"""Tokenizers: text <-> lists of integer ids, at three granularities.

Every tokenizer has `encode(text) -> list[int]`, `decode(ids) -> str`, `vocab_size`,
the special ids `pad_id`, `bos_id`, `eos_id`, `unk_id` (None where it has none) and
`save(path)`; `load(path)` reads any of them back. `encode` never adds BOS / EOS: the
caller decides where sequences start and end.

* `CharTokenizer`: one id per character; the vocabulary is the sorted set of characters.
* `WordTokenizer`: words and punctuation marks; ids 0-3 are <pad> <bos> <eos> <unk>, the
  same convention as the sequence tasks in `dlx.data.sequences`.
* `SentencePieceTokenizer`: subwords (BPE or unigram) learned by the `sentencepiece`
  package from a corpus; frequent character runs become single pieces.
"""

import collections
import io
import json
import os
import re
from typing import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
WORD_SPECIALS = (PAD, BOS, EOS, UNK)

# A word is letters / digits, with inner apostrophes or hyphens ("o'er", "to-night");
# "--" is one token; any other non-space character is a token on its own.
_WORD_PATTERN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|--|\S")
_NO_SPACE_BEFORE = frozenset(".,;:!?)]}") | {"--"}
_NO_SPACE_AFTER = frozenset("([{") | {"--"}


class CharTokenizer:
  """One id per character, in sorted character order.

  Unknown characters raise a ValueError, unless `unk` names a character that stands in
  for them (it is added to the vocabulary). Round trips are exact on any text made of
  vocabulary characters."""

  def __init__(self, chars: Sequence[str], unk: str | None = None):
    chars = list(chars)
    if unk is not None and unk not in chars:
      chars.append(unk)
    if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
      raise ValueError("chars must be distinct single characters")
    self.chars = chars
    self.unk = unk
    self._ids = {c: i for i, c in enumerate(chars)}

  @classmethod
  def fit(cls, text: str | Iterable[str], unk: str | None = None) -> "CharTokenizer":
    """The sorted characters of `text` (a string or an iterable of strings)."""
    seen = set(text) if isinstance(text, str) else set().union(*map(set, text))
    return cls(sorted(seen), unk=unk)

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  pad_id = bos_id = eos_id = None

  @property
  def unk_id(self) -> int | None:
    return None if self.unk is None else self._ids[self.unk]

  def encode(self, text: str) -> list[int]:
    try:
      return [self._ids[c] for c in text]
    except KeyError:
      if self.unk is not None:
        return [self._ids.get(c, self.unk_id) for c in text]
      unknown = sorted(set(text) - set(self._ids))
      raise ValueError(
        f"characters not in the vocabulary: {unknown!r}; fit on more text or pass unk="
      ) from None

  def decode(self, ids: Iterable[int]) -> str:
    return "".join(self.chars[i] for i in ids)

  def to_json(self) -> dict:
    return {"type": "char", "chars": self.chars, "unk": self.unk}

  def save(self, path: str) -> None:
    _write_json(path, self.to_json())


class WordTokenizer:
  """Words and punctuation marks, ids 0-3 = <pad> <bos> <eos> <unk>, then the vocabulary
  by decreasing frequency (ties alphabetical).

  `encode` drops whitespace (line breaks included) and maps words outside the vocabulary
  to <unk>; with `lowercase` it lowercases first. `decode` joins tokens with one space,
  except none before `. , ; : ! ? ) ] }` and none after `( [ {`, and none around "--".
  So `decode(encode(text)) == text` exactly when `text` is in that normal form (single
  spaces, as `normalize` writes it, lowercased if `lowercase`) and all its words are in
  the vocabulary; for any text, `decode(encode(text)) == normalize(text)` when no word
  is unknown."""

  def __init__(self, vocab: Sequence[str], lowercase: bool = False):
    vocab = list(vocab)
    if tuple(vocab[: len(WORD_SPECIALS)]) != WORD_SPECIALS:
      raise ValueError(f"the vocabulary must start with {WORD_SPECIALS}")
    if len(set(vocab)) != len(vocab):
      raise ValueError("the vocabulary has duplicates")
    self.vocab = vocab
    self.lowercase = lowercase
    self._ids = {w: i for i, w in enumerate(vocab)}

  @classmethod
  def fit(
    cls,
    text: str | Iterable[str],
    max_vocab: int | None = None,
    lowercase: bool = False,
    min_count: int = 1,
  ) -> "WordTokenizer":
    """The tokens of `text` seen at least `min_count` times, the `max_vocab` most frequent
    (`max_vocab` counts the four special tokens)."""
    texts = [text] if isinstance(text, str) else text
    counts = collections.Counter()
    for t in texts:
      counts.update(split_words(t.lower() if lowercase else t))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    if max_vocab is not None:
      words = words[: max(0, max_vocab - len(WORD_SPECIALS))]
    return cls(list(WORD_SPECIALS) + words, lowercase=lowercase)

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

  def tokenize(self, text: str) -> list[str]:
    return split_words(text.lower() if self.lowercase else text)

  def encode(self, text: str) -> list[int]:
    return [self._ids.get(w, self.unk_id) for w in self.tokenize(text)]

  def decode(self, ids: Iterable[int]) -> str:
    return join_words(self.vocab[i] for i in ids)

  def normalize(self, text: str) -> str:
    """The text `decode(encode(text))` gives back when every word is known."""
    return join_words(self.tokenize(text))

  def to_json(self) -> dict:
    return {"type": "word", "vocab": self.vocab, "lowercase": self.lowercase}

  def save(self, path: str) -> None:
    _write_json(path, self.to_json())


def split_words(text: str) -> list[str]:
  """Words (with inner ' or -), "--", and single punctuation characters, in order."""
  return _WORD_PATTERN.findall(text)


def join_words(words: Iterable[str]) -> str:
  """The inverse of `split_words` on text written with the usual spacing."""
  out, previous = [], None
  for w in words:
    if out and w not in _NO_SPACE_BEFORE and previous not in _NO_SPACE_AFTER:
      out.append(" ")
    out.append(w)
    previous = w
  return "".join(out)


class SentencePieceTokenizer:
  """Subword pieces from a trained SentencePiece model (BPE or unigram).

  Trained models reserve ids 0-3 for <pad> <bos> <eos> <unk>, like `WordTokenizer`. With
  the default `normalization="identity"` the text is not rewritten (no NFKC, spaces and
  line breaks kept: "\\n" is a piece of its own), so round trips are exact on text made
  of characters seen in training."""

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top

    self.model_proto = bytes(model_proto)
    self.processor = spm.SentencePieceProcessor(model_proto=self.model_proto)

  @classmethod
  def train(
    cls,
    text_or_path: str | os.PathLike,
    vocab_size: int,
    *,
    model_type: str = "bpe",
    model_prefix: str | None = None,
    normalization: str = "identity",
    character_coverage: float = 1.0,
    byte_fallback: bool = False,
    seed_sentencepiece_size: int = 1_000_000,
    num_threads: int = 1,
  ) -> "SentencePieceTokenizer":
    """Trains on a text file (a path) or on a string, split into paragraphs at blank lines.

    With `model_prefix` the model is also written to `model_prefix + ".model"` (and the
    human-readable `.vocab`); otherwise it stays in memory (see `save`)."""
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top

    if model_type not in ("bpe", "unigram"):
      raise ValueError(f"model_type must be 'bpe' or 'unigram', not {model_type!r}")
    if isinstance(text_or_path, os.PathLike) or os.path.isfile(text_or_path):
      with open(text_or_path, encoding="utf-8") as f:
        text = f.read()
    else:
      text = text_or_path
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
      sentence_iterator=iter(paragraphs),
      model_writer=writer,
      vocab_size=vocab_size,
      model_type=model_type,
      character_coverage=character_coverage,
      normalization_rule_name=normalization,
      remove_extra_whitespaces=normalization != "identity",
      pad_id=0,
      bos_id=1,
      eos_id=2,
      unk_id=3,
      user_defined_symbols=["\n"],
      byte_fallback=byte_fallback,
      max_sentence_length=1 << 16,
      input_sentence_size=0,
      seed_sentencepiece_size=seed_sentencepiece_size,
      num_threads=num_threads,
      minloglevel=2,
    )
    tokenizer = cls(writer.getvalue())
    if model_prefix is not None:
      tokenizer.save(model_prefix + ".model")
      with open(model_prefix + ".vocab", "w", encoding="utf-8") as f:
        for i in range(tokenizer.vocab_size):
          f.write(f"{tokenizer.processor.id_to_piece(i)}\t{tokenizer.processor.get_score(i)}\n")
    return tokenizer

  @classmethod
  def load(cls, model_file: str) -> "SentencePieceTokenizer":
    with open(model_file, "rb") as f:
      return cls(f.read())

  @property
  def vocab_size(self) -> int:
    return self.processor.get_piece_size()

  def _special(self, i: int) -> int | None:
    return None if i < 0 else i

  @property
  def pad_id(self) -> int | None:
    return self._special(self.processor.pad_id())

  @property
  def bos_id(self) -> int | None:
    return self._special(self.processor.bos_id())

  @property
  def eos_id(self) -> int | None:
    return self._special(self.processor.eos_id())

  @property
  def unk_id(self) -> int | None:
    return self._special(self.processor.unk_id())

  def pieces(self, text: str) -> list[str]:
    return self.processor.encode(text, out_type=str)

  def encode(self, text: str) -> list[int]:
    return self.processor.encode(text)

  def decode(self, ids: Iterable[int]) -> str:
    return self.processor.decode([int(i) for i in ids])

  def save(self, path: str) -> None:
    """Writes the binary `.model` file (`load` reads it back)."""
    with open(path, "wb") as f:
      f.write(self.model_proto)


Tokenizer = CharTokenizer | WordTokenizer | SentencePieceTokenizer


def from_json(data: dict) -> CharTokenizer | WordTokenizer:
  if data["type"] == "char":
    return CharTokenizer(data["chars"], unk=data.get("unk"))
  if data["type"] == "word":
    return WordTokenizer(data["vocab"], lowercase=data["lowercase"])
  raise ValueError(f"unknown tokenizer type {data['type']!r}")


def load(path: str) -> Tokenizer:
  """A tokenizer saved by `save`: JSON for char / word, a `.model` file for SentencePiece."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    data = json.loads(raw.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError):
    return SentencePieceTokenizer(raw)
  return from_json(data)


def _write_json(path: str, data: dict) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(data, f, ensure_ascii=False)
