"""A real run writes provenance.json (dlx/training/provenance.py): `python -m dlx.main`
on mlp_xor leaves one entry naming its command, results.json names the file, a relaunch
with more steps appends a second entry, and one relaunched unchanged adds none."""

import json

from tests.system.test_main import _run

SHORT = ("--config=mlp_xor", "--config.num_train_steps=20", "--config.checkpoint_every_steps=20")


def _entries(workdir):
  return json.loads((workdir / "provenance.json").read_text())["entries"]


def test_a_run_and_its_resume_each_record_an_entry(tmp_path):
  workdir = tmp_path / "run"
  done, _ = _run(*SHORT, f"--workdir={workdir}")
  assert done.returncode == 0, done.stderr[-2000:]
  (first,) = _entries(workdir)
  assert f"--workdir={workdir}" in first["command"]["argv"]
  assert first["experiment"]["name"] == "mlp_xor" and first["experiment"]["sha256"]
  assert first["start_step"] == 0
  assert (workdir / first["requirements"]).is_file()
  assert json.loads((workdir / "results.json").read_text())["provenance"] == "provenance.json"

  longer, _ = _run(*SHORT, f"--workdir={workdir}", "--config.num_train_steps=30")
  assert longer.returncode == 0, longer.stderr[-2000:]
  entries = _entries(workdir)
  assert entries[0] == first and len(entries) == 2
  assert "--config.num_train_steps=30" in entries[1]["command"]["argv"]
  assert entries[1]["start_step"] == 20
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == 30 and results["provenance"] == "provenance.json"
  # The stale results.json kept aside is the finished run's, naming the file too.
  assert json.loads((workdir / "results_step20.json").read_text())["provenance"]

  finished = (workdir / "results.json").read_bytes()
  again, _ = _run(*SHORT, f"--workdir={workdir}", "--config.num_train_steps=30")
  assert again.returncode == 0, again.stderr[-2000:]
  assert _entries(workdir) == entries  # a finished run trains nothing and records nothing
  assert (workdir / "results.json").read_bytes() == finished
