"""provenance.json (dlx/training/provenance.py): an entry's fields, a dirty tree's diff
beside it, a clean tree without one, no git or no checkout recorded as null with a
reason, the freeze file, one entry appended per launch and a torn file survived. The git
trees are tiny repositories made in tmp_path, so no test depends on the state of the
checkout that runs it."""

import datetime
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys

import jax
import pytest

from dlx.training import provenance


def _git(repo, *args):
  env = dict(
    os.environ,
    GIT_AUTHOR_NAME="t",
    GIT_AUTHOR_EMAIL="t@example.com",
    GIT_COMMITTER_NAME="t",
    GIT_COMMITTER_EMAIL="t@example.com",
    GIT_CONFIG_GLOBAL=os.devnull,
  )
  done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
  """A git repository holding one committed file, model.py; returns its path."""
  repo = tmp_path / "src"
  repo.mkdir()
  _git(repo, "init", "-q")
  (repo / "model.py").write_text("width = 8\n")
  _git(repo, "add", "model.py")
  _git(repo, "commit", "-q", "-m", "first")
  return repo


@pytest.fixture
def workdir(tmp_path):
  path = tmp_path / "run"
  path.mkdir()
  return path


@pytest.fixture(autouse=True)
def _no_repository_above(tmp_path, monkeypatch):
  # git must not find a repository around tmp_path (the not-a-checkout cases).
  monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def _entries(workdir):
  return json.loads((workdir / provenance.FILE).read_text())["entries"]


def test_an_entry_records_what_produced_the_run(repo, workdir, tmp_path):
  experiment = tmp_path / "tiny.py"
  experiment.write_text("def get_config(arg=None): ...\n")
  entry = provenance.record(
    workdir,
    experiment_name="tiny",
    experiment_path=experiment,
    start_step=20,
    source_dir=repo,
  )
  assert _entries(workdir) == [entry]
  assert entry["command"] == {
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "executable": sys.executable,
  }
  assert entry["experiment"] == {
    "name": "tiny",
    "path": str(experiment.resolve()),
    "sha256": hashlib.sha256(experiment.read_bytes()).hexdigest(),
  }
  assert entry["git"]["commit"] == _git(repo, "rev-parse", "HEAD")
  assert entry["git"]["repository"] == str(repo)
  versions = entry["versions"]
  assert versions["dlx"] == importlib.metadata.version("dlx")
  assert versions["jax"] == jax.__version__ and versions["jaxlib"]
  assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
  assert entry["devices"] == {
    "platform": jax.default_backend(),
    "kinds": {jax.devices()[0].device_kind: jax.device_count()},
    "local_count": jax.local_device_count(),
    "global_count": jax.device_count(),
  }
  assert entry["host"] and (entry["process_count"], entry["process_index"]) == (1, 0)
  start = datetime.datetime.fromisoformat(entry["start_time"])
  assert start.utcoffset() == datetime.timedelta(0)
  assert entry["start_step"] == 20


def test_a_clean_tree_records_dirty_false_and_writes_no_diff(repo, workdir):
  entry = provenance.record(workdir, source_dir=repo)
  assert entry["git"]["dirty"] is False and entry["git"]["diff"] is None
  assert not list((workdir / provenance.FOLDER).glob("*.diff"))


def test_a_dirty_tree_is_recorded_with_its_diff(repo, workdir):
  (repo / "model.py").write_text("width = 16\n")
  (repo / "notes.txt").write_text("untracked\n")
  git = provenance.record(workdir, source_dir=repo)["git"]
  assert git["dirty"] is True and git["commit"] == _git(repo, "rev-parse", "HEAD")
  assert git["diff"] == f"{provenance.FOLDER}/{_entries(workdir)[0]['id']}.diff"
  diff = (workdir / git["diff"]).read_text()
  assert "-width = 8\n+width = 16\n" in diff
  assert "#   notes.txt\n" in diff  # untracked files are listed by name


def test_an_untracked_file_alone_makes_the_tree_dirty(repo, workdir):
  (repo / "new_experiment.py").write_text("x = 1\n")
  git = provenance.record(workdir, source_dir=repo)["git"]
  assert git["dirty"] is True
  assert "#   new_experiment.py" in (workdir / git["diff"]).read_text()


