"""The claims of bagging_digits and gd_vs_sgd that are cheap to check: weighting by
bootstrap counts is training on the resamples, a bagged ensemble beats its mean member,
and smaller batches reach a lower training loss per epoch than full-batch GD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import experiment
from dlx import losses
from dlx import train
from dlx.ops import resampling
from dlx.tasks.classic import bagging
from dlx.tasks.classic import batch_regimes
from tests import conftest


def _train(name, tmp_path, **overrides):
  """A run of `name` as configured, compiled fast (XLA level 0) and checkpointed once."""
  exp = experiment.load(name)
  config = exp.config()
  overrides = {"fast_compile": True, "checkpoint_every_steps": 100_000, **overrides}
  for field, value in overrides.items():
    config[field] = value
  return train.train_and_evaluate(config, str(tmp_path), experiment=exp)


def test_bootstrap_weights_give_the_resample_objective():
  n, members, seed = 50, 4, 3
  weights = resampling.bootstrap_weights(n, members, seed)
  rows = resampling.bootstrap_indices(n, members, seed)  # (members, n) resampled rows
  for m in range(members):
    np.testing.assert_array_equal(weights[:, m], np.bincount(rows[m], minlength=n))
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((n, members, 5)).astype(np.float32)
  labels = rng.integers(0, 5, n).astype(np.int32)
  weighted = jax.jit(bagging.loss)(logits, {"targets": labels, "weights": weights})
  member_ce = jax.jit(losses.softmax_cross_entropy)(
    logits, np.broadcast_to(labels[:, None], (n, members))
  )
  on_resamples = np.mean([np.mean(member_ce[rows[m], m]) for m in range(members)])
  assert float(jnp.mean(weighted["loss"])) == pytest.approx(on_resamples, rel=1e-5)


def test_bagged_ensemble_beats_its_mean_member(tmp_path):
  results = _train(
    "bagging_digits", tmp_path, num_epochs=5.0, best_metric="", eval_every_steps=100_000
  )
  report = results["report"]
  assert report["ensemble_test_accuracy"] >= report["mean_member_test_accuracy"]
  assert report["ensemble_gain"] > 0
  assert len(report["member_test_accuracy"]) == 10
  low, high = report["ensemble_ci95"]
  assert low <= report["ensemble_test_accuracy"] <= high and high - low < 0.1
  assert results["test"]["accuracy"] == pytest.approx(report["ensemble_test_accuracy"])


def test_smaller_batches_reach_a_lower_loss_per_epoch(tmp_path):
  losses_after = {}
  for batch_size in (1258, 32):  # full batch (the digits train split) and mini-batches
    workdir = tmp_path / f"batch_size={batch_size}"
    results = _train("gd_vs_sgd", workdir, batch_size=batch_size, num_epochs=3.0)
    losses_after[batch_size] = results["report"]["final_train_objective"]
  report = results["report"]
  assert report["compared_runs"] == ["batch_size=32", "batch_size=1258"]
  assert (tmp_path / "batch_size=32" / batch_regimes.PLOT).is_file()
  # 3 GD updates against 117 mini-batch updates in the same 3 epochs.
  assert losses_after[32] < 0.5 * losses_after[1258]
  rows = conftest.read_jsonl(tmp_path / "batch_size=32" / "metrics.jsonl")
  assert [r["epoch"] for r in rows if r["split"] == "validation"] == [1.0, 2.0, 3.0]
