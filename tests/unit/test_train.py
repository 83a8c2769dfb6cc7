"""Tests for dlx.train: outputs, determinism, exact resume, failures, stopping, parallelism."""

import dataclasses
import json
import logging
import math
import os
import pathlib
import shutil

import numpy as np
import pytest

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx import train
from dlx.data import core
from tests import conftest

REPO = pathlib.Path(__file__).resolve().parents[2]
SPLITS = ("test", "validation", "train")
STEPS = 40  # the baseline run: log every 10, validate and checkpoint every 20


def _config(num_train_steps=STEPS, **overrides):
  cfg = experiment_lib.load("mlp_xor").config()
  cfg.num_train_steps = num_train_steps
  cfg.log_every_steps = 10
  cfg.eval_every_steps = 20
  cfg.checkpoint_every_steps = 20
  return config_lib.override(cfg, **overrides)


def _train(workdir, cfg=None, experiment=None, **overrides):
  cfg = cfg or _config(**overrides)
  return train.train_and_evaluate(
    cfg, str(workdir), experiment=experiment or experiment_lib.load("mlp_xor")
  )


def _numbers(results):
  """results.json without the wall-clock field."""
  return {k: v for k, v in results.items() if k != "train_time_s"}


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def _steps(directory):
  return sorted(int(p.name) for p in pathlib.Path(directory).iterdir() if p.name.isdigit())


_restore = conftest.restore_checkpoint


def _assert_trees_equal(a, b):
  flat_a = _flatten(a)
  flat_b = _flatten(b)
  assert flat_a.keys() == flat_b.keys()
  for k in flat_a:
    np.testing.assert_array_equal(np.asarray(flat_a[k]), np.asarray(flat_b[k]), err_msg=k)


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}/{k}"))
    return out
  if isinstance(tree, (list, tuple)):
    out = {}
    for i, v in enumerate(tree):
      out.update(_flatten(v, f"{prefix}/{i}"))
    return out
  return {prefix: tree}


class _Records(logging.Handler):
  """Collects log records (absl logs through the standard `logging` module)."""

  def __init__(self):
    super().__init__(logging.DEBUG)
    self.messages = []

  def emit(self, record):
    self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
  """One uninterrupted 40-step mlp_xor run that several tests compare against."""
  workdir = tmp_path_factory.mktemp("baseline")
  results = _train(workdir)
  return workdir, results


# ------------------------------------------------------------------ outputs


