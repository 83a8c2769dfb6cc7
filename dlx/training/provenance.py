"""What produced a run: WORKDIR/provenance.json, one entry per launch that trains.

  provenance.json        {"entries": [entry, ...]}: every launch that trains (the first,
                         each resume) appends its own entry once its state is initialised
                         or restored, before the first step, never rewriting an earlier
                         one. A finished run relaunched unchanged, a refused relaunch and a
                         launch that stops before that point (no checkpoint restores, the
                         setup fails) add nothing.
  provenance/ID.freeze.txt
                         the installed distributions as `name==version` lines (read with
                         importlib.metadata: in process, a few times faster than
                         `pip freeze`, and there without pip)
  provenance/ID.diff     only when the source tree was dirty: the untracked files (as
                         `#` lines, which `git apply` skips) and `git diff --binary HEAD`

An entry holds the command line (argv, working directory, interpreter), the experiment
file and its sha256, the git commit of dlx's source tree and whether it was dirty, the
versions of dlx, Python, jax and jaxlib, the devices, the host, the process count and
index, the start time (UTC, ISO 8601) and the step training starts from (0 for a fresh
run, the restored checkpoint's step for a resume). ID is the start time
(`20250101T120000Z`, with `-2`, `-3` ... when taken).

Nothing here fails a run for want of information: no git, a source that is no git
checkout (an installed wheel), a git that hangs or an unreadable experiment file are
recorded as null with a reason. Git runs in the dlx package's directory, with a timeout,
its output captured. A torn provenance.json is kept as `provenance.json.torn-<UTC time>`
with a warning and a new list starts. Only process 0 calls `record`.
"""

import configparser
import datetime
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import re
import socket
import subprocess
import sys

from absl import logging
import jax

from dlx.training import relaunch

FILE = "provenance.json"
FOLDER = "provenance"
GIT_TIMEOUT_S = 10
# dlx's own package directory: git runs here, and setup.cfg is looked for above it.
SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]


def record(
  workdir,
  *,
  experiment_name=None,
  experiment_path=None,
  start_step=None,
  source_dir=None,
) -> dict:
  """Appends this launch's entry to WORKDIR/provenance.json (writing the files it names
  under WORKDIR/provenance/) and returns the entry. `source_dir`: where git looks for the
  source tree (default: dlx's package directory)."""
  workdir = pathlib.Path(workdir)
  path = workdir / FILE
  entries = _read_entries(path)
  now = datetime.datetime.now(datetime.timezone.utc)
  folder = workdir / FOLDER
  folder.mkdir(exist_ok=True)
  entry_id = _free_id(folder, now.strftime("%Y%m%dT%H%M%SZ"))
  source_dir = pathlib.Path(source_dir or SOURCE_DIR)

  freeze = f"{FOLDER}/{entry_id}.freeze.txt"
  (workdir / freeze).write_text(freeze_text())
  entry = {
    "id": entry_id,
    "start_time": now.isoformat(),
    "command": {"argv": list(sys.argv), "cwd": os.getcwd(), "executable": sys.executable},
    "experiment": _experiment(experiment_name, experiment_path),
    "git": git_state(source_dir, workdir, f"{FOLDER}/{entry_id}.diff"),
    "versions": _versions(source_dir),
    "requirements": freeze,
    "devices": _devices(),
    "host": socket.gethostname(),
    "process_count": jax.process_count(),
    "process_index": jax.process_index(),
    "start_step": start_step,
  }
  entries.append(entry)
  relaunch.write_json_atomic(path, {"entries": entries}, indent=2)
  return entry


def read(workdir) -> list:
  """The entries of WORKDIR/provenance.json, oldest first ([] when missing or torn)."""
  value = relaunch.read_json(pathlib.Path(workdir) / FILE)
  entries = value.get("entries") if value else None
  return entries if isinstance(entries, list) else []


def _read_entries(path: pathlib.Path) -> list:
  """The entries so far; a torn file is moved aside (never deleted) and [] returned."""
  if not path.exists():
    return []
  value = relaunch.read_json(path)
  entries = value.get("entries") if value else None
  if isinstance(entries, list):
    return entries
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  kept = path.with_name(f"{path.name}.torn-{stamp}")
  os.replace(path, kept)
  logging.warning("%s is torn or unreadable; kept as %s, starting a new list", path, kept.name)
  return []


def _free_id(folder: pathlib.Path, stamp: str) -> str:
  """`stamp`, or `stamp-2`, `stamp-3` ... when a file of that id is already there (two
  launches in one second, or the files of a list kept aside as torn)."""
  taken = {p.name.split(".")[0] for p in folder.iterdir()}
  entry_id, n = stamp, 1
  while entry_id in taken:
    n += 1
    entry_id = f"{stamp}-{n}"
  return entry_id


