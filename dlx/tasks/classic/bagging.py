"""Bagging (docs/curriculum.md#d5): every member's bootstrap resample as per-example
counts in the train split (dlx.ops.resampling.bootstrap_weights), so one run of the
generic step trains the whole ensemble; its loss, and the ensemble report (members,
averaged and voted predictions, a confidence interval, out-of-bag accuracy).
"""

import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx.data import core
from dlx.ops import resampling
from dlx.tasks.classic import common


def with_bootstrap_weights(dataset, num_members: int, seed: int):
  """`dataset` with train['weights'], the members' bootstrap multiplicities.

  Training member m on its resample minimises (1/n) sum_j loss(x_idx_j) =
  (1/n) sum_i count_m(i) loss(x_i): the same objective as weighting every example of the
  original split by its count, so one shuffled pass over the split trains every member on
  its own resample in one batch (only the mini-batch noise differs)."""
  n = core.num_examples(dataset.train)
  train = {**dataset.train, "weights": resampling.bootstrap_weights(n, num_members, seed)}
  return core.Dataset(train, dataset.validation, dataset.test, dataset.info)


def loss(logits, batch):
  """Per-example loss of an ensemble's (N, M, C) logits: the members' cross-entropies
  weighted by batch['weights'] (N, M) (1 where absent: validation, test), averaged over
  members; with the accuracy and loss of the averaged probabilities and the mean member
  accuracy."""
  labels = batch["targets"]
  member_labels = jnp.broadcast_to(labels[:, None], logits.shape[:2])
  member_ce = losses.softmax_cross_entropy(logits, member_labels)
  weights = batch.get("weights", jnp.ones_like(member_ce))
  # log of the members' mean probability, computed in log space.
  log_mean = jax.nn.logsumexp(jax.nn.log_softmax(logits), axis=1) - jnp.log(logits.shape[1])
  return {
    "loss": jnp.mean(weights * member_ce, axis=1),
    "accuracy": (jnp.argmax(log_mean, -1) == labels).astype(jnp.float32),
    "member_accuracy": jnp.mean(jnp.argmax(logits, -1) == member_labels, axis=1),
    "ensemble_loss": -jnp.take_along_axis(log_mean, labels[:, None], 1)[:, 0],
  }


def _member_probabilities(ctx, split):
  """(M, N, C) class probabilities of every member on a whole split."""
  logits = common.split_outputs(ctx, split)
  return np.transpose(np.asarray(jax.nn.softmax(logits)), (1, 0, 2))


def final_report(ctx):
  """Each member's and the ensemble's test accuracy (averaged probabilities, and the
  members' majority vote), the gain over the mean member, a bootstrap confidence interval
  of the ensemble's test accuracy, and the out-of-bag accuracy on the train split (each
  example scored by the members whose resample left it out)."""
  settings = ctx.config.bagging
  test = ctx.dataset.test
  probabilities = _member_probabilities(ctx, test)
  labels = np.asarray(test["targets"])
  members = (probabilities.argmax(2) == labels).mean(1)
  correct = resampling.bagging_predict(probabilities, "average") == labels
  vote = resampling.bagging_predict(probabilities, "vote") == labels
  interval = resampling.bootstrap_confidence_interval(
    correct.astype(np.float64),
    confidence=settings.confidence,
    num_resamples=settings.ci_resamples,
    seed=ctx.config.seed,
  )
  train = ctx.dataset.train
  out_of_bag = np.asarray(train["weights"]).T == 0  # (M, N)
  oob_probabilities = (_member_probabilities(ctx, train) * out_of_bag[..., None]).sum(0)
  scored = out_of_bag.any(0)
  oob_correct = oob_probabilities.argmax(1) == np.asarray(train["targets"])
  return {
    "num_members": len(members),
    "member_test_accuracy": members.tolist(),
    "mean_member_test_accuracy": float(members.mean()),
    "best_member_test_accuracy": float(members.max()),
    "ensemble_test_accuracy": float(correct.mean()),
    "vote_test_accuracy": float(vote.mean()),
    "ensemble_gain": float(correct.mean() - members.mean()),
    f"ensemble_ci{round(100 * settings.confidence)}": [interval.low, interval.high],
    "oob_accuracy": float(oob_correct[scored].mean()) if scored.any() else None,
    "oob_examples": int(scored.sum()),
  }
