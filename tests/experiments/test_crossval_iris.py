"""Slow: the documented k-fold command (experiments/classic/README.md#cross-validation,
docs/curriculum.md#d5) against scikit-learn: the same five stratified folds of iris's
train split, each fitted by LogisticRegression with the same L2 penalty, give the same
validation accuracies as dlx's trained softmax layers."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn import linear_model

from dlx import data
from dlx import experiment
from dlx.tasks.classic import logistic
from dlx.tools import crossval

FOLDS = 5


@pytest.mark.slow
def test_iris_folds_match_scikit_learn(tmp_path):
  command = [sys.executable, "-m", "dlx.tools.crossval", "logistic_regression:iris"]
  options = ["--folds", str(FOLDS), "--stratified", f"--workdir={tmp_path}"]
  done = subprocess.run(
    command + options + ["--config.batch_size=72"], capture_output=True, text=True, timeout=900
  )
  assert done.returncode == 0, done.stderr[-3000:]
  summary = json.loads((tmp_path / "crossval.json").read_text())
  config = experiment.load("logistic_regression").config("iris")
  iris = data.load("iris", seed=config.seed)
  theirs = []
  for fold in range(FOLDS):
    split = crossval.fold_dataset(iris, fold, FOLDS, config.seed, stratified=True)
    x, y = split.train["inputs"].astype(np.float64), split.train["targets"]
    reference = linear_model.LogisticRegression(
      C=logistic.sklearn_c(config.l2, len(x), 3), max_iter=10_000, tol=1e-8
    ).fit(x, y)
    validation = split.validation
    theirs.append(float(np.mean(reference.predict(validation["inputs"]) == validation["targets"])))
  ours = summary["validation"]["accuracy"]["folds"]
  np.testing.assert_allclose(ours, theirs, atol=1 / 18 + 1e-9)  # at most one flower a fold
  assert summary["validation"]["accuracy"]["mean"] == pytest.approx(np.mean(theirs), abs=0.02)
