"""Runs that start from runs (dlx/training/warm_start.py): `init_from` and a frozen `teacher`."""

import jax.numpy as jnp
import numpy as np
import pytest

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx import losses
from dlx import train
from dlx.tasks import classification
from dlx.training import warm_start
from tests import conftest

STEPS = 40


def _config(**overrides):
  config = experiment_lib.load("mlp_xor").config()
  config.num_train_steps = STEPS
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 20
  return config_lib.override(config, **overrides)


def _train(workdir, config, experiment="mlp_xor"):
  return train.train_and_evaluate(config, str(workdir), experiment=experiment)


def _params(directory, step):
  return conftest.restore_checkpoint(directory, step)[0]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
  """A finished mlp_xor run; best checkpoint by validation accuracy. (Runs that start
  from it share its seed, hence its data; their own initialisation is replaced.)"""
  workdir = tmp_path_factory.mktemp("source")
  results = _train(workdir, _config(best_metric="accuracy", best_mode="max"))
  return workdir, results


def _assert_trees_equal(a, b):
  flat_a, flat_b = warm_start._flatten(a), warm_start._flatten(b)  # pylint: disable=protected-access
  assert flat_a.keys() == flat_b.keys()
  for key in flat_a:
    np.testing.assert_array_equal(np.asarray(flat_a[key]), np.asarray(flat_b[key]), key)


def test_parse_ref():
  assert warm_start.parse_ref("/a/b") == ("/a/b", None)
  assert warm_start.parse_ref("/a/b:best") == ("/a/b", "best")
  assert warm_start.parse_ref("/a/b:latest") == ("/a/b", "latest")
  assert warm_start.parse_ref("/a:b/c") == ("/a:b/c", None)


def test_fine_tuning_starts_at_the_source_runs_test_accuracy(source_run, tmp_path):
  source, results = source_run
  # lr 0: the one step changes nothing, so evaluation sees the initial parameters.
  config = _config(init_from=f"{source}:latest", num_train_steps=1)
  config.optimizer.learning_rate = 0.0
  tuned = _train(tmp_path, config)
  assert tuned["test"] == results["test"]
  _assert_trees_equal(
    _params(tmp_path / "checkpoints", 1)["params"], _params(source / "checkpoints", STEPS)["params"]
  )


def test_an_evaluation_only_run_scores_the_source_run(source_run, tmp_path):
  source, results = source_run
  scored = _train(tmp_path, _config(init_from=f"{source}:latest", num_train_steps=0))
  assert scored["step"] == 0
  for split in ("test", "validation", "train"):
    assert scored[split] == results[split]


def test_init_from_defaults_to_the_best_checkpoint(source_run, tmp_path):
  source, _ = source_run
  (best_step,) = conftest.checkpoint_steps(source / "best_checkpoint")
  config = _config(init_from=str(source), num_train_steps=1)
  config.optimizer.learning_rate = 0.0
  _train(tmp_path, config)
  _assert_trees_equal(
    _params(tmp_path / "checkpoints", 1)["params"],
    _params(source / "best_checkpoint", best_step)["params"],
  )


def test_init_from_keys_takes_only_those_sub_trees(source_run, tmp_path):
  source, _ = source_run
  config = _config(init_from=f"{source}:latest", init_from_keys="Dense_0", num_train_steps=1)
  config.optimizer.learning_rate = 0.0
  _train(tmp_path / "part", config)
  fresh_config = _config(num_train_steps=1)
  fresh_config.optimizer.learning_rate = 0.0
  _train(tmp_path / "fresh", fresh_config)
  part = _params(tmp_path / "part" / "checkpoints", 1)["params"]
  theirs = _params(source / "checkpoints", STEPS)["params"]
  fresh = _params(tmp_path / "fresh" / "checkpoints", 1)["params"]
  _assert_trees_equal(part["Dense_0"], theirs["Dense_0"])
  _assert_trees_equal(part["Dense_1"], fresh["Dense_1"])  # not taken: its own init
  assert not np.array_equal(part["Dense_1"]["kernel"], theirs["Dense_1"]["kernel"])


def test_a_shape_mismatch_names_the_parameter_and_both_shapes(source_run, tmp_path):
  source, _ = source_run
  config = _config(init_from=str(source), **{"model.hidden": (16,)})
  with pytest.raises(
    errors.ConfigError,
    match=r"parameter 'Dense_0/bias': this model has "
    r"shape \(16,\), the run .* \(step 40\) has \(8,\)",
  ):
    _train(tmp_path, config)