def test_no_git_checkout_is_null_with_a_reason(tmp_path, workdir):
  plain = tmp_path / "wheel" / "dlx"
  plain.mkdir(parents=True)
  git = provenance.record(workdir, source_dir=plain)["git"]
  assert (git["commit"], git["dirty"], git["diff"]) == (None, None, None)
  assert "not a git repository" in git["reason"]


def test_an_installed_copy_inside_another_checkout_is_not_that_checkout(repo, workdir):
  # A wheel installed into a venv that lives in a repository: git finds the repository,
  # but the package is not tracked by it.
  installed = repo / ".venv" / "site-packages" / "dlx"
  installed.mkdir(parents=True)
  git = provenance.record(workdir, source_dir=installed)["git"]
  assert git["commit"] is None and "not tracked" in git["reason"]


def test_no_git_installed_is_null_with_a_reason(repo, workdir, tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))
  git = provenance.record(workdir, source_dir=repo)["git"]
  assert git["commit"] is None and git["reason"] == "git is not installed"


def test_a_git_that_hangs_is_cut_off(repo, workdir, monkeypatch):
  def hangs(command, **kwargs):
    raise subprocess.TimeoutExpired(command, kwargs["timeout"])

  monkeypatch.setattr(provenance.subprocess, "run", hangs)
  git = provenance.record(workdir, source_dir=repo)["git"]
  assert git["commit"] is None and "took over" in git["reason"]


def test_a_repository_without_commits_is_null_with_a_reason(tmp_path, workdir):
  empty = tmp_path / "empty_repo"
  empty.mkdir()
  _git(empty, "init", "-q")
  (empty / "a.py").write_text("")
  _git(empty, "add", "a.py")
  git = provenance.record(workdir, source_dir=empty)["git"]
  assert git["commit"] is None and "HEAD" in git["reason"]


def test_the_freeze_file_names_jax(repo, workdir):
  entry = provenance.record(workdir, source_dir=repo)
  lines = (workdir / entry["requirements"]).read_text().splitlines()
  assert f"jax=={jax.__version__}" in lines
  assert entry["requirements"] == f"{provenance.FOLDER}/{entry['id']}.freeze.txt"


def test_the_version_falls_back_to_setup_cfg(tmp_path, workdir, monkeypatch):
  source = tmp_path / "checkout" / "dlx"
  source.mkdir(parents=True)
  (source.parent / "setup.cfg").write_text("[metadata]\nname = dlx\nversion = 9.8.7\n")

  def not_installed(name):
    raise importlib.metadata.PackageNotFoundError(name)

  monkeypatch.setattr(provenance.importlib.metadata, "version", not_installed)
  versions = provenance.record(workdir, source_dir=source)["versions"]
  assert versions["dlx"] == "9.8.7" and versions["jaxlib"] is None


def test_a_relaunch_appends_its_own_entry(repo, workdir):
  first = provenance.record(workdir, source_dir=repo)
  (repo / "model.py").write_text("width = 32\n")
  second = provenance.record(workdir, source_dir=repo, start_step=40)
  assert _entries(workdir) == [first, second] == provenance.read(workdir)
  assert first["id"] != second["id"]  # two launches in one second get their own files
  assert first["git"]["dirty"] is False and second["git"]["dirty"] is True
  assert (workdir / first["requirements"]).exists() and (workdir / second["git"]["diff"]).exists()


def test_a_torn_file_is_kept_aside_and_a_new_list_starts(repo, workdir):
  torn = '{"entries": [{"id": "20250101T000000Z", "comm'
  (workdir / provenance.FILE).write_text(torn)
  entry = provenance.record(workdir, source_dir=repo)
  assert _entries(workdir) == [entry]
  (kept,) = workdir.glob(f"{provenance.FILE}.torn-*")
  assert kept.read_text() == torn


def test_the_dlx_source_is_recorded_by_default(workdir):
  # Whatever the state of this checkout (or installed copy), the entry says it or why not.
  git = provenance.record(workdir)["git"]
  assert git["commit"] is not None or git["reason"]
