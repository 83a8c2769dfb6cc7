"""Sequence-to-sequence tasks for encoder-decoder models (RNN seq2seq, Transformer).

Token ids: 0 = PAD, 1 = BOS, 2 = EOS; symbols (or words) start at 3. Every split holds

  source       (N, S) int32    the input sequence, padded with 0 (no BOS / EOS)
  target_in    (N, T) int32    BOS, then the target without its last step (teacher forcing)
  targets      (N, T) int32    the target tokens, then EOS, padded with 0
  target_mask  (N, T) float32  1 on the target tokens and the EOS, 0 on padding

so `target_in[:, 1:] == targets[:, :-1]` wherever the mask is 1. The length of an
example is `target_mask.sum(1) - 1`.

Synthetic tasks (`copy_task`, `reverse_task`, `sort_task`) draw random symbol strings of
lengths uniform in [min_length, max_length]; every source string occurs once in the whole
dataset, so validation and test strings are never seen in training. `test_lengths`
makes the test split longer (e.g. train on 1-10, test on 11-20) to measure length
generalisation; all splits are then padded to the same widths.

`reorder_task` is the course's word-order task (docs/curriculum.md#d7): the source is a
real sentence from the Shakespeare plays with its words shuffled and its final mark kept
last, the target is the sentence, e.g. "The mat cat sat the on." -> "The cat sat on the mat."
"""

import functools

import numpy as np

from dlx.data import core
from dlx.data import text
from dlx.data import tokenizers

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_SYMBOL_ID = 3


def encoder_decoder_split(
  sources, targets, source_length: int | None = None, target_length: int | None = None
) -> core.Split:
  """Pads lists of id sequences into the four arrays described in the module docstring.

  `target_length` counts the EOS; both default to the longest sequence here."""
  source_length = source_length or max(map(len, sources))
  target_length = target_length or max(map(len, targets)) + 1
  n = len(sources)
  source = np.full((n, source_length), PAD_ID, np.int32)
  target_in = np.full((n, target_length), PAD_ID, np.int32)
  target_out = np.full((n, target_length), PAD_ID, np.int32)
  for i, (s, t) in enumerate(zip(sources, targets)):
    source[i, : len(s)] = s
    target_in[i, : len(t) + 1] = [BOS_ID, *t]
    target_out[i, : len(t) + 1] = [*t, EOS_ID]
  mask = np.zeros((n, target_length), np.float32)
  mask[np.arange(target_length) < np.array([len(t) + 1 for t in targets])[:, None]] = 1
  return {"source": source, "target_in": target_in, "targets": target_out, "target_mask": mask}


def random_sequences(
  rng: np.random.Generator,
  count: int,
  min_length: int,
  max_length: int,
  num_symbols: int,
  seen: set,
) -> list[tuple]:
  """`count` random symbol strings not in `seen` (which they are added to), distinct."""
  found = []
  stalled = 0
  while len(found) < count:
    batch = 2 * (count - len(found)) + 16
    lengths = rng.integers(min_length, max_length + 1, size=batch)
    symbols = rng.integers(FIRST_SYMBOL_ID, FIRST_SYMBOL_ID + num_symbols, size=(batch, max_length))
    before = len(found)
    for length, row in zip(lengths, symbols):
      sequence = tuple(int(x) for x in row[:length])
      if sequence not in seen and len(found) < count:
        seen.add(sequence)
        found.append(sequence)
    stalled = 0 if len(found) > before else stalled + 1
    if stalled > 20:
      raise ValueError(
        f"could not draw {count} distinct strings of length {min_length}-{max_length} "
        f"over {num_symbols} symbols; allow longer strings or more symbols"
      )
  return found


def _symbol_task(
  name,
  transform,
  num_train,
  num_validation,
  num_test,
  min_length,
  max_length,
  num_symbols,
  seed,
  test_lengths,
) -> core.Dataset:
  rng = np.random.default_rng(seed)
  seen = set()
  test_min, test_max = test_lengths or (min_length, max_length)
  sources = {
    "train": random_sequences(rng, num_train, min_length, max_length, num_symbols, seen),
    "validation": random_sequences(rng, num_validation, min_length, max_length, num_symbols, seen),
    "test": random_sequences(rng, num_test, test_min, test_max, num_symbols, seen),
  }
  longest = max(max_length, test_max)
  splits = {
    s: encoder_decoder_split(x, [transform(seq) for seq in x], longest, longest + 1)
    for s, x in sources.items()
  }
  info = dict(
    name=name,
    num_symbols=num_symbols,
    vocab_size=FIRST_SYMBOL_ID + num_symbols,
    pad_id=PAD_ID,
    bos_id=BOS_ID,
    eos_id=EOS_ID,
    first_symbol_id=FIRST_SYMBOL_ID,
    min_length=min_length,
    max_length=max_length,
    test_lengths=(test_min, test_max),
    max_source_length=longest,
    max_target_length=longest + 1,
  )
  return core.Dataset(splits["train"], splits["validation"], splits["test"], info)


def copy_task(
  num_train: int = 10_000,
  num_validation: int = 1_000,
  num_test: int = 1_000,
  min_length: int = 1,
  max_length: int = 10,
  num_symbols: int = 10,
  seed: int = 0,
  test_lengths: tuple[int, int] | None = None,
) -> core.Dataset:
  """Target = source. `num_symbols` distinct symbols, ids 3 .. 2 + num_symbols;
  `info["vocab_size"]` (= num_symbols + 3) sizes the embedding tables."""
  return _symbol_task(
    "copy",
    list,
    num_train,
    num_validation,
    num_test,
    min_length,
    max_length,
    num_symbols,
    seed,
    test_lengths,
  )


