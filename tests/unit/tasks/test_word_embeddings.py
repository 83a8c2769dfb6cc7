"""Tests for dlx.tasks.word_embeddings and dlx.models.skipgram (docs/curriculum.md#h3):
the negative-sampling loss by hand, the pairs, the baselines and the similarity test."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import skipgram
from dlx.tasks import word_embeddings as we


def _log_sigmoid(x):
  return -math.log(1.0 + math.exp(-x))


def test_sgns_loss_by_hand():
  scores = jnp.array([[2.0, -1.0, 0.5], [-0.3, 0.2, -4.0]])
  out = we.sgns_loss(scores)
  for row, got in zip(scores.tolist(), out["loss"].tolist()):
    want = -_log_sigmoid(row[0]) - sum(_log_sigmoid(-s) for s in row[1:])
    assert got == pytest.approx(want, rel=1e-6)
  np.testing.assert_allclose(out["pair_accuracy"], [2 / 3, 1 / 3], rtol=1e-6)


def test_skipgram_scores_are_dot_products():
  model = skipgram.SkipGram(vocab_size=7, features=4)
  inputs = {"center": jnp.array([1, 3]), "contexts": jnp.array([[2, 5, 6], [0, 1, 3]])}
  params = model.init(jax.random.PRNGKey(0), inputs)["params"]
  params = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1), x.shape), params)
  scores = model.apply({"params": params}, inputs)
  u, v = params["center"]["embedding"], params["context"]["embedding"]
  np.testing.assert_allclose(scores[1, 2], u[3] @ v[3], rtol=1e-5)
  np.testing.assert_allclose(scores[0, 1], u[1] @ v[5], rtol=1e-5)


def test_skipgram_pairs_within_the_window():
  ids = np.arange(10)
  pairs = we.skipgram_pairs(ids, 3, np.random.default_rng(0))
  distance = np.abs(pairs[:, 0] - pairs[:, 1])
  assert distance.min() >= 1 and distance.max() <= 3
  # A window of 1 gives every neighbour pair, both orders.
  ones = we.skipgram_pairs(ids, 1, np.random.default_rng(0))
  assert len(ones) == 18 and set(map(tuple, ones)) == {
    (i, i + s) for i in range(10) for s in (1, -1)
  } - {(0, -1), (9, 10)}


def test_words_and_vocabulary():
  assert we.words("KING. O'er the hills, to-morrow!") == [
    "king",
    "o'er",
    "the",
    "hills",
    "to-morrow",
  ]
  vocab, counts = we.vocabulary([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
  assert vocab == ["a", "b"] and counts.tolist() == [3, 2]


def test_ppmi_svd_gives_words_of_shared_contexts_close_vectors():
  # a and b both stand next to c only; d and e only next to each other.
  index = {w: i for i, w in enumerate("abcde")}
  matrix = we.cooccurrence([["a", "c", "b", "c"] * 20, ["d", "e"] * 20], index, window=1)
  assert matrix[0, 2] == matrix[2, 0] > 0 and matrix[0, 1] == 0 and matrix[0, 3] == 0
  unit = we.normalize(we.ppmi_svd(matrix, 3))
  assert unit[0] @ unit[1] > 0.9 and abs(unit[0] @ unit[3]) < 0.1


def test_similarity_test_and_analogy():
  vocab = ["king", "queen", "man", "woman", "x", "y"]
  vectors = np.array(
    [[1, 1, 0, 0], [1, -1, 0, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 0, 0, 1], [0, 0, 1, -1]], float
  )
  result = we.similarity_test(vectors, vocab, related=[("king", "man"), ("queen", "woman")])
  assert result["num_related"] == 2
  assert result["related_cosine"] == pytest.approx(0.5)
  assert 0.0 <= result["auc"] <= 1.0
  assert we.analogy(vectors, vocab, "man", "woman", "king", k=1) == ["queen"]
  assert we.nearest(vectors, vocab, "king", k=1) in (["queen"], ["man"])
