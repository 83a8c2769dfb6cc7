"""A relaunch into a workdir (dlx/training/relaunch.py): the same run continues, a change
of what it computes is refused in one line, a finished run keeps its results, and torn
or unreadable files never make a run start over silently."""

import json
import os
import shutil

import pytest

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx import train
from dlx.training import metric_writers
from dlx.training import relaunch

STEPS = 40


def _config(**overrides):
  config = experiment_lib.load("mlp_xor").config()
  fields = dict(num_train_steps=STEPS, log_every_steps=10, eval_every_steps=20)
  fields.update(checkpoint_every_steps=20, **overrides)
  return config_lib.override(config, **fields)


def _train(workdir, **overrides):
  return train.train_and_evaluate(_config(**overrides), str(workdir), experiment="mlp_xor")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished 40-step mlp_xor run: (workdir, its results.json bytes)."""
  workdir = tmp_path_factory.mktemp("finished")
  _train(workdir)
  return workdir, (workdir / "results.json").read_bytes()


def _copy(finished, tmp_path):
  target = tmp_path / "w"
  shutil.copytree(finished[0], target)
  return target


def test_every_allowed_field_is_a_base_config_field():
  fields = relaunch.flatten(config_lib.base_config().to_dict())
  assert relaunch.EXTENDS_OR_OBSERVES <= fields.keys()


@pytest.mark.parametrize(
  "field, computes",
  [
    ("optimizer.learning_rate", True),
    ("model.hidden", True),
    ("seed", True),
    ("batch_size", True),
    ("dtype", True),
    ("init_from", True),
    ("num_train_steps", False),
    ("num_epochs", False),
    ("eval_every_steps", False),
    ("checkpoint_every_steps", False),
    ("eval_examples", False),
    ("parallel", False),
  ],
)
def test_each_field_class(field, computes):
  assert relaunch.computing(field) is computes


def test_changes_compare_nested_fields_and_ignore_fields_one_side_lacks():
  old = {"seed": 0, "optimizer": {"learning_rate": 0.1, "name": "adam"}, "old_only": 1}
  new = {"seed": 0, "optimizer": {"learning_rate": 0.2, "name": "adam"}, "new_only": 2}
  assert relaunch.changes(old, new) == [("optimizer.learning_rate", 0.1, 0.2)]
  assert relaunch.changes({"hidden": [8, 8]}, {"hidden": (8, 8)}) == []


def test_a_computing_change_is_refused_in_one_line_and_changes_nothing(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
  with pytest.raises(errors.ConfigChangedError) as refused:
    _train(workdir, **{"optimizer.learning_rate": 0.001, "seed": 3})
  message = str(refused.value)
  assert "\n" not in message
  assert "optimizer.learning_rate 0.03 -> 0.001" in message and "seed 0 -> 3" in message
  assert "--workdir" in message and f"--config.init_from={workdir}" in message
  assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == before


def test_a_finished_run_relaunched_unchanged_keeps_its_results(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  rows = (workdir / "metrics.jsonl").read_bytes()
  results = _train(workdir)
  assert (workdir / "results.json").read_bytes() == finished[1]
  assert results == json.loads(finished[1])
  assert (workdir / "metrics.jsonl").read_bytes() == rows
  assert not (workdir / relaunch.CHANGES_FILE).exists()


def test_more_steps_continue_the_run_and_are_recorded(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  results = _train(workdir, num_train_steps=60)
  assert results["step"] == json.loads((workdir / "results.json").read_text())["step"] == 60
  # The results of the run's earlier end are kept, not overwritten.
  assert (workdir / "results_step40.json").read_bytes() == finished[1]
  (row,) = [json.loads(line) for line in (workdir / relaunch.CHANGES_FILE).open()]
  assert row["from_step"] == 40 and row["changes"] == {"num_train_steps": {"old": 40, "new": 60}}
  assert json.loads((workdir / "config.json").read_text())["num_train_steps"] == 60
  keys = [(r["split"], r["step"]) for r in metric_writers.read_metrics(workdir)]
  assert len(keys) == len(set(keys)) and ("train", 60) in keys


def test_a_torn_results_file_is_an_unfinished_run(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  (workdir / "results.json").write_text('{"step": 4')
  results = _train(workdir)
  assert json.loads((workdir / "results.json").read_text()) == results
  assert results["test"] == json.loads(finished[1])["test"]


def test_rows_after_the_restored_step_are_dropped_with_torn_lines(finished, tmp_path):
  """A run killed after logging step 40 but whose step-40 checkpoint was lost resumes at
  20; the rows past 20, and a torn last line, are dropped before they are logged again."""
  workdir = _copy(finished, tmp_path)
  (workdir / "results.json").unlink()
  shutil.rmtree(workdir / "checkpoints" / "40")
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 50, "split": "tra')
  _train(workdir)
  keys = [(r["split"], r["step"]) for r in metric_writers.read_metrics(workdir)]
  assert len(keys) == len(set(keys))
  assert [s for split, s in keys if split == "train"] == [10, 20, 30, 40]
  assert '"tra\n' not in (workdir / "metrics.jsonl").read_text()


def test_checkpoints_of_which_none_restores_stop_the_run(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  (workdir / "results.json").unlink()
  for f in (workdir / "checkpoints").rglob("*"):
    if f.is_file():
      f.write_bytes(b"")
  before = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
  with pytest.raises(errors.CheckpointsUnreadableError) as stopped:
    _train(workdir)
  message = str(stopped.value)
  assert "\n" not in message and "step 40:" in message and "step 20:" in message
  assert "--move_aside" in message
  assert sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")) == before


def test_a_failed_first_launch_leaves_no_config_to_compare(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"seed": 5}))
  assert relaunch.check(tmp_path, json.dumps({"seed": 6})) == []


def test_move_aside_keeps_everything(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "results.json").write_text("{}")
  moved = relaunch.move_aside(workdir)
  assert moved.startswith(f"{workdir}.discarded-")
  assert os.listdir(workdir) == [] and os.listdir(moved) == ["results.json"]
  assert relaunch.move_aside(workdir) is None  # nothing to move


def test_write_json_atomic_leaves_no_temporary_file(tmp_path):
  path = tmp_path / "results.json"
  relaunch.write_json_atomic(path, {"a": 1}, indent=2)
  relaunch.write_json_atomic(path, {"a": 2})
  assert json.loads(path.read_text()) == {"a": 2}
  assert os.listdir(tmp_path) == ["results.json"]


def test_a_save_cut_short_leaves_no_temporary_folder_after_the_next_start(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  torn = workdir / "checkpoints" / "60.orbax-checkpoint-tmp-1796620000000000"
  torn.mkdir()
  (torn / "partial").write_bytes(b"\0" * 10)
  results = _train(workdir, num_train_steps=60)
  assert results["step"] == 60
  assert not list((workdir / "checkpoints").glob("*tmp*"))