@pytest.mark.parametrize(
  "ref,message",
  [
    ("{tmp}/nowhere", "no such run directory"),
    ("{tmp}/empty:latest", "has no latest checkpoint"),
  ],
)
def test_bad_references_are_config_errors(tmp_path, ref, message):
  (tmp_path / "empty").mkdir()
  with pytest.raises(errors.ConfigError, match=message):
    _train(tmp_path / "w", _config(init_from=ref.format(tmp=tmp_path)))


def test_a_run_without_a_best_checkpoint_says_use_latest(tmp_path):
  _train(tmp_path / "a", _config(best_metric="", num_train_steps=20))
  with pytest.raises(errors.ConfigError, match="use :latest"):
    _train(tmp_path / "b", _config(init_from=f"{tmp_path / 'a'}:best"))


def test_resuming_takes_the_runs_own_checkpoint_not_init_from(source_run, tmp_path):
  source, _ = source_run
  straight = _train(tmp_path / "straight", _config(num_train_steps=20, init_from=str(source)))
  # A run from init_from stopped at step 10 and relaunched to 20 resumes its own
  # checkpoint: the same numbers as the straight run (not a second start from source).
  _train(tmp_path / "w", _config(num_train_steps=10, init_from=str(source)))
  resumed = _train(tmp_path / "w", _config(num_train_steps=20, init_from=str(source)))
  assert resumed["test"] == straight["test"]
  # Setting init_from on a run that has trained changes what it computes: refused.
  _train(tmp_path / "plain", _config(num_train_steps=10))
  with pytest.raises(errors.ConfigChangedError, match="init_from '' -> "):
    _train(tmp_path / "plain", _config(num_train_steps=10, init_from=str(source)))


# ------------------------------------------------------------------ teacher


def _student_loss(logits, batch):
  """The student's own loss, plus the teacher's on the same batch, as metrics."""
  teacher = batch["teacher_outputs"]
  return {
    "loss": losses.softmax_cross_entropy(logits, batch["targets"]),
    "teacher_loss": losses.softmax_cross_entropy(teacher, batch["targets"]),
    "teacher_accuracy": classification.accuracy(teacher, batch["targets"]),
  }


def _student(final_reports):
  mlp_xor = experiment_lib.load("mlp_xor")

  def final_report(ctx):
    final_reports.append(ctx)
    return {}

  return experiment_lib.build(
    "student",
    get_config=mlp_xor.get_config,
    get_model=mlp_xor.get_model,
    get_dataset=mlp_xor.get_dataset,
    loss=_student_loss,
    final_report=final_report,
  )


def test_a_loss_reading_the_teacher_gets_the_teacher_runs_own_numbers(tmp_path):
  # Same seed, same data: the teacher is scored on exactly the examples the student sees.
  teacher_results = _train(tmp_path / "teacher", _config(best_metric=""))
  contexts = []
  config = _config(
    teacher=str(tmp_path / "teacher"),
    num_train_steps=20,
    eval_every_steps=10,
    **{"model.hidden": (4,)},
  )
  config.experiment = "student"
  student = _train(tmp_path / "student", config, experiment=_student(contexts))
  for split in ("test", "validation", "train"):
    np.testing.assert_allclose(
      student[split]["teacher_loss"], teacher_results[split]["loss"], rtol=1e-6
    )
    assert student[split]["teacher_accuracy"] == teacher_results[split]["accuracy"]
  # The teacher is frozen: the same numbers at every evaluation, while the student moves.
  rows = [
    r
    for r in conftest.read_jsonl(tmp_path / "student" / "metrics.jsonl")
    if r["split"] == "validation"
  ]
  assert len({r["teacher_loss"] for r in rows}) == 1 and len({r["loss"] for r in rows}) == 2
  # Hooks see it too, and checkpoints never hold its variables.
  (ctx,) = contexts
  assert ctx.teacher.experiment.name == "mlp_xor" and ctx.teacher.step == STEPS
  logits = ctx.teacher.apply(jnp.asarray(ctx.dataset.test["inputs"]))
  assert logits.shape == (len(ctx.dataset.test["inputs"]), 2)
  assert set(_params(tmp_path / "student" / "checkpoints", 20)) == {
    "step",
    "params",
    "opt_state",
    "model_state",
    "rng",
  }


def test_teacher_must_be_a_dlx_workdir(tmp_path):
  config = _config(teacher=str(tmp_path))
  with pytest.raises(errors.ConfigError, match="config.json is missing"):
    _train(tmp_path / "w", config)
