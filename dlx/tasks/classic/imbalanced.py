"""The weighted loss on a class-imbalanced task (docs/curriculum.md#b5).

The digits' train split keeps every example of the majority classes but only a fraction
of the minority classes; validation and test stay balanced, so per-class recall shows
what the imbalance costs. With class weights each example's cross-entropy is multiplied
by w_c = n / (C n_c) (scikit-learn's 'balanced' weights, mean 1 over the train split), so
the objective over the split, (1/n) sum_i w_i l_i, is `dlx.losses.weighted(l, w)` =
sum w l / sum w, and every class weighs as much in total as every other. Without
weights, w = 1 and it is the plain mean.
"""

import numpy as np

from dlx import data
from dlx import losses
from dlx.data import core
from dlx.tasks import classification
from dlx.tasks.classic import common


def subsample(split, minority, keep: float, seed: int):
  """`split` with only a fraction `keep` of each minority class's examples (at least
  one), chosen by `seed`; the majority classes are untouched."""
  targets = np.asarray(split["targets"])
  rng = np.random.default_rng(seed)
  rows = []
  for c in np.unique(targets):
    members = np.flatnonzero(targets == c)
    if c in minority:
      members = rng.choice(members, max(1, int(round(keep * len(members)))), replace=False)
    rows.append(members)
  return core.take(split, np.sort(np.concatenate(rows)))


def balanced_weights(targets, num_classes: int):
  """Per-example weights n / (C n_c): scikit-learn's compute_class_weight('balanced')."""
  counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
  per_class = len(targets) / (num_classes * np.maximum(counts, 1))
  return per_class[targets].astype(np.float32)


def get_dataset(config, data_dir):
  """The digits with the train split's minority classes subsampled; train['weights']
  holds the class weights (all 1 with config.class_weights off)."""
  del data_dir
  ds = data.load("digits", seed=config.seed)
  train = subsample(ds.train, tuple(config.minority_classes), config.minority_keep, config.seed)
  targets = np.asarray(train["targets"])
  num_classes = ds.info["num_classes"]
  if config.class_weights:
    weights = balanced_weights(targets, num_classes)
  else:
    weights = np.ones(len(targets), np.float32)
  return core.Dataset({**train, "weights": weights}, ds.validation, ds.test, ds.info)


def loss(logits, batch):
  """Per-example weighted cross-entropy (weights 1 where the batch has none: validation
  and test), the plain cross-entropy and the accuracy."""
  result = classification.classification(logits, batch)
  weights = batch.get("weights")
  if weights is None:
    return {**result, "cross_entropy": result["loss"]}
  return {**result, "loss": weights * result["loss"], "cross_entropy": result["loss"]}


def recalls(predictions, targets, num_classes: int):
  """(C,) recall of every class: the share of its examples predicted as it."""
  return np.array([np.mean(predictions[targets == c] == c) for c in range(num_classes)])


def final_report(ctx):
  """Per-class test recall, the minority and majority classes' mean recall, the
  balanced accuracy (mean recall), the train class counts and the training objective
  as `losses.weighted` computes it."""
  config = ctx.config
  num_classes = ctx.dataset.info["num_classes"]
  test = ctx.dataset.test
  predictions = common.split_outputs(ctx, test).argmax(-1)
  per_class = recalls(predictions, np.asarray(test["targets"]), num_classes)
  minority = np.isin(np.arange(num_classes), tuple(config.minority_classes))
  train = ctx.dataset.train
  logits = common.split_outputs(ctx, train)
  cross_entropy = losses.softmax_cross_entropy(logits, train["targets"])
  return {
    "class_weights": bool(config.class_weights),
    "test_recall": per_class.tolist(),
    "minority_recall": float(per_class[minority].mean()),
    "majority_recall": float(per_class[~minority].mean()),
    "balanced_accuracy": float(per_class.mean()),
    "train_class_counts": np.bincount(train["targets"], minlength=num_classes).tolist(),
    "train_objective": float(losses.weighted(cross_entropy, train["weights"])),
  }
