"""Sequence-to-sequence tasks (dlx.data.sequences)."""

import numpy as np
import pytest

from dlx.data import sequences
from dlx.data import text
from dlx.data import tokenizers

SPLITS = ("train", "validation", "test")
SMALL = dict(
  num_train=500, num_validation=100, num_test=100, min_length=2, max_length=8, num_symbols=6, seed=3
)


@pytest.fixture(scope="module")
def reorder():
  return sequences.reorder_task(num_train=2000, num_validation=200, num_test=200, seed=1)


def unpad(split, i):
  """(source, target) of example i as lists, without padding and EOS."""
  source = split["source"][i]
  length = int(split["target_mask"][i].sum()) - 1
  return source[source != 0].tolist(), split["targets"][i, :length].tolist()


def check_layout(split):
  source, target_in = split["source"], split["target_in"]
  targets, mask = split["targets"], split["target_mask"]
  assert source.dtype == target_in.dtype == targets.dtype == np.int32
  assert mask.dtype == np.float32 and targets.shape == target_in.shape == mask.shape
  lengths = mask.sum(1).astype(int)  # target tokens + EOS
  rows = np.arange(len(targets))
  assert (target_in[:, 0] == sequences.BOS_ID).all()
  assert (targets[rows, lengths - 1] == sequences.EOS_ID).all()
  np.testing.assert_array_equal(target_in[:, 1:] * mask[:, 1:], targets[:, :-1] * mask[:, 1:])
  positions = np.arange(targets.shape[1])
  padding = positions >= lengths[:, None]
  assert (targets[padding] == 0).all() and (target_in[padding] == 0).all()
  assert (targets[~padding] != 0).all() and (mask[padding] == 0).all()
  assert ((source != 0).sum(1) > 0).all()
  # Padding only at the end of the source.
  assert all((s[s != 0] == s[: (s != 0).sum()]).all() for s in source)


@pytest.mark.parametrize(
  "task,expected",
  [
    (sequences.copy_task, lambda s: s),
    (sequences.reverse_task, lambda s: s[::-1]),
    (sequences.sort_task, sorted),
  ],
)
def test_symbol_tasks(task, expected):
  ds = task(**SMALL)
  assert ds.info["vocab_size"] == 9 and ds.info["first_symbol_id"] == 3
  sources = set()
  for name in SPLITS:
    split = ds.split(name)
    check_layout(split)
    assert split["source"].shape[1] == 8 and split["targets"].shape[1] == 9
    assert split["source"].max() < 9 and split["source"][split["source"] > 0].min() >= 3
    for i in range(ds.size(name)):
      source, target = unpad(split, i)
      assert target == list(expected(source)) and 2 <= len(source) <= 8
      sources.add(tuple(source))
  assert len(sources) == 700  # distinct, so the splits are disjoint


def test_symbol_tasks_are_deterministic_for_a_seed():
  a, b = sequences.reverse_task(**SMALL), sequences.reverse_task(**SMALL)
  c = sequences.reverse_task(**{**SMALL, "seed": 4})
  for name in SPLITS:
    for key in a.train:
      np.testing.assert_array_equal(a.split(name)[key], b.split(name)[key])
  assert not np.array_equal(a.train["source"], c.train["source"])


def test_longer_test_sequences_for_length_generalisation():
  ds = sequences.copy_task(**{**SMALL, "test_lengths": (9, 12)})
  lengths = {name: ds.split(name)["target_mask"].sum(1) - 1 for name in SPLITS}
  assert lengths["train"].max() <= 8 and lengths["test"].min() >= 9
  assert lengths["test"].max() <= 12
  for name in SPLITS:
    assert ds.split(name)["source"].shape[1] == 12
    check_layout(ds.split(name))


def test_too_few_distinct_strings_is_an_error():
  with pytest.raises(ValueError, match="distinct"):
    sequences.copy_task(num_train=100, min_length=1, max_length=2, num_symbols=3)


def test_reorder_targets_are_shuffled_corpus_sentences(reorder):
  tok = tokenizers.WordTokenizer(reorder.info["vocab"])
  assert reorder.info["vocab_size"] == tok.vocab_size and tok.eos_id == sequences.EOS_ID
  flat = {
    name: tokenizers.join_words(tokenizers.split_words(" ".join(text.split_texts()[name])))
    for name in ("test",)
  }
  for name in SPLITS:
    split = reorder.split(name)
    check_layout(split)
    changed = 0
    for i in range(reorder.size(name)):
      source, target = unpad(split, i)
      assert sorted(source) == sorted(target) and source[-1] == target[-1]
      assert tok.unk_id not in target
      changed += source != target
      if name == "test":
        assert tok.decode(target) in flat["test"]
    assert changed > 0.9 * reorder.size(name)


def test_reorder_splits_are_disjoint_and_deterministic(reorder):
  tok = tokenizers.WordTokenizer(reorder.info["vocab"])
  sentences = {}
  for name in SPLITS:
    split = reorder.split(name)
    sentences[name] = {tok.decode(unpad(split, i)[1]) for i in range(reorder.size(name))}
    assert len(sentences[name]) == reorder.size(name)
  assert not sentences["train"] & sentences["validation"]
  assert not (sentences["train"] | sentences["validation"]) & sentences["test"]
  again = sequences.reorder_task(num_train=2000, num_validation=200, num_test=200, seed=1)
  for name in SPLITS:
    np.testing.assert_array_equal(again.split(name)["source"], reorder.split(name)["source"])


def test_reorder_example_from_the_course():
  words = tokenizers.WordTokenizer.fit("The cat sat on the mat.")
  ids = words.encode("The cat sat on the mat.")
  shuffled = sequences._shuffle_words(np.random.default_rng(0), ids)  # pylint: disable=protected-access
  assert shuffled != ids and shuffled[-1] == ids[-1] and sorted(shuffled) == sorted(ids)
  assert words.decode(shuffled).endswith(".")


def test_loaders_are_reachable_by_name():
  from dlx import data  # pylint: disable=g-import-not-at-top

  ds = data.load("reverse", num_train=30, num_validation=5, num_test=5, max_length=4)
  assert ds.info["name"] == "reverse" and ds.size("train") == 30
  lm = data.load("shakespeare_char", context_length=16, max_train_windows=10)
  assert lm.train["inputs"].shape == (10, 16)
