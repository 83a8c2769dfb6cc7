"""`python -m dlx.tools.compare`: two real runs of mlp_xor that differ in the learning rate
give a table of exactly that field and both runs' test metrics, and a PNG of their curves;
a sweep's directory stands for its runs in the sweep's order (a real sweep, which also
draws its own comparison figure); bad input is one line and exit status 2."""

import json
import os
import shutil
import subprocess
import sys

from PIL import Image
import pytest

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx import train
from dlx.tools import compare
from dlx.tools import sweep
from tests import conftest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RATES = {"slow": 0.01, "fast": 0.1}


def _config(learning_rate):
  cfg = experiment_lib.load("mlp_xor").config()
  return config_lib.override(
    cfg,
    num_train_steps=20,
    log_every_steps=5,
    eval_every_steps=10,
    checkpoint_every_steps=20,
    **{"optimizer.learning_rate": learning_rate},
  )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Two finished runs in <tmp>/slow and <tmp>/fast: {name: (workdir, results)}."""
  base = tmp_path_factory.mktemp("runs")
  out = {}
  for name, rate in RATES.items():
    workdir = str(base / name)
    out[name] = (workdir, train.train_and_evaluate(_config(rate), workdir))
  return out


def _is_png(path, min_bytes=5000):
  with open(path, "rb") as f:
    head = f.read(8)
  with Image.open(path) as image:
    size = image.size
  return head == PNG_MAGIC and os.path.getsize(path) > min_bytes and min(size) >= 200


def _compare(capsys, *argv):
  code = compare.main([str(a) for a in argv])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_the_table_lists_the_differing_field_and_each_runs_test_metrics(runs, tmp_path, capsys):
  (slow, slow_results), (fast, fast_results) = runs["slow"], runs["fast"]
  loaded = compare.load_runs([slow, fast])
  assert [run.name for run in loaded] == ["slow", "fast"]
  assert compare.config_rows(loaded) == [("optimizer.learning_rate", ["0.01", "0.1"])]
  metrics = dict(compare.metric_rows(loaded))
  assert metrics["status"] == ["finished", "finished"]
  assert metrics["step"] == ["20", "20"]
  for split in ("test", "validation"):
    for key in ("loss", "accuracy"):
      expect = [f"{slow_results[split][key]:.4g}", f"{fast_results[split][key]:.4g}"]
      assert metrics[f"{split}/{key}"] == expect
  assert slow_results["test"]["loss"] != fast_results["test"]["loss"]

  out = tmp_path / "both.png"
  code, text, err = _compare(capsys, slow, fast, f"--out={out}")
  assert code == 0 and err.strip() == f"figure: {out}"
  lines = text.splitlines()
  assert lines[0].split() == ["run", "slow", "fast"]
  assert lines[2].split() == ["optimizer.learning_rate", "0.01", "0.1"]
  assert set(lines[3]) == {"-", " "}  # the config fields end at a rule
  assert lines[4].split() == ["status", "finished", "finished"]
  losses = [f"{r['test']['loss']:.4g}" for r in (slow_results, fast_results)]
  assert ["test/loss", *losses] in [line.split() for line in lines]
  assert _is_png(out)

  code, markdown, _ = _compare(capsys, slow, fast, f"--out={out}", "--format=markdown")
  assert markdown.splitlines()[:3] == [
    "| run | slow | fast |",
    "|---|---|---|",
    "| optimizer.learning_rate | 0.01 | 0.1 |",
  ]
  accuracy = [f"{r['test']['accuracy']:.4g}" for r in (slow_results, fast_results)]
  assert f"| test/accuracy | {accuracy[0]} | {accuracy[1]} |" in markdown


def test_an_unfinished_run_shows_its_last_logged_row(runs, tmp_path, capsys):
  slow = runs["slow"][0]
  stopped = tmp_path / "stopped"
  shutil.copytree(slow, stopped)
  os.remove(stopped / "results.json")
  with open(stopped / "metrics.jsonl") as f:
    last = [json.loads(line) for line in f][-1]
  loaded = compare.load_runs([slow, stopped])
  assert compare.config_rows(loaded) == []  # the same config
  metrics = dict(compare.metric_rows(loaded))
  assert metrics["status"] == ["finished", "unfinished"]
  assert metrics[f"{last['split']}/loss"][1] == f"{last['loss']:.4g}"
  code, text, _ = _compare(capsys, slow, stopped, f"--out={tmp_path / 'c.png'}")
  assert code == 0 and "unfinished" in text


def test_the_figure_has_the_main_metric_panel_only_when_the_runs_share_it(runs, tmp_path):
  loaded = compare.load_runs([runs["slow"][0], runs["fast"][0]])
  assert compare.main_metric(loaded) == "accuracy"  # best_metric is the loss
  loaded[1].config["best_metric"] = "miou"
  assert compare.main_metric(loaded) is None
  one_panel, two_panels = tmp_path / "one.png", tmp_path / "two.png"
  compare.write_figure(loaded, one_panel)
  loaded[1].config["best_metric"] = "loss"
  compare.write_figure(loaded, two_panels)
  with Image.open(one_panel) as one, Image.open(two_panels) as two:
    assert two.size[0] > 1.5 * one.size[0]


def test_a_sweep_directory_is_its_runs_in_the_sweeps_order(tmp_path, capsys, monkeypatch):
  base = tmp_path / "sweep"
  monkeypatch.chdir(conftest.REPO)
  code = sweep.main(
    [
      "mlp_xor",
      "--grid",
      "config.optimizer.learning_rate=0.1,0.01",  # not the names' sorted order
      f"--workdir={base}",
      "--config.num_train_steps=10",
      "--config.log_every_steps=5",
      "--config.eval_every_steps=5",
    ]
  )
  capsys.readouterr()
  assert code == 0
  # The sweep drew its runs' figure and links it from results.md.
  assert _is_png(base / "compare.png")
  header = (base / "results.md").read_text().splitlines()[0]
  assert "[curves](compare.png)" in header and "status" in header
  order = ["optimizer.learning_rate=0.1", "optimizer.learning_rate=0.01"]
  assert compare.sweep_workdirs(str(base)) == [str(base / name) for name in order]

  os.remove(base / "compare.png")
  code, text, _ = _compare(capsys, base, "--format=markdown")  # default --out: the sweep's
  assert code == 0 and _is_png(base / "compare.png")
  assert text.splitlines()[0] == f"| run | {order[0]} | {order[1]} |"
  assert "| optimizer.learning_rate | 0.1 | 0.01 |" in text

  # A run of the sweep that never logged a step (a failed one) is left out with a warning.
  failed = base / "optimizer.learning_rate=0.5"
  failed.mkdir()
  shutil.copy(base / order[0] / "config.json", failed / "config.json")
  loaded = compare.load_runs([base])
  assert [run.name for run in loaded] == order
  assert "logged no metrics; left out" in capsys.readouterr().err


def test_bad_input_is_one_line_and_exit_status_2(runs, tmp_path, capsys):
  empty = tmp_path / "empty"
  empty.mkdir()
  no_metrics = tmp_path / "no_metrics"
  no_metrics.mkdir()
  (no_metrics / "config.json").write_text("{}")
  cases = [
    ([], "give at least one RUN"),
    ([tmp_path / "nosuch"], "not a directory"),
    ([empty], "is neither a run's workdir"),
    ([runs["slow"][0], no_metrics], "holds no metrics"),
    ([runs["slow"][0], "--format=html"], "invalid choice"),
  ]
  for argv, message in cases:
    with pytest.raises(SystemExit) as exit_info:
      compare.main([str(a) for a in argv])
    assert exit_info.value.code == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("dlx: error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_the_command_line(runs, tmp_path):
  out = tmp_path / "cli.png"
  done = subprocess.run(
    [sys.executable, "-m", "dlx.tools.compare", runs["slow"][0], runs["fast"][0], f"--out={out}"],
    cwd=conftest.REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert "optimizer.learning_rate" in done.stdout and _is_png(out)
  bad = subprocess.run(
    [sys.executable, "-m", "dlx.tools.compare", str(tmp_path / "nosuch")],
    cwd=conftest.REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert bad.returncode == 2 and bad.stderr.startswith("dlx: error: ")
  assert bad.stderr.count("\n") == 1, bad.stderr
