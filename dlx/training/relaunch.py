"""What a relaunch into an existing workdir may change, decided once, here.

A workdir holds one run. Relaunching into it resumes that run, so its config must still
describe the same computation:

  EXTENDS_OR_OBSERVES  fields a relaunch may change: how long the run trains (more steps
                       or epochs, early-stopping patience), how often it logs, validates,
                       samples and checkpoints, how much of each split an evaluation
                       reads, and how the run is spread over devices. The run continues
                       from its checkpoint, and `config_changes.jsonl` records each
                       change with the time and the step it applied from.
  every other field    what the run computes (model, optimizer, data, seed, batch size,
                       dtype, augmentation, init_from, the experiment's own fields, ...):
                       a relaunch that changes one is refused with one line naming each
                       changed field, its old and new value, and the two ways on (a new
                       --workdir, or a new run that starts from this one's weights with
                       --config.init_from=WORKDIR).

A field only one of the two configs has (a config.json written by an older dlx) is not
compared. A workdir whose config.json belongs to no trained run (no checkpoint and no
results.json: a launch that failed before its first step) is simply overwritten.
"""

import datetime
import json
import os
import pathlib
import time

from dlx import errors
from dlx.training import checkpoint

CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"

# Dotted config paths whose change extends or observes a run; every other field computes.
EXTENDS_OR_OBSERVES = frozenset(
  {
    "num_train_steps",
    "num_epochs",
    "early_stopping_patience",
    "log_every_steps",
    "loggers",  # where the metrics also go; the run computes the same
    "eval_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "checkpoint_async",
    "sample_every_steps",
    "eval_examples",
    "train_eval_examples",
    "eval_batch_size",
    "parallel",
    "mesh.data",  # where the arrays live; checkpoints restore onto any mesh
    "mesh.fsdp",
    "mesh.tensor",
    "sharding_rules",
    "fsdp_min_elements",
    "distributed",
    "input_pipeline",  # the same batches either way; the checkpoint says if it can switch
    "grain_workers",
    "cpu_kernels",  # the same convolutions by another library (rounding differs)
  }
)


def flatten(config: dict, prefix: str = "") -> dict:
  """{'optimizer': {'learning_rate': 0.1}} -> {'optimizer.learning_rate': 0.1}."""
  flat = {}
  for key, value in config.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict) and value:
      flat.update(flatten(value, path + "."))
    else:
      flat[path] = value
  return flat


def changes(old: dict, new: dict) -> list[tuple[str, object, object]]:
  """(field, old value, new value) for every field both configs have and set apart,
  in field order. Tuples and lists compare equal (JSON has no tuples)."""
  old_flat, new_flat = flatten(old), flatten(new)
  normal = lambda v: list(v) if isinstance(v, tuple) else v
  return [
    (field, old_flat[field], new_flat[field])
    for field in sorted(old_flat.keys() & new_flat.keys())
    if normal(old_flat[field]) != normal(new_flat[field])
  ]


def computing(field: str) -> bool:
  """Whether a change of `field` changes what the run computes (see the module docstring)."""
  return field not in EXTENDS_OR_OBSERVES


def latest_checkpoint_step(workdir) -> int | None:
  """The newest step under WORKDIR/checkpoints (readable or not), or None."""
  return max(checkpoint.saved_steps(pathlib.Path(workdir) / "checkpoints"), default=None)


def has_trained(workdir) -> bool:
  """Whether the workdir holds a run that took a step: a checkpoint or results.json."""
  saved = latest_checkpoint_step(workdir) is not None
  return saved or (pathlib.Path(workdir) / "results.json").exists()


def read_json(path):
  """The JSON object in `path`, or None when it is missing or unreadable (torn)."""
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def write_json_atomic(path, value, **dump_kwargs):
  """Writes `value` (a str as it is, anything else as JSON) to a temporary file beside
  `path` and renames it over `path`: a reader (or a relaunch after a crash) sees the old
  file or the new one, never half."""
  path = str(path)
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w") as f:
    if isinstance(value, str):
      f.write(value)
    else:
      json.dump(value, f, **dump_kwargs)
    f.flush()
    os.fsync(f.fileno())
  os.replace(temporary, path)


def _show(value) -> str:
  return json.dumps(value) if not isinstance(value, str) else repr(value)


def check(workdir, config_json: str) -> list[tuple[str, object, object]]:
  """The allowed changes of a relaunch into `workdir` with the config `config_json` (the
  new config as JSON); [] for a first launch or an unchanged config. Raises
  ConfigChangedError naming every changed field that computes."""
  workdir = pathlib.Path(workdir)
  old = read_json(workdir / CONFIG_FILE)
  if old is None or not has_trained(workdir):
    return []
  found = changes(old, json.loads(config_json))
  refused = [c for c in found if computing(c[0])]
  if refused:
    listed = ", ".join(f"{field} {_show(a)} -> {_show(b)}" for field, a, b in refused)
    raise errors.ConfigChangedError(
      f"{workdir} holds a run made with another config ({listed}); these fields change "
      f"what the run computes, so it cannot continue: train a new run with a new "
      f"--workdir, or start one from this run's weights with --config.init_from={workdir}"
    )
  return found


def record(workdir, allowed: list, step: int | None):
  """Appends the allowed changes of this relaunch to config_changes.jsonl."""
  if not allowed:
    return
  row = {
    "time": datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc).isoformat(),
    "from_step": step,
    "changes": {field: {"old": a, "new": b} for field, a, b in allowed},
  }
  with open(os.path.join(workdir, CHANGES_FILE), "a") as f:
    f.write(json.dumps(row) + "\n")


def move_aside(workdir) -> str | None:
  """Moves a workdir's contents to a sibling `WORKDIR.discarded-<UTC time>` folder (never
  deletes them) and returns its path; None when there was nothing to move."""
  workdir = os.path.abspath(workdir)
  if not os.path.isdir(workdir) or not os.listdir(workdir):
    return None
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  target = f"{workdir}.discarded-{stamp}"
  os.rename(workdir, target)
  os.makedirs(workdir)
  return target
