"""k-fold cross-validation (`python -m dlx.tools.crossval`): the folds partition the train split,
the test split is untouched, and the summary is the mean and sample standard deviation of
the folds' own results."""

import json
import subprocess
import sys

import numpy as np
import pytest

from dlx import data
from dlx import errors
from dlx.tools import crossval
from tests import conftest


def _dataset(n=30):
  rng = np.random.default_rng(0)
  split = lambda m: {
    "inputs": rng.standard_normal((m, 2)).astype(np.float32),
    "targets": (np.arange(m) % 3).astype(np.int32),
  }
  return data.Dataset(split(n), split(7), split(5))


@pytest.mark.parametrize("stratified", [False, True])
def test_folds_partition_the_train_split_and_keep_test(stratified):
  dataset, folds = _dataset(), 4
  seen = []
  for fold in range(folds):
    split = crossval.fold_dataset(dataset, fold, folds, seed=3, stratified=stratified)
    assert split.test is dataset.test
    train, validation = split.train["inputs"], split.validation["inputs"]
    assert len(train) + len(validation) == 30 and len(validation) in (7, 8)
    # Rows are the original train rows: no example is in both halves.
    rows = lambda a: {tuple(r) for r in a.tolist()}
    assert not rows(train) & rows(validation)
    seen += validation.tolist()
    if stratified:  # 10 of each class: every fold holds 2 or 3 of each
      counts = np.bincount(split.validation["targets"], minlength=3)
      assert set(counts) <= {2, 3}, counts
  assert sorted(map(tuple, seen)) == sorted(map(tuple, dataset.train["inputs"].tolist()))


def test_stratified_folds_need_class_targets():
  dataset = _dataset()
  dataset.train["targets"] = dataset.train["targets"].astype(np.float32)
  with pytest.raises(errors.ConfigError, match="integer class targets"):
    crossval.fold_dataset(dataset, 0, 3, seed=0, stratified=True)


def test_a_fold_too_small_for_one_batch_is_a_config_error():
  # 30 train examples, 3 folds: 20 left to train on, fewer than a (full) batch of 30.
  with pytest.raises(errors.ConfigError, match="batch_size=30.*only 20 examples"):
    crossval.fold_dataset(_dataset(), 0, 3, seed=0, batch_size=30)
  assert crossval.fold_dataset(_dataset(), 0, 3, seed=0, batch_size=20).size("train") == 20


def test_a_stream_cannot_be_cross_validated():
  stream = data.Stream(lambda seed, step: {}, _dataset().validation, _dataset().test)
  with pytest.raises(errors.ConfigError, match="Stream"):
    crossval.fold_dataset(stream, 0, 3, seed=0)


def test_summary_is_mean_and_sample_std():
  results = [{"validation": {"accuracy": a, "loss": 1 - a}, "test": {"loss": a}} for a in (1, 2, 4)]
  summary = crossval.summarize(results)
  assert summary["validation"]["accuracy"]["mean"] == pytest.approx(7 / 3)
  assert summary["validation"]["accuracy"]["std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
  assert summary["validation"]["loss"]["folds"] == [0, -1, -3]
  assert "| accuracy | 2.3333 | 1.5275 |" in crossval.table(summary)


def _crossval(*args, timeout=240):
  return subprocess.run(
    [sys.executable, "-m", "dlx.tools.crossval", *args],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def test_three_fold_crossval_of_mlp_xor(tmp_path):
  done = _crossval(
    "mlp_xor",
    "--folds",
    "3",
    "--stratified",
    f"--workdir={tmp_path}",
    "--config.num_train_steps=40",
    "--config.eval_every_steps=40",
    "--config.checkpoint_every_steps=40",
    "--config.fast_compile=True",
  )
  assert done.returncode == 0, done.stderr[-3000:]
  summary = json.loads((tmp_path / "crossval.json").read_text())
  assert summary["folds"] == 3 and summary["stratified"]
  folds = [json.loads((tmp_path / f"fold_{i}" / "results.json").read_text()) for i in range(3)]
  for metric in ("accuracy", "loss"):
    values = [r["validation"][metric] for r in folds]
    assert summary["validation"][metric]["folds"] == values
    assert summary["validation"][metric]["mean"] == pytest.approx(np.mean(values))
    assert summary["validation"][metric]["std"] == pytest.approx(np.std(values, ddof=1))
  # The folds differ (different data), the test split is the same for all.
  assert len({r["validation"]["loss"] for r in folds}) == 3
  xor = data.load("xor", seed=0)
  metrics = conftest.read_jsonl(tmp_path / "fold_0" / "metrics.jsonl")
  assert all(r["step"] == 40 for r in metrics if r["split"] == "validation")
  assert "| accuracy |" in done.stdout and (tmp_path / "crossval.md").is_file()
  # Each run validates on a third of xor's 200 train points and trains on the rest.
  assert xor.size("train") == 200
  for i, (train, validation) in enumerate([(133, 67), (133, 67), (134, 66)]):
    log = (tmp_path / f"fold_{i}" / "log.txt").read_text()
    assert f"train={train}, validation={validation}, test=100" in log


def test_crossval_errors_are_one_line(tmp_path):
  done = _crossval("mlp_xor:stream", "--folds", "3", f"--workdir={tmp_path}")
  assert done.returncode == 2
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("dlx: error:") and "Stream" in lines[0], lines
