"""Command-line tests: `python -m dlx.main` and `python -m dlx.tools.sweep` in subprocesses."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from dlx.tools import sweep
from tests import conftest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _env():
  env = conftest.subprocess_env()
  env.pop("TFDS_DATA_DIR", None)
  return env


def _run(*args, module="dlx.main", timeout=300):
  start = time.perf_counter()
  done = subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=REPO,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  return done, time.perf_counter() - start


def _assert_one_line_error(done):
  assert done.returncode != 0
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  lines = done.stderr.splitlines()
  assert len(lines) == 1, done.stderr[-3000:]
  assert lines[0].startswith("dlx: error: ")
  return lines[0]


@pytest.mark.parametrize(
  "args,expect",
  [
    (
      ["--config=experiments/no_such_experiment.py", "--workdir={w}"],
      ["no_such_experiment", "mlp_xor"],
    ),
    (["--config=no_such_experiment", "--workdir={w}"], ["no_such_experiment", "mlp_xor"]),
    (
      ["--config=experiments/classic/mlp_xor.py", "--workdir={w}", "--config.no_such_field=1"],
      ["no_such_field"],
    ),
    (
      ["--config=experiments/classic/mlp_xor.py", "--workdir={w}", "--config.batch_size=abc"],
      ["batch_size", "abc"],
    ),
    (["--config=experiments/classic/mlp_xor.py"], ["--workdir"]),
    (["--workdir={w}"], ["--config"]),
    (
      ["--config=experiments/classic/mlp_xor.py", "--workdir={w}", "--config.parallel=bogus"],
      ["--config.parallel", "bogus"],
    ),
  ],
  ids=[
    "unknown_experiment_path",
    "unknown_experiment_name",
    "unknown_field",
    "bad_value_type",
    "missing_workdir",
    "missing_config",
    "bad_value",
  ],
)
def test_bad_input_is_one_line(args, expect, tmp_path):
  done, _ = _run(*[a.format(w=tmp_path / "w") for a in args])
  line = _assert_one_line_error(done)
  for text in expect:
    assert text in line
  assert not (tmp_path / "w" / "results.json").exists()


def test_experiment_name_as_config_runs(tmp_path):
  # --config may name an experiment instead of giving its file.
  done, _ = _run(
    "--config=mlp_xor:linear", f"--workdir={tmp_path / 'w'}", "--config.num_train_steps=10"
  )
  assert done.returncode == 0, done.stderr[-3000:]
  config = json.loads((tmp_path / "w" / "config.json").read_text())
  assert config["architecture"] == "linear"


def test_unknown_experiment_name_is_one_line(tmp_path):
  done, _ = _run("--config=no_such_experiment", f"--workdir={tmp_path / 'w'}")
  line = _assert_one_line_error(done)
  assert "no_such_experiment" in line and "mlp_xor" in line


def test_get_config_error_is_one_line_without_traceback(tmp_path):
  path = tmp_path / "broken.py"
  path.write_text(
    "def get_config():\n  raise ValueError('boom')\n"
    "def get_model(config):\n  pass\n"
    "def get_dataset(config, data_dir):\n  pass\n"
    "def loss(outputs, batch):\n  pass\n"
  )
  done, _ = _run(f"--config={path}", f"--workdir={tmp_path / 'w'}")
  line = _assert_one_line_error(done)
  assert "boom" in line


def test_misspelled_hook_is_one_line(tmp_path):
  path = tmp_path / "typo.py"
  source = (REPO / "experiments" / "classic" / "mlp_xor.py").read_text()
  path.write_text(source + "\ndef final_reprot(ctx):\n  return {}\n")
  line = _assert_one_line_error(_run(f"--config={path}", f"--workdir={tmp_path / 'w'}")[0])
  assert "'final_reprot'" in line and "did you mean 'final_report'" in line


def test_unknown_config_argument_is_one_line(tmp_path):
  done, _ = _run("--config=mlp_xor:lineer", f"--workdir={tmp_path / 'w'}")
  line = _assert_one_line_error(done)
  assert "'lineer'" in line and ":linear or :stream or :smoke" in line


def _missing_tfds(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  return _run(
    "--config=experiments/vision/lenet5_mnist.py",
    f"--workdir={tmp_path / 'w'}",
    f"--data_dir={empty}",
    "--config.num_train_steps=5",
  )


@pytest.fixture(scope="module")
def missing_tfds(tmp_path_factory):
  return _missing_tfds(tmp_path_factory.mktemp("tfds"))


def test_missing_tfds_data_fails_with_one_line(missing_tfds):
  # The speed of the failure (no download retries) is asserted in-process in
  # tests/unit/data/test_data.py; this subprocess also pays interpreter and TF imports, so its
  # wall time depends on machine load and is not asserted here.
  done, _ = missing_tfds
  assert done.returncode != 0
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  errors = [line for line in done.stderr.splitlines() if line.startswith("dlx: error: ")]
  assert len(errors) == 1
  assert done.stderr.splitlines()[-1] == errors[0]
  assert "--data_dir" in errors[0] and "mnist" in errors[0]
  assert "digits" in errors[0]  # an embedded alternative


def test_missing_tfds_data_is_one_line(missing_tfds):
  _assert_one_line_error(missing_tfds[0])


def test_happy_path(tmp_path):
  workdir = tmp_path / "w"
  cache = tmp_path / "xla"
  args = ("--config=experiments/classic/mlp_xor.py", "--config.num_train_steps=30")
  done, _ = _run(*args, f"--workdir={workdir}", f"--compilation_cache={cache}")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Traceback" not in done.stderr
  (line,) = [line for line in done.stdout.splitlines() if line.startswith("test:")]
  assert "accuracy=" in line and "loss=" in line
  with open(workdir / "results.json") as f:
    results = json.load(f)
  assert results["step"] == 30 and results["experiment"] == "mlp_xor"
  assert f"loss={results['test']['loss']:.4f}" in line
  with open(workdir / "config.json") as f:
    assert json.load(f)["num_train_steps"] == 30
  # The console: compact lines (no absl prefix); the full absl log goes to log.txt.
  progress = [line for line in done.stderr.splitlines() if line.startswith("step ")]
  assert progress and all(
    "steps/s" in line and "ETA" in line and "loss" in line for line in progress
  )
  assert progress[-1].startswith("step 30/30 (100%)")
  assert not any(line[:1] in "IWE" and line[1:5].isdigit() for line in done.stderr.splitlines())
  log = (workdir / "log.txt").read_text().splitlines()
  assert any(line.startswith("I") and "train.py" in line and "step 30/30" in line for line in log)
  # The compiled steps were kept, and a rerun that loads them gets the same numbers.
  assert any(cache.iterdir())
  again, _ = _run(*args, f"--workdir={tmp_path / 'again'}", f"--compilation_cache={cache}")
  assert again.returncode == 0, again.stderr[-3000:]
  with open(tmp_path / "again" / "results.json") as f:
    assert json.load(f)["test"] == results["test"]


@pytest.mark.parametrize(
  "flag, environ, expect",
  [
    ("off", {"JAX_COMPILATION_CACHE_DIR": "/x"}, None),
    ("/given", {"JAX_COMPILATION_CACHE_DIR": "/x"}, "/given"),
    (None, {"JAX_COMPILATION_CACHE_DIR": "/x", "DLX_CACHE_DIR": "/d"}, "/x"),
    (None, {"DLX_CACHE_DIR": "/d"}, "/d/xla"),
  ],
)
def test_compilation_cache_dir(flag, environ, expect):
  from dlx import main  # pylint: disable=g-import-not-at-top

  assert main.compilation_cache_dir(flag, environ) == expect
  home = main.compilation_cache_dir(None, {})
  assert home == os.path.join(os.path.expanduser("~"), ".cache", "dlx", "xla")


@pytest.mark.slow  # the fast suite sweeps in test_a_failed_run_is_a_row_... (15-minute budget)
def test_sweep(tmp_path):
  workdir = tmp_path / "sweep"
  done, _ = _run(
    "mlp_xor",
    "--grid",
    "config.optimizer.learning_rate=0.01,0.1",
    "--grid",
    "config.seed=0,1",
    f"--workdir={workdir}",
    "--config.num_train_steps=20",
    module="dlx.tools.sweep",
  )
  assert done.returncode == 0, done.stderr[-3000:]
  runs = sorted(p.name for p in workdir.iterdir() if p.is_dir())
  assert runs == [
    "optimizer.learning_rate=0.01,seed=0",
    "optimizer.learning_rate=0.01,seed=1",
    "optimizer.learning_rate=0.1,seed=0",
    "optimizer.learning_rate=0.1,seed=1",
  ]
  for run in runs:
    with open(workdir / run / "results.json") as f:
      assert json.load(f)["step"] == 20
  table = (workdir / "results.md").read_text().strip().splitlines()
  assert table[0].startswith("| optimizer.learning_rate | seed |")
  assert "test/loss" in table[0] and "status" in table[0]
  rows = table[2:]
  assert len(rows) == 4
  assert all(r.endswith("| ok |") for r in rows)
  with open(workdir / "results.json") as f:
    summary = json.load(f)
  assert len(summary) == 4
  assert {(r["config.optimizer.learning_rate"], r["config.seed"]) for r in summary} == {
    ("0.01", "0"),
    ("0.01", "1"),
    ("0.1", "0"),
    ("0.1", "1"),
  }
  # Different seeds and rates give different runs.
  assert len({r["test/loss"] for r in summary}) == 4


def _sweep_with_a_failing_value(workdir, *extra, seeds="0,1"):
  return _run(
    "mlp_xor",
    "--grid",
    "config.optimizer.name=adam,nosuch",
    "--grid",
    f"config.seed={seeds}",
    f"--workdir={workdir}",
    "--config.num_train_steps=20",
    *extra,
    module="dlx.tools.sweep",
    timeout=600,
  )[0]


def _status_by_run(workdir):
  with open(workdir / "results.json") as f:
    return {
      (r["config.optimizer.name"], r["config.seed"]): r.get("status", "ok") for r in json.load(f)
    }


def test_a_failed_run_is_a_row_and_a_relaunch_keeps_finished_runs(tmp_path):
  # One seed (a 2 x 1 grid, three launches of the sweep): the Ray test sweeps two.
  workdir = tmp_path / "sweep"
  done = _sweep_with_a_failing_value(workdir, seeds="0")
  assert done.returncode == 1, done.stderr[-3000:]  # some run failed; the sweep finished
  status = _status_by_run(workdir)
  assert status[("adam", "0")] == "ok"
  assert status[("nosuch", "0")].startswith("failed: unknown optimizer 'nosuch'")
  rows = (workdir / "results.md").read_text().splitlines()[2:]
  assert len(rows) == 2 and sum("| failed: unknown optimizer" in r for r in rows) == 1
  finished = (workdir / "optimizer.name=adam,seed=0" / "results.json").read_bytes()
  _sweep_with_a_failing_value(workdir, seeds="0")
  assert (workdir / "optimizer.name=adam,seed=0" / "results.json").read_bytes() == finished
  assert _status_by_run(workdir) == status
  # A flag changed outside the grid changes what the finished runs computed: each is a
  # row that says why, never the old numbers, and their results.json stay as they were.
  changed = _sweep_with_a_failing_value(workdir, "--config.optimizer.learning_rate=0.5", seeds="0")
  assert changed.returncode == 1
  refused = _status_by_run(workdir)
  assert refused[("adam", "0")].startswith("failed: ")
  assert "optimizer.learning_rate 0.03 -> 0.5" in refused[("adam", "0")]
  rows = json.loads((workdir / "results.json").read_text())
  assert not any("test/accuracy" in r for r in rows)
  assert (workdir / "optimizer.name=adam,seed=0" / "results.json").read_bytes() == finished


@pytest.mark.slow  # 20-30 s for a Ray instance; the fast suite sweeps locally (15-min budget)
def test_sweep_on_a_local_ray_instance(tmp_path):
  pytest.importorskip("ray", reason="Ray is the [ray] extra (installed with [test])")
  workdir = tmp_path / "ray"
  done = _sweep_with_a_failing_value(workdir, "--backend=ray", "--cpus_per_run=1")
  assert done.returncode == 1, done.stderr[-3000:]
  status = _status_by_run(workdir)
  assert status[("adam", "0")] == status[("adam", "1")] == "ok"
  assert status[("nosuch", "0")].startswith("failed: unknown optimizer 'nosuch'")
  assert status[("nosuch", "1")].startswith("failed: unknown optimizer 'nosuch'")
  for seed in ("0", "1"):
    with open(workdir / f"optimizer.name=adam,seed={seed}" / "results.json") as f:
      assert json.load(f)["step"] == 20


def test_split_values():
  assert sweep.split_values("(8,8),(16,16)") == ["(8,8)", "(16,16)"]
  assert sweep.split_values("0.01, 0.1") == ["0.01", "0.1"]
  assert sweep.split_values("[1,2],{3,4},5") == ["[1,2]", "{3,4}", "5"]
  assert sweep.split_values("x") == ["x"]


def test_parse_grid():
  assert sweep.parse_grid(["config.a=1,2", "--config.b=x"]) == [
    ("config.a", ["1", "2"]),
    ("config.b", ["x"]),
  ]
  for bad in ("a=1", "config.a", "config.a="):
    with pytest.raises(SystemExit, match="dlx sweep: error"):
      sweep.parse_grid([bad])
