"""Word error rate (dlx/ops/edit_distance.py): hand-counted cases, a brute-force
recursion on random strings, and jiwer's corpus WER (jiwer is a test extra)."""

import functools

import jiwer
import numpy as np
import pytest

from dlx.ops import edit_distance as ed

# (reference, hypothesis, substitutions, deletions, insertions), counted by hand.
HAND = [
  ("one two three", "one two three", 0, 0, 0),
  ("one two three", "one four three", 1, 0, 0),
  ("one two three", "one three", 0, 1, 0),
  ("one two three", "one two three four", 0, 0, 1),
  ("", "one two", 0, 0, 2),
  ("one two", "", 0, 2, 0),
  ("one two three four", "two three four five", 0, 1, 1),  # shifted by one word
  ("five nine", "nine five", 2, 0, 0),  # a swap: two substitutions (equal to del + ins)
  ("six six six", "six six", 0, 1, 0),
  ("seven", "one two three", 1, 0, 2),
]


@pytest.mark.parametrize("ref, hyp, subs, dels, ins", HAND)
def test_hand_counted_cases(ref, hyp, subs, dels, ins):
  ref, hyp = ref.split(), hyp.split()
  assert ed.edit_distance(ref, hyp) == subs + dels + ins
  expected = {"substitutions": subs, "deletions": dels, "insertions": ins}
  assert ed.edit_operations(ref, hyp) == expected


def test_characters_kitten_sitting():
  assert ed.edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
  assert ed.edit_operations("kitten", "sitting") == {
    "substitutions": 2,
    "deletions": 0,
    "insertions": 1,
  }


def test_word_error_rate_is_summed_over_the_corpus():
  refs = [["one", "two", "three"], ["four", "five"]]
  hyps = [["one", "three"], ["four", "five", "six"]]
  assert ed.word_error_rate(refs, hyps) == pytest.approx(2 / 5)  # not mean(1/3, 1/2)
  assert ed.word_error_rate([["one"]], [["two", "three", "four"]]) == 3.0  # can pass 1


def test_word_error_rate_rejects_bad_input():
  with pytest.raises(ValueError, match="references but"):
    ed.word_error_rate([["one"]], [])
  with pytest.raises(ValueError, match="no words"):
    ed.word_error_rate([[]], [["one"]])


def _brute(ref, hyp):
  """The Levenshtein recursion written directly (memoised), independent of the table."""

  @functools.lru_cache(maxsize=None)
  def d(i, j):
    if not i or not j:
      return i + j
    return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (ref[i - 1] != hyp[j - 1]))

  return d(len(ref), len(hyp))


def test_against_the_recursion_on_random_strings():
  rng = np.random.default_rng(0)
  for _ in range(300):
    ref = tuple(rng.integers(0, 3, rng.integers(0, 8)).tolist())
    hyp = tuple(rng.integers(0, 3, rng.integers(0, 8)).tolist())
    distance = ed.edit_distance(ref, hyp)
    assert distance == _brute(ref, hyp)
    assert sum(ed.edit_operations(ref, hyp).values()) == distance
    assert distance == ed.edit_distance(hyp, ref)  # symmetric


def test_against_jiwer():
  rng = np.random.default_rng(1)
  words = ["zero", "one", "two", "three"]
  refs = [list(rng.choice(words, rng.integers(1, 7))) for _ in range(50)]
  hyps = [list(rng.choice(words, rng.integers(0, 7))) for _ in range(50)]
  expected = jiwer.wer([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
  assert ed.word_error_rate(refs, hyps) == pytest.approx(expected)
