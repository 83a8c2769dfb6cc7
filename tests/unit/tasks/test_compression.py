"""Distillation, pruning and quantization through the trainer (dlx/tasks/compression/):
the distillation loss reads the teacher, masks survive training, checkpoints and resume,
and a quantized copy of a trained run is scored beside it."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx import losses
from dlx import train
from dlx.tasks import classification
from dlx.tasks.compression import distillation
from dlx.tasks.compression import pruning
from dlx.tasks.compression import quantization
from tests import conftest

STEPS = 40


def test_distillation_loss_reads_the_teacher_outputs():
  config = config_lib.base_config()
  config.temperature, config.alpha = 4.0, 0.7
  loss = distillation.get_loss(config)
  rng = np.random.default_rng(0)
  student, teacher = (jnp.asarray(rng.normal(size=(6, 10)), jnp.float32) for _ in range(2))
  labels = jnp.asarray(rng.integers(0, 10, size=6))
  out = loss(student, {"targets": labels, "teacher_outputs": teacher})
  np.testing.assert_allclose(
    out["loss"], losses.distillation_loss(student, teacher, labels, 4.0, 0.7), rtol=1e-6
  )
  np.testing.assert_allclose(
    out["hard_loss"], losses.softmax_cross_entropy(student, labels), rtol=1e-6
  )
  # alpha * soft + (1 - alpha) * hard is the loss: the two terms are reported apart.
  np.testing.assert_allclose(
    out["loss"], 0.7 * out["soft_loss"] + 0.3 * out["hard_loss"], rtol=1e-5
  )
  np.testing.assert_array_equal(out["teacher_accuracy"], classification.accuracy(teacher, labels))


def test_distillation_without_a_teacher_is_an_error_outside_smoke_runs():
  config = config_lib.base_config()
  config.temperature, config.alpha = 4.0, 0.7
  logits, batch = jnp.zeros((2, 10)), {"targets": jnp.array([1, 2])}
  with pytest.raises(errors.ConfigError, match="teacher"):
    distillation.get_loss(config)(logits, batch)
  config.smoke = True  # a smoke run distills from a uniform teacher
  assert np.all(np.isfinite(distillation.get_loss(config)(logits, batch)["loss"]))


def test_an_experiment_that_starts_from_a_run_says_which_command_makes_it(tmp_path):
  exp = experiment_lib.load("distill_mnist")
  with pytest.raises(errors.ConfigError, match=r"teacher=WORKDIR.*launch.sh mlp_teacher_mnist"):
    train.train_and_evaluate(exp.config(), str(tmp_path), experiment=exp)
  assert not (tmp_path / "results.json").exists()


# ------------------------------------------------------------------ pruning


def _pruning_config(**overrides):
  config = experiment_lib.load("mlp_xor").config()
  config.model.hidden = (32,)
  pruning.pruning_config(config, sparsity=0.5)
  config.pruning.every = 5
  config.pruning.one_shot_levels = (0.5, 0.9)
  config.num_train_steps = STEPS
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 10
  config.best_metric = ""
  return config_lib.override(config, **overrides)


def _pruning_experiment():
  xor = experiment_lib.load("mlp_xor")
  return experiment_lib.build(
    "prune_xor",
    get_config=lambda arg=None: _pruning_config(),
    get_model=xor.get_model,
    get_dataset=xor.get_dataset,
    loss=classification.classification,
    make_optimizer=pruning.make_optimizer,
    evaluate=pruning.evaluate,
    final_report=pruning.final_report,
  )


def _checkpoint(directory, step):
  return conftest.restore_checkpoint(directory, step)[0]


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("pruned")
  results = train.train_and_evaluate(
    _pruning_config(), str(workdir), experiment=_pruning_experiment()
  )
  return workdir, results


def test_pruning_reaches_the_requested_sparsity_and_reports_it(pruned_run):
  workdir, results = pruned_run
  # The ramp ends at 60% of the run (update 24): masks are updated every 5 updates and
  # at 24, where the schedule reaches its final sparsity.
  report = results["report"]
  prunable = 2 * 32 + 32 * 2
  assert report["size"] == prunable
  assert report["nonzero"] == prunable - int(0.5 * prunable)
  assert report["sparsity"] == pytest.approx(0.5)
  assert results["test"]["sparsity"] == pytest.approx(0.5)  # the set-level metric
  assert report["dense_test_accuracy"] - report["test_accuracy"] == pytest.approx(
    report["accuracy_drop"]
  )
  assert [p["sparsity"] for p in report["one_shot"]] == [0.5, 0.9]
  conftest.assert_png(workdir / "sparsity_curve.png")
  validation = [
    r for r in conftest.read_jsonl(workdir / "metrics.jsonl") if r["split"] == "validation"
  ]
  sparsities = [r["sparsity"] for r in validation]
  assert sparsities == sorted(sparsities) and sparsities[-1] == pytest.approx(0.5)


def test_pruned_weights_are_zero_in_every_checkpoint_and_the_masks_are_saved(pruned_run):
  workdir, _ = pruned_run
  for step in (30, 40):
    state = _checkpoint(workdir / "checkpoints", step)
    masks = state["opt_state"][1]["masks"]  # chain(optimizer, pruning): PruningState
    for layer, leaves in state["params"].items():
      kernel, keep = np.asarray(leaves["kernel"]), np.asarray(masks[layer]["kernel"])
      assert keep.dtype == bool and (~keep).any()
      assert np.all(kernel[~keep] == 0.0) and np.all(kernel[keep] != 0.0)


def test_a_pruning_run_resumed_after_a_crash_ends_identical(pruned_run, tmp_path):
  """A crash after the step-20 checkpoint (later checkpoints and results lost), then a
  relaunch: the masks come back from the optimizer state and the run ends identical."""
  workdir, results = pruned_run
  crashed = tmp_path / "crashed"
  shutil.copytree(workdir, crashed)
  for step in (30, 40):
    shutil.rmtree(crashed / "checkpoints" / str(step))
  os.remove(crashed / "results.json")
  resumed = train.train_and_evaluate(
    _pruning_config(), str(crashed), experiment=_pruning_experiment()
  )
  for split in ("test", "validation", "train"):
    assert resumed[split] == results[split]
  a, b = _checkpoint(crashed / "checkpoints", 40), _checkpoint(workdir / "checkpoints", 40)
  for layer in a["params"]:
    np.testing.assert_array_equal(a["params"][layer]["kernel"], b["params"][layer]["kernel"])


def test_structured_pruning_of_a_run_reports_the_flops_it_saves(pruned_run, tmp_path):
  """init_from a dense run, drop half the hidden units: FLOPs of the two dense layers
  fall by the kept fractions (dlx.tools.model_stats's per-layer FLOPs)."""
  source, _ = pruned_run
  config = _pruning_config(init_from=f"{source}:latest")
  config.pruning.kind, config.pruning.exclude = "units", ("Dense_1",)
  results = train.train_and_evaluate(config, str(tmp_path), experiment=_pruning_experiment())
  report = results["report"]
  assert report["kept_units"] == {"Dense_0": 0.5, "Dense_1": 1.0}
  # Dense_0 keeps half its outputs; Dense_1 reads only those: both halve.
  assert report["pruned_flops"] == pytest.approx(report["dense_flops"] / 2, rel=0.05)
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["report"]["flops_reduction"] == pytest.approx(2.0, rel=0.05)


# ------------------------------------------------------------------ quantization


def test_quantization_report_of_a_trained_run(pruned_run, tmp_path):
  """An evaluation-only run of a trained model: its float accuracy is the run's own test
  accuracy, and int8 inference stays close to it."""
  source, _ = pruned_run
  xor = experiment_lib.load("mlp_xor")
  exp = experiment_lib.build(
    "quantize_xor",
    get_config=lambda arg=None: None,
    get_model=xor.get_model,
    get_dataset=xor.get_dataset,
    loss=classification.classification,
    final_report=quantization.final_report,
  )
  config = quantization.quantization_config(_pruning_config(init_from=f"{source}:latest"))
  del config.pruning
  config.quantization.calibration_examples = 100
  results = train.train_and_evaluate(config, str(tmp_path), experiment=exp)
  report = results["report"]
  assert results["step"] == 0
  assert report["float_accuracy"] == pytest.approx(results["test"]["accuracy"])
  for scheme in quantization.QUANTIZATION_SCHEMES:
    assert abs(report[f"{scheme}_drop"]) <= 0.05, report
  assert report["quantized_layers"] == ["Dense_0", "Dense_1"]
  weights = 2 * 32 + 32 * 2
  assert report["float_bytes"] == 4 * (weights + 32 + 2)
  assert report["int8_bytes"] == weights + 4 * (32 + 2) + 4 * (32 + 2)
  assert report["calibration_examples"] == 100