def _experiment(name, path) -> dict:
  found = {"name": name, "path": None if path is None else str(path), "sha256": None}
  if path is None:
    found["reason"] = "no experiment file given"
    return found
  try:
    found["path"] = str(pathlib.Path(path).resolve())
    found["sha256"] = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
  except OSError as e:
    found["reason"] = f"{type(e).__name__}: {e}"
  return found


def freeze_text() -> str:
  """The installed distributions as sorted `name==version` lines, the first found on
  sys.path winning (as import does), with a header naming the interpreter."""
  seen = {}
  for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if not name:  # a broken install's metadata
      continue
    seen.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={dist.version}")
  lines = [seen[key] for key in sorted(seen)]
  header = f"# importlib.metadata distributions of {sys.executable}\n"
  return header + "".join(line + "\n" for line in lines)


class _GitError(Exception):
  """A git command failed, timed out or is missing; the message is the reason."""


def _git(source_dir, *args) -> str:
  """git's stdout, run in `source_dir` with a timeout; nothing reaches the console."""
  env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
  command = ["git", "-c", "core.quotepath=off", *args]
  try:
    done = subprocess.run(
      command,
      cwd=source_dir,
      env=env,
      stdin=subprocess.DEVNULL,
      capture_output=True,
      text=True,
      errors="replace",
      timeout=GIT_TIMEOUT_S,
    )
  except FileNotFoundError:
    raise _GitError("git is not installed") from None
  except subprocess.TimeoutExpired:
    raise _GitError(f"`git {' '.join(args)}` took over {GIT_TIMEOUT_S} s") from None
  except OSError as e:
    raise _GitError(f"git did not run ({type(e).__name__}: {e})") from None
  if done.returncode != 0:
    first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
    raise _GitError(f"`git {' '.join(args)}` failed: {first}")
  return done.stdout


def git_state(source_dir, workdir, diff_name: str) -> dict:
  """{'commit', 'dirty', 'diff', 'repository', ...} of the git tree holding `source_dir`;
  when dirty, writes the untracked files and `git diff HEAD` to WORKDIR/diff_name. Without
  a usable git tree: commit, dirty and diff null, and 'reason' says why."""
  state = {"commit": None, "dirty": None, "diff": None, "repository": None}
  try:
    state["repository"] = _git(source_dir, "rev-parse", "--show-toplevel").strip()
    # An installed copy inside some other checkout (a venv in a repository) is not it.
    if not _git(source_dir, "ls-files", "--", ".").strip():
      raise _GitError(f"{source_dir} is not tracked by the git repository around it")
    state["commit"] = _git(source_dir, "rev-parse", "--verify", "HEAD").strip()
    status = _git(source_dir, "status", "--porcelain", "--untracked-files=normal")
  except _GitError as e:
    return {**state, "reason": str(e)}
  state["dirty"] = bool(status.strip())
  if not state["dirty"]:
    return state
  state["changed_paths"] = len(status.splitlines())
  try:
    untracked = _git(source_dir, "ls-files", "--others", "--exclude-standard", "--full-name", ":/")
    diff = _git(source_dir, "diff", "--no-color", "--no-ext-diff", "--binary", "HEAD")
  except _GitError as e:
    state["diff_reason"] = str(e)
    return state
  lines = untracked.splitlines()
  header = [f"# git diff HEAD of {state['repository']} at {state['commit']}"]
  header += [f"# untracked files (not in the diff): {len(lines)}"]
  header += [f"#   {name}" for name in lines]
  pathlib.Path(workdir, diff_name).write_text("\n".join(header) + "\n" + diff)
  state["diff"] = diff_name
  return state


def _versions(source_dir) -> dict:
  versions = {
    "dlx": _dlx_version(source_dir),
    "python": platform.python_version(),
    "python_implementation": platform.python_implementation(),
    "jax": jax.__version__,
  }
  try:
    versions["jaxlib"] = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    versions["jaxlib"] = None
  return versions


def _dlx_version(source_dir):
  """The installed dlx's version, else setup.cfg's next to the source (a plain checkout)."""
  try:
    return importlib.metadata.version("dlx")
  except importlib.metadata.PackageNotFoundError:
    pass
  parser = configparser.ConfigParser()
  try:
    parser.read(pathlib.Path(source_dir).parent / "setup.cfg")
    return parser.get("metadata", "version", fallback=None)
  except configparser.Error:
    return None


def _devices() -> dict:
  kinds = {}
  for device in jax.devices():
    kinds[device.device_kind] = kinds.get(device.device_kind, 0) + 1
  return {
    "platform": jax.default_backend(),
    "kinds": kinds,  # over all processes
    "local_count": jax.local_device_count(),
    "global_count": jax.device_count(),
  }