def test_run_writes_documented_outputs(baseline):
  workdir, results = baseline
  names = set(os.listdir(workdir))
  for name in (
    "config.json",
    "metrics.jsonl",
    "results.json",
    "checkpoints",
    "best_checkpoint",
    "loss_curve.png",
  ):
    assert name in names
  assert any(n.startswith("events.out.tfevents") for n in names)

  with open(workdir / "config.json") as f:
    config = json.load(f)
  assert config["experiment"] == "mlp_xor" and config["num_train_steps"] == STEPS
  assert config["optimizer"]["name"] == "adam"

  with open(workdir / "results.json") as f:
    on_disk = json.load(f)
  assert on_disk == results
  assert results["experiment"] == "mlp_xor"
  assert results["step"] == STEPS
  assert results["stopped_early"] is False
  assert results["num_parameters"] == 2 * 8 + 8 + 8 * 2 + 2
  assert results["train_time_s"] >= 0
  for split in SPLITS:
    assert set(results[split]) == {"loss", "accuracy"}
    assert 0.0 <= results[split]["accuracy"] <= 1.0
    assert math.isfinite(results[split]["loss"])
  assert results["generalization_gap"] == pytest.approx(
    results["test"]["loss"] - results["train"]["loss"]
  )

  rows = _read_jsonl(workdir / "metrics.jsonl")
  by_split = {}
  for row in rows:
    assert isinstance(row["step"], int) and isinstance(row["split"], str)
    by_split.setdefault(row["split"], []).append(row)
  assert [r["step"] for r in by_split["train"]] == [10, 20, 30, 40]
  assert [r["step"] for r in by_split["validation"]] == [20, 40]
  for split in SPLITS:
    (row,) = by_split[f"final_{split}"]
    assert row["step"] == STEPS
    assert {k: v for k, v in row.items() if k not in ("step", "split")} == results[split]
  assert set(by_split["train"][0]) == {
    "step",
    "split",
    "loss",
    "accuracy",
    "grad_norm",
    "learning_rate",
  }
  assert by_split["train"][0]["learning_rate"] == pytest.approx(0.03)
  assert by_split["validation"][-1]["loss"] == pytest.approx(results["validation"]["loss"])

  assert _steps(workdir / "checkpoints") == [20, 40]
  state, meta = _restore(workdir / "checkpoints", 40)
  assert int(state["step"]) == STEPS
  assert set(state) == {"step", "params", "opt_state", "model_state", "rng"}
  assert set(meta) >= {"best", "bad_evals", "stopped"}
  with open(workdir / "loss_curve.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_final_evaluation_reuses_the_validation_of_the_final_step(tmp_path, monkeypatch):
  scored = []
  evaluate_split = train._evaluate_split

  def counting(run, state, split, step):
    scored.append((split, step))
    return evaluate_split(run, state, split, step)

  monkeypatch.setattr(train, "_evaluate_split", counting)
  results = _train(tmp_path, num_train_steps=20)
  assert scored == [("validation", 20), ("test", 20), ("train", 20)]
  (row,) = [r for r in _read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "validation"]
  assert {k: v for k, v in row.items() if k not in ("step", "split")} == results["validation"]


def test_keep_checkpoints(tmp_path):
  _train(
    tmp_path, num_train_steps=50, checkpoint_every_steps=10, keep_checkpoints=2, eval_every_steps=50
  )
  assert _steps(tmp_path / "checkpoints") == [40, 50]


def test_best_checkpoint_written(baseline):
  workdir, _ = baseline
  rows = [r for r in _read_jsonl(workdir / "metrics.jsonl") if r["split"] == "validation"]
  best = min(rows, key=lambda r: r["loss"])
  assert _steps(workdir / "best_checkpoint") == [best["step"]]
  state, meta = _restore(workdir / "best_checkpoint", best["step"])
  assert meta["best"] == pytest.approx(best["loss"])
  latest, _ = _restore(workdir / "checkpoints", best["step"])
  _assert_trees_equal(state["params"], latest["params"])


def test_best_checkpoint_max_mode(tmp_path):
  _train(tmp_path, best_metric="accuracy", best_mode="max")
  rows = [r for r in _read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "validation"]
  top = max(r["accuracy"] for r in rows)
  first_top = min(r["step"] for r in rows if r["accuracy"] == top)  # later ties don't improve
  assert _steps(tmp_path / "best_checkpoint") == [first_top]


# ------------------------------------------------------------------ determinism and resume


def test_same_seed_gives_identical_results(baseline, tmp_path):
  workdir, results = baseline
  again = _train(tmp_path)
  assert _numbers(again) == _numbers(results)
  assert _read_jsonl(tmp_path / "metrics.jsonl") == _read_jsonl(workdir / "metrics.jsonl")


def test_different_seed_gives_different_results(baseline, tmp_path):
  _, results = baseline
  other = _train(tmp_path, seed=1)
  assert other["test"]["loss"] != results["test"]["loss"]
  assert other["train"]["loss"] != results["train"]["loss"]


def test_resume_is_bit_identical(baseline, tmp_path):
  """40 steps straight == 20 steps, then a relaunch in the same workdir to 40 steps."""
  workdir, results = baseline
  assert _config().optimizer.schedule == "constant"  # else the first leg's lr would differ
  first = _train(tmp_path, num_train_steps=STEPS // 2)
  assert first["step"] == STEPS // 2
  resumed = _train(tmp_path)
  assert resumed["step"] == STEPS
  for split in SPLITS:
    assert resumed[split] == results[split]
  state, _ = _restore(tmp_path / "checkpoints", STEPS)
  reference, _ = _restore(workdir / "checkpoints", STEPS)
  _assert_trees_equal(state, reference)
  # The second leg logged exactly what the uninterrupted run logged after step 20.
  later = lambda rows: [r for r in rows if r["step"] > STEPS // 2 and r["split"] == "train"]
  assert later(_read_jsonl(tmp_path / "metrics.jsonl")) == later(
    _read_jsonl(workdir / "metrics.jsonl")
  )


def test_asynchronous_checkpoints_resume_bit_identically(baseline, tmp_path):
  """--config.checkpoint_async=True: the state is written on orbax's thread, and a run
  stopped at step 20 and relaunched still ends exactly where the straight run ends."""
  workdir, results = baseline
  _train(tmp_path, num_train_steps=STEPS // 2, checkpoint_async=True)
  assert _steps(tmp_path / "checkpoints") == [STEPS // 2]
  resumed = _train(tmp_path, checkpoint_async=True)
  for split in SPLITS:
    assert resumed[split] == results[split]
  state, _ = _restore(tmp_path / "checkpoints", STEPS)
  reference, _ = _restore(workdir / "checkpoints", STEPS)
  _assert_trees_equal(state, reference)


def test_relaunching_a_finished_run_trains_no_further(baseline, tmp_path):
  workdir, results = baseline
  shutil.copytree(workdir, tmp_path / "w")
  again = _train(tmp_path / "w")
  assert _numbers(again) == _numbers(results)
  assert _steps(tmp_path / "w" / "checkpoints") == [20, 40]


@pytest.fixture(scope="module")
def recovered(baseline, tmp_path_factory):
  """The baseline workdir with every file of its newest checkpoint truncated and no
  results.json (a run whose last checkpoint was torn as it died), relaunched."""
  workdir = tmp_path_factory.mktemp("corrupt") / "w"
  shutil.copytree(baseline[0], workdir)
  (workdir / "results.json").unlink()
  newest = workdir / "checkpoints" / str(STEPS)
  truncated = 0
  for f in newest.rglob("*"):
    if f.is_file():
      open(f, "w").close()
      truncated += 1
  assert truncated
  handler = _Records()
  logging.getLogger().addHandler(handler)
  try:
    results = _train(workdir)
  finally:
    logging.getLogger().removeHandler(handler)
  return workdir, results, handler.messages


def test_corrupt_newest_checkpoint_is_skipped(baseline, recovered):
  _, results = baseline
  workdir, again, messages = recovered
  warnings = [m for level, m in messages if level >= logging.WARNING and "unreadable" in m]
  assert warnings and f"step {STEPS}" in warnings[0]
  # It resumed at step 20 (not from scratch), and the rows the first run logged after
  # step 20 were dropped before the relaunch logged them again: each (split, step) once.
  rows = _read_jsonl(workdir / "metrics.jsonl")
  assert [r["step"] for r in rows if r["split"] == "train"] == [10, 20, 30, 40]
  keys = [(r["split"], r["step"]) for r in rows]
  assert len(keys) == len(set(keys))
  # Resumed from step 20: the same numbers as the uninterrupted run.
  assert again["step"] == STEPS
  for split in SPLITS:
    assert again[split] == results[split]


def test_corrupt_newest_checkpoint_is_replaced(recovered):
  workdir, _, _ = recovered
  state, _ = _restore(workdir / "checkpoints", STEPS)
  assert int(state["step"]) == STEPS


# ------------------------------------------------------------------ failures


def _nan_experiment():
  """mlp_xor with NaN train inputs: the first step on it has a NaN loss."""
  mod = experiment_lib.load("mlp_xor")

  def get_dataset(config, data_dir):
    ds = mod.get_dataset(config, data_dir)
    return ds.map(lambda s: {**s, "inputs": np.full_like(s["inputs"], np.nan)})

  return dataclasses.replace(mod, get_dataset=get_dataset)


def test_nonfinite_loss_keeps_earlier_checkpoints(baseline, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(baseline[0], workdir)  # checkpoints at 20 and 40
  with pytest.raises(errors.NonFiniteLossError) as info:
    _train(workdir, _config(num_train_steps=80), experiment=_nan_experiment())
  message = str(info.value)
  assert f"at step {STEPS}" in message
  assert f"checkpoint (step {STEPS})" in message
  assert isinstance(info.value, errors.UserError)
  assert _steps(workdir / "checkpoints") == [20, STEPS]
  state, _ = _restore(workdir / "checkpoints", STEPS)
  reference, _ = _restore(baseline[0] / "checkpoints", STEPS)
  _assert_trees_equal(state, reference)
  assert not (workdir / "checkpoints" / "60").exists()


def test_nonfinite_loss_on_first_step(tmp_path):
  with pytest.raises(errors.NonFiniteLossError, match="at step 0") as info:
    _train(tmp_path, _config(), experiment=_nan_experiment())
  assert "no checkpoint" in str(info.value)
  assert not _steps(tmp_path / "checkpoints")


# ------------------------------------------------------------------ duration and stopping


def test_early_stopping(tmp_path):
  cfg = _config(
    num_train_steps=200, eval_every_steps=10, checkpoint_every_steps=100, early_stopping_patience=1
  )
  cfg.optimizer.learning_rate = 0.0  # validation never improves after the first eval
  cfg.optimizer.schedule = "constant"
  results = _train(tmp_path, cfg)
  assert results["stopped_early"] is True
  assert results["step"] == 20
  assert _steps(tmp_path / "checkpoints") == [20]  # the stop is checkpointed
  assert _steps(tmp_path / "best_checkpoint") == [10]
  rows = _read_jsonl(tmp_path / "metrics.jsonl")
  assert max(r["step"] for r in rows) == 20
  # A relaunch sees the stop in the checkpoint and does not train on.
  again = _train(tmp_path, cfg)
  assert again["stopped_early"] is True and again["step"] == 20


def test_patience_zero_never_stops(tmp_path):
  cfg = _config(num_train_steps=30, eval_every_steps=10, early_stopping_patience=0)
  cfg.optimizer.learning_rate = 0.0
  results = _train(tmp_path, cfg)
  assert results["stopped_early"] is False and results["step"] == 30


@pytest.mark.parametrize(
  "epochs,steps_per_epoch,want",
  [(2.5, 6, 15), (1.0, 6, 6), (0.1, 6, 1), (0.01, 6, 1), (3.0, 7, 21), (1.5, 7, 11)],
)
def test_total_steps_from_epochs(epochs, steps_per_epoch, want):
  cfg = _config(num_train_steps=-1, num_epochs=epochs)
  assert train.total_steps(cfg, steps_per_epoch) == want
  assert train.total_steps(_config(num_train_steps=7), steps_per_epoch) == 7


def test_num_epochs_duration(tmp_path):
  # xor: 200 train examples, batch 32 -> 6 steps per epoch; 2.5 epochs -> 15 steps.
  cfg = _config(num_train_steps=-1, num_epochs=2.5, eval_every_steps=0)
  results = _train(tmp_path, cfg)
  assert results["step"] == math.ceil(2.5 * 6) == 15
  rows = _read_jsonl(tmp_path / "metrics.jsonl")
  # eval_every_steps=0: validation once per epoch, and at the end.
  assert [r["step"] for r in rows if r["split"] == "validation"] == [6, 12, 15]


# ------------------------------------------------------------------ parallelism


# ------------------------------------------------------------------ config validation


@pytest.mark.parametrize(
  "field,value",
  [
    ("parallel", "bogus"),
    ("batch_size", 0),
    ("batch_size", -32),
    ("eval_batch_size", -1),
    ("log_every_steps", -1),
    ("checkpoint_every_steps", 0),
    ("keep_checkpoints", -2),
    ("eval_every_steps", -5),
    ("eval_examples", -1),
    ("early_stopping_patience", -1),
    ("best_mode", "median"),
  ],
)
def test_validate_names_the_field(field, value):
  cfg = _config(**{field: value})
  with pytest.raises(errors.ConfigError, match=f"--config.{field}="):
    config_lib.validate(cfg, 1)


def test_validate_names_train_eval_examples():
  cfg = _config(train_eval_examples=-1)
  with pytest.raises(errors.ConfigError, match="--config.train_eval_examples=-1"):
    config_lib.validate(cfg, 1)


def test_validate_duration():
  cfg = _config(num_train_steps=-1, num_epochs=-1.0)
  with pytest.raises(errors.ConfigError, match="--config.num_epochs="):
    config_lib.validate(cfg, 1)
  config_lib.validate(_config(num_train_steps=5, num_epochs=-1.0), 1)  # epochs unused
  config_lib.validate(_config(num_train_steps=0, num_epochs=-1.0), 1)  # evaluation only
  assert train.total_steps(_config(num_train_steps=0), 6) == 0


@pytest.mark.parametrize("field", ["batch_size", "eval_batch_size"])
def test_validate_batch_divisible_by_devices(field):
  cfg = _config(batch_size=32, eval_batch_size=256)
  cfg[field] = 30
  with pytest.raises(errors.ConfigError, match=f"--config.{field}=30.*devices \\(4\\)"):
    config_lib.validate(cfg, 4)
  config_lib.validate(_config(batch_size=32, eval_batch_size=256), 4)


def test_train_rejects_bad_config_before_writing(tmp_path):
  with pytest.raises(errors.ConfigError, match="--config.parallel='bogus'") as info:
    _train(tmp_path, parallel="bogus")
  assert isinstance(info.value, errors.UserError)
  assert not (tmp_path / "config.json").exists()
  with pytest.raises(errors.ConfigError, match="--config.batch_size"):
    _train(tmp_path, batch_size=-1)


def test_unknown_best_metric_is_a_config_error(tmp_path):
  with pytest.raises(errors.ConfigError, match="best_metric='bogus'"):
    _train(tmp_path, num_train_steps=10, eval_every_steps=10, best_metric="bogus")


def test_config_error_is_a_value_error():
  assert issubclass(errors.ConfigError, ValueError)
  assert issubclass(errors.NonFiniteLossError, errors.UserError)


# ------------------------------------------------------------------ set-level evaluation


def _numpy_cross_entropy(logits, labels):
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return -log_probs[np.arange(len(labels)), labels]


def _median_experiment(calls):
  """mlp_xor plus a set-level metric: the median of the per-example losses."""
  mod = experiment_lib.load("mlp_xor")

  def evaluate(ctx, split):
    data = ctx.examples(split)
    logits = np.concatenate([np.asarray(out) for _, out in ctx.outputs(data, batch_size=7)])
    calls.append((split, ctx.step))
    return {"median_loss": float(np.median(_numpy_cross_entropy(logits, data["targets"])))}

  return dataclasses.replace(mod, evaluate=evaluate)


def test_set_level_metric_lands_beside_the_means(tmp_path):
  calls = []
  cfg = _config(best_metric="median_loss", best_mode="min")
  results = _train(tmp_path, cfg, experiment=_median_experiment(calls))
  assert calls == [
    ("validation", 20),
    ("validation", 40),
    ("test", 40),
    ("train", 40),  # the final validation is the one at step 40, not scored again
  ]
  # Independently: the final parameters, the whole test split, NumPy's median.
  state, _ = _restore(tmp_path / "checkpoints", STEPS)
  mod = experiment_lib.load("mlp_xor")
  test = mod.get_dataset(cfg, None).test
  logits = mod.get_model(cfg).apply({"params": state["params"]}, test["inputs"])
  expected = np.median(_numpy_cross_entropy(logits, test["targets"]))
  assert results["test"]["median_loss"] == pytest.approx(expected, rel=1e-5)
  assert set(results["test"]) == {"loss", "accuracy", "median_loss"}
  rows = [r for r in _read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "validation"]
  assert [r["step"] for r in rows] == [20, 40] and all("median_loss" in r for r in rows)
  # best_metric may name it: the best checkpoint is the step with the lowest median.
  best = min(rows, key=lambda r: r["median_loss"])
  assert _steps(tmp_path / "best_checkpoint") == [best["step"]]
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["validation"]["median_loss"] == results["validation"]["median_loss"]


def test_set_level_metric_goes_to_tensorboard(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  _train(tmp_path, _config(num_train_steps=20), experiment=_median_experiment([]))
  events = event_accumulator.EventAccumulator(str(tmp_path))
  events.Reload()
  tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
  assert {"validation/median_loss", "final_test/median_loss"} <= tags


def test_set_level_metric_may_not_shadow_a_mean(tmp_path):
  mod = experiment_lib.load("mlp_xor")
  clash = dataclasses.replace(mod, evaluate=lambda ctx, split: {"loss": 0.0})
  with pytest.raises(errors.UserError, match="evaluate returned loss"):
    _train(tmp_path, _config(num_train_steps=20), experiment=clash)


# ------------------------------------------------------------------ streams


def test_stream_trains_on_fresh_batches(tmp_path):
  mod = experiment_lib.load("mlp_xor")
  cfg = mod.config("stream")
  dataset = mod.get_dataset(cfg, None)
  first, again, second = dataset.batch(0, 0), dataset.batch(0, 0), dataset.batch(0, 1)
  np.testing.assert_array_equal(first["inputs"], again["inputs"])
  assert not np.array_equal(first["inputs"], second["inputs"])
  results = _train(tmp_path, cfg, experiment=mod)
  assert results["test"]["accuracy"] >= 0.97
  # 'train' is scored on the first examples the stream made.
  sample = dataset.train_sample(cfg.seed, 100)
  np.testing.assert_array_equal(sample["inputs"][:32], first["inputs"])
  assert set(results["train"]) == {"loss", "accuracy"}


def test_stream_needs_a_step_count(tmp_path):
  mod = experiment_lib.load("mlp_xor")
  cfg = mod.config("stream")
  cfg.num_train_steps = -1
  with pytest.raises(errors.ConfigError, match="num_train_steps"):
    _train(tmp_path, cfg, experiment=mod)
  cfg = mod.config("stream")
  cfg.eval_every_steps = 0
  with pytest.raises(errors.ConfigError, match="eval_every_steps"):
    _train(tmp_path, cfg, experiment=mod)


def test_stream_batch_of_the_wrong_size_is_an_error(tmp_path):
  mod = experiment_lib.load("mlp_xor")

  def get_dataset(config, data_dir):
    stream = mod.get_dataset(config, data_dir)
    return dataclasses.replace(
      stream, batch=lambda seed, step: core.take(stream.batch(seed, step), slice(0, 5))
    )

  cfg = mod.config("stream")
  with pytest.raises(ValueError, match="has 5 examples, not --config.batch_size=32"):
    _train(tmp_path, cfg, experiment=dataclasses.replace(mod, get_dataset=get_dataset))


# ------------------------------------------------------------------ the loop's parts


@pytest.mark.parametrize(
  "step,every,total,due",
  [(10, 10, 40, True), (11, 10, 40, False), (40, 30, 40, True), (39, 30, 40, False)],
)
def test_due(step, every, total, due):
  assert train._due(step, every, total) is due  # pylint: disable=protected-access


def test_best_tracker_min_max_and_patience():
  tracker = train.BestTracker("loss", "min", patience=2)
  assert [tracker.update(v) for v in (3.0, 2.0, 2.0)] == [True, True, False]
  assert not tracker.stopped
  assert tracker.update(2.5) is False and tracker.stopped and tracker.bad_evals == 2
  restored = train.BestTracker("loss", "min", patience=2)
  restored.restore(tracker.meta())
  assert restored == tracker
  high = train.BestTracker("accuracy", "max", patience=0)
  assert [high.update(v) for v in (0.5, 0.7, 0.6)] == [True, True, False]
  assert not high.stopped


def test_trainer_has_no_hasattr():
  assert "hasattr" not in (REPO / "dlx" / "train.py").read_text()


def test_fast_compile_needs_the_mesh_mode():
  with pytest.raises(errors.ConfigError, match="--config.fast_compile=True: works with"):
    config_lib.validate(_config(fast_compile=True, parallel="pmap"), 1)
  config_lib.validate(_config(fast_compile=True), 1)


def test_fast_compile_trains_to_nearly_the_same_numbers(baseline, tmp_path):
  # XLA's optimisation level 0 rounds differently, nothing more.
  _, results = baseline
  fast = _train(tmp_path, fast_compile=True)
  for split in SPLITS:
    np.testing.assert_allclose(fast[split]["loss"], results[split]["loss"], rtol=1e-3)


# ------------------------------------------------------------------ the grain pipeline


def test_grain_pipeline_trains_and_resumes_like_the_memory_one(baseline, tmp_path):
  """grain reads the memory pipeline's batches (dlx/data/grain_pipeline.py), so an
  in-memory dataset through grain, stopped halfway and resumed, gives the baseline's numbers."""
  _, results = baseline
  _train(tmp_path / "resumed", num_train_steps=STEPS // 2, input_pipeline="grain")
  _, meta = _restore(tmp_path / "resumed" / "checkpoints", STEPS // 2)
  assert meta["input_pipeline"] == "grain"
  # The loader read ahead of the model; the state saved is the one after the last batch
  # trained on (grain record = step, 0-based).
  assert meta["data_state"]["last_seen_indices"] == {"0": STEPS // 2 - 1}
  resumed = _train(tmp_path / "resumed", input_pipeline="grain")
  for split in SPLITS:
    assert resumed[split] == results[split]
  with pytest.raises(errors.ConfigError, match="input_pipeline=memory: .* by the grain pipeline"):
    _train(tmp_path / "resumed", num_train_steps=2 * STEPS)


def test_grain_with_a_stream_is_a_config_error(tmp_path):
  mod = experiment_lib.load("mlp_xor")
  cfg = mod.config("stream")
  cfg.input_pipeline = "grain"
  with pytest.raises(errors.ConfigError, match="input_pipeline=grain: .* a Stream"):
    _train(tmp_path, cfg, experiment=mod)


def test_validate_names_the_input_pipeline_fields():
  with pytest.raises(errors.ConfigError, match="--config.input_pipeline='disk': choose one"):
    config_lib.validate(_config(input_pipeline="disk"), 1)
  with pytest.raises(errors.ConfigError, match="--config.grain_workers=-1: must be >= 0"):
    config_lib.validate(_config(grain_workers=-1), 1)
