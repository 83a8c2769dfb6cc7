"""Tests for dlx.tasks.seq2seq.common (loss, layouts, exact match) and plots.plot_attention."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from dlx.data import core
from dlx.data import sequences
from dlx.models import seq2seq
from dlx.tasks.seq2seq import common as seq2seq_task
from dlx.viz import plots


def test_sequence_loss_hand_computed():
  # Two examples, T = 3; the second has one padded step.
  logits = jnp.log(
    jnp.array(
      [
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
        [[0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]],
      ]
    )
  )
  batch = {
    "targets": jnp.array([[0, 1, 2], [1, 2, 0]]),
    "target_mask": jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
  }
  out = seq2seq_task.sequence_loss(logits, batch)
  np.testing.assert_allclose(
    out["loss"],
    [-(np.log(0.7) + np.log(0.8) + np.log(0.6)) / 3, -(np.log(0.4) + np.log(0.4)) / 2],
    rtol=1e-5,
  )
  np.testing.assert_allclose(out["token_accuracy"], [1.0, 0.5])  # argmax 0 != 1, 2 == 2
  np.testing.assert_allclose(out["sequence_accuracy"], [1.0, 0.0])


def test_padding_never_counts_against_exact_match():
  logits = jnp.log(jnp.array([[[0.9, 0.1], [0.9, 0.1]]]))  # predicts 0, 0
  batch = {"targets": jnp.array([[0, 1]]), "target_mask": jnp.array([[1.0, 0.0]])}
  assert float(seq2seq_task.sequence_loss(logits, batch)["sequence_accuracy"][0]) == 1.0


def test_to_model_inputs_layout():
  ds = sequences.reverse_task(num_train=20, num_validation=5, num_test=5, max_length=4)
  split = seq2seq_task.to_model_inputs(ds.train)
  assert set(split) == {"inputs", "targets", "target_mask"}
  assert set(split["inputs"]) == {"source", "target_in"}
  assert core.num_examples(split) == 20


@pytest.fixture(scope="module")
def tiny_seq2seq():
  model = seq2seq.Seq2Seq(8, 8, features=8)
  source = np.array([[3, 4, 5, 0], [6, 7, 3, 4], [5, 0, 0, 0]], np.int32)
  inputs = {"source": source, "target_in": np.ones((3, 5), np.int32)}
  variables = model.init(jax.random.PRNGKey(0), inputs)
  return model, variables, source


def test_teacher_forced_exact_match_equals_greedy_decoding(tiny_seq2seq):
  """The claim in dlx.tasks.seq2seq.common's docstring: the teacher-forced score is what greedy
  decoding scores. Targets = the model's own greedy output score 1; changing any one
  token of them scores 0 for that example."""
  model, variables, source = tiny_seq2seq
  length = 5
  greedy, _ = seq2seq.greedy_decode(model, variables["params"], source, length, sequences.BOS_ID)
  greedy = np.asarray(greedy)
  target_in = np.concatenate([np.full((3, 1), sequences.BOS_ID), greedy[:, :-1]], axis=1)
  split = {
    "inputs": {"source": source, "target_in": target_in.astype(np.int32)},
    "targets": greedy,
    "target_mask": np.ones((3, length), np.float32),
  }
  assert seq2seq_task.exact_match(model, variables, split)["sequence_accuracy"] == 1.0
  wrong = greedy.copy()
  wrong[1, 2] = (wrong[1, 2] + 1) % 8
  split["targets"] = wrong
  result = seq2seq_task.exact_match(model, variables, split, batch_size=2)
  assert result["sequence_accuracy"] == pytest.approx(2 / 3)
  by_length = seq2seq_task.accuracy_by_length(model, variables, split)
  assert by_length == {length - 1: pytest.approx(2 / 3)}


def test_token_labels():
  assert seq2seq_task.token_labels([1, 3, 5, 2, 0], {}) == ["<bos>", "0", "2", "<eos>", "<pad>"]
  vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "the", "cat"]
  assert seq2seq_task.token_labels([4, 5, 2], {"vocab": vocab}) == ["the", "cat", "<eos>"]


def test_plot_attention_writes_a_png(tmp_path):
  weights = np.eye(4)[::-1]
  path = tmp_path / "attention.png"
  plots.plot_attention(weights, list("abcd"), list("dcba"), path, title="reverse")
  with Image.open(path) as image:
    assert image.format == "PNG" and min(image.size) > 100
  with pytest.raises(ValueError, match="do not match"):
    plots.plot_attention(weights, list("abc"), list("dcba"), tmp_path / "bad.png")