def reverse_task(
  num_train: int = 10_000,
  num_validation: int = 1_000,
  num_test: int = 1_000,
  min_length: int = 1,
  max_length: int = 10,
  num_symbols: int = 10,
  seed: int = 0,
  test_lengths: tuple[int, int] | None = None,
) -> core.Dataset:
  """Target = source reversed (arguments as in `copy_task`)."""
  return _symbol_task(
    "reverse",
    lambda s: list(s[::-1]),
    num_train,
    num_validation,
    num_test,
    min_length,
    max_length,
    num_symbols,
    seed,
    test_lengths,
  )


def sort_task(
  num_train: int = 10_000,
  num_validation: int = 1_000,
  num_test: int = 1_000,
  min_length: int = 1,
  max_length: int = 10,
  num_symbols: int = 10,
  seed: int = 0,
  test_lengths: tuple[int, int] | None = None,
) -> core.Dataset:
  """Target = source sorted ascending (arguments as in `copy_task`). Sources are
  distinct across splits; a held-out source may still be a new ordering of symbols
  whose sorted form was seen in training."""
  return _symbol_task(
    "sort",
    sorted,
    num_train,
    num_validation,
    num_test,
    min_length,
    max_length,
    num_symbols,
    seed,
    test_lengths,
  )


@functools.cache
def _split_sentences(min_words: int, max_words: int, commas: bool):
  return {
    split: tuple(
      s for play in plays for s in text.simple_sentences(play, min_words, max_words, commas)
    )
    for split, plays in text.split_texts().items()
  }


def _shuffle_words(rng: np.random.Generator, ids: list[int]) -> list[int]:
  """All tokens but the last (the final . ! or ?) in a random order that differs from the
  original whenever the tokens are not all the same."""
  body = np.asarray(ids[:-1])
  while True:
    shuffled = body[rng.permutation(len(body))]
    if not np.array_equal(shuffled, body) or len(set(body.tolist())) == 1:
      return shuffled.tolist() + ids[-1:]


def reorder_task(
  num_train: int | None = None,
  num_validation: int | None = None,
  num_test: int | None = None,
  min_words: int = 3,
  max_words: int = 10,
  max_vocab: int | None = None,
  lowercase: bool = False,
  commas: bool = True,
  seed: int = 0,
) -> core.Dataset:
  """Put the shuffled words of a Shakespeare sentence back in order.

  Sentences come from `text.simple_sentences` (min_words..max_words words ending in
  . ! or ?; commas, shuffled like words, if `commas`), split by play as in
  `dlx.data.text`; each sentence occurs once, and validation / test keep only sentences
  not in an earlier split (train, then validation). The word vocabulary is fit on the
  training sentences (the `max_vocab` most frequent, counting 4 specials: then training
  sentences with rarer words are dropped too); held-out sentences with out-of-vocabulary
  words are dropped, so every target decodes to its sentence. `num_*` (default: all)
  keep a random subset, in corpus order. The shuffle of each source is fixed by `seed`.

  Ids are the `WordTokenizer`'s: 0 <pad>, 1 <bos>, 2 <eos>, 3 <unk>, words from 4;
  `info["vocab"]` lists them (decode with `tokenizers.WordTokenizer(info["vocab"])`)."""
  rng = np.random.default_rng(seed)
  by_split = _split_sentences(min_words, max_words, commas)
  seen, sentences = set(), {}
  for split in core.SPLITS:
    kept = []
    for s in by_split[split]:
      s = s.lower() if lowercase else s
      if s not in seen:
        seen.add(s)
        kept.append(s)
    sentences[split] = kept
  tokenizer = tokenizers.WordTokenizer.fit(
    sentences["train"], max_vocab=max_vocab, lowercase=lowercase
  )
  wanted = {"train": num_train, "validation": num_validation, "test": num_test}
  pairs = {}
  for split in core.SPLITS:
    encoded = [tokenizer.encode(s) for s in sentences[split]]
    encoded = [ids for ids in encoded if tokenizer.unk_id not in ids]
    if wanted[split] is not None and wanted[split] < len(encoded):
      keep = np.sort(rng.choice(len(encoded), wanted[split], replace=False))
      encoded = [encoded[i] for i in keep]
    pairs[split] = ([_shuffle_words(rng, ids) for ids in encoded], encoded)
  longest = max(len(ids) for _, targets in pairs.values() for ids in targets)
  splits = {
    s: encoder_decoder_split(sources, targets, longest, longest + 1)
    for s, (sources, targets) in pairs.items()
  }
  info = dict(
    name="reorder",
    vocab_size=tokenizer.vocab_size,
    vocab=tokenizer.vocab,
    lowercase=lowercase,
    pad_id=PAD_ID,
    bos_id=BOS_ID,
    eos_id=EOS_ID,
    unk_id=tokenizer.unk_id,
    min_words=min_words,
    max_words=max_words,
    max_source_length=longest,
    max_target_length=longest + 1,
    plays=text.play_split(),
  )
  return core.Dataset(splits["train"], splits["validation"], splits["test"], info)


LOADERS = {
  "copy": copy_task,
  "reverse": reverse_task,
  "sort": sort_task,
  "reorder": reorder_task,
}
