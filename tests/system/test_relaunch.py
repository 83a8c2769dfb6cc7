"""Relaunching `python -m dlx.main` into a workdir, as a user does: a changed learning rate
is refused in one line and the finished run's results.json stays byte for byte; more
steps continue the run; --move_aside starts over and keeps the old run beside it."""

import json

from tests.system.test_main import _assert_one_line_error
from tests.system.test_main import _run

SHORT = ("--config=mlp_xor", "--config.num_train_steps=40", "--config.checkpoint_every_steps=20")


def test_relaunches_refuse_continue_and_move_aside(tmp_path):
  workdir = tmp_path / "run"
  done, _ = _run(*SHORT, f"--workdir={workdir}")
  assert done.returncode == 0, done.stderr[-2000:]
  finished = (workdir / "results.json").read_bytes()

  refused, _ = _run(*SHORT, f"--workdir={workdir}", "--config.optimizer.learning_rate=0.001")
  line = _assert_one_line_error(refused)
  assert "optimizer.learning_rate 0.03 -> 0.001" in line and "--config.init_from=" in line
  assert (workdir / "results.json").read_bytes() == finished

  longer, _ = _run(*SHORT, f"--workdir={workdir}", "--config.num_train_steps=60")
  assert longer.returncode == 0, longer.stderr[-2000:]
  assert "resuming from step 40" in longer.stderr
  assert json.loads((workdir / "results.json").read_text())["step"] == 60

  again, _ = _run(*SHORT, f"--workdir={workdir}", "--move_aside")
  assert again.returncode == 0, again.stderr[-2000:]
  (moved,) = tmp_path.glob("run.discarded-*")
  assert json.loads((moved / "results.json").read_text())["step"] == 60
  assert json.loads((workdir / "results.json").read_text())["step"] == 40
  assert "resuming" not in again.stderr
