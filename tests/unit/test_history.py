"""History a reader can scan: every commit subject since the layout change (4a559a3) is
under 72 characters (details go in the body). `.githooks/commit-msg` checks each new
commit locally: `git config core.hooksPath .githooks`."""

import subprocess

import pytest

from tests import conftest

SINCE = "4a559a3"  # the first commit of the package-by-role layout
LIMIT = 72


def _git(*args):
  return subprocess.run(
    ["git", *args], cwd=conftest.REPO, capture_output=True, text=True, timeout=60
  )


def test_commit_subjects_are_short():
  if _git("rev-parse", "--verify", "--quiet", f"{SINCE}^{{commit}}").returncode != 0:
    pytest.skip(f"commit {SINCE} is not in this clone's history (shallow or exported tree)")
  subjects = _git("log", "--format=%h %s", f"{SINCE}^..HEAD").stdout.splitlines()
  assert subjects, "git log printed nothing"
  long = [s for s in subjects if len(s.split(" ", 1)[1]) >= LIMIT]
  assert not long, f"subjects of {LIMIT} characters or more: {long}"


def test_the_commit_msg_hook_refuses_a_long_subject(tmp_path):
  hook = conftest.REPO / ".githooks" / "commit-msg"
  message = tmp_path / "MSG"
  message.write_text("x" * LIMIT + "\n\nbody\n")
  refused = subprocess.run([str(hook), str(message)], capture_output=True, text=True)
  assert refused.returncode == 1 and "under 72" in refused.stderr
  message.write_text("# a comment line git strips\nShort subject\n\nA body " + "y" * 200 + "\n")
  assert subprocess.run([str(hook), str(message)]).returncode == 0
