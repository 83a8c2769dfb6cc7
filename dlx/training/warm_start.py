"""Runs that start from runs: another run's parameters as the initial state
(`--config.init_from`) and frozen models the loss and the step can read
(`--config.teacher`).

A reference is a workdir, optionally with the checkpoint to take:

    WORKDIR          the best checkpoint if the run kept one, else the latest
    WORKDIR:best     the best checkpoint (an error if the run kept none)
    WORKDIR:latest   the newest periodic checkpoint

`init_from` also takes weights from outside dlx, `PREFIX:SPEC` with a prefix of
dlx.interop.formats.SOURCES (docs/interop.md#starting-a-run-from-external-weights):

    hf-gpt2:DIR             a Hugging Face GPT-2 directory (save_pretrained's)
    hf-clip:DIR             a Hugging Face CLIPModel directory
    torchvision:ARCH:FILE   a torchvision state dict of ARCH (.pth or .safetensors)
    safetensors:FILE        a flat file python -m dlx.tools.export --format=safetensors wrote

They are grafted as a run's are, so `init_from_keys` works the same. Such weights have
no step of a dlx run; the step reported for them is 0.
"""

import os
import pathlib
import re

import jax
import numpy as np
import orbax.checkpoint as ocp

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx.interop import formats
from dlx.training import checkpoint
from dlx.training import precision

WHICH = ("best", "latest")
_DIRS = {"best": "best_checkpoint", "latest": "checkpoints"}


def parse_ref(ref: str) -> tuple[str, str | None]:
  """'DIR:best' -> ('DIR', 'best'); 'DIR' -> ('DIR', None)."""
  head, sep, tail = ref.rpartition(":")
  if sep and tail in WHICH:
    return head, tail
  return ref, None


# 'hf-gpt2:/x', 'safetensors:w.st': a prefix that looks like a scheme (no '/', no '.').
_PREFIXED = re.compile(r"([A-Za-z][A-Za-z0-9_+-]*):(.*)", re.DOTALL)


def spellings() -> str:
  """What `init_from` accepts, for the errors: 'WORKDIR[:best|latest], hf-gpt2:DIR, ...'."""
  usages = [source.usage for source in formats.SOURCES.values()]
  return ", ".join([f"WORKDIR[:{'|'.join(WHICH)}]", *usages])


def external(ref: str, field: str = "init_from") -> tuple[str, str] | None:
  """(prefix, spec) when `ref` names weights from outside dlx ('hf-gpt2:DIR'); None for
  a workdir. A prefix that is no source's is a ConfigError, unless `ref` is a workdir
  after all (an existing directory, or 'NAME:best')."""
  match = _PREFIXED.fullmatch(ref)
  if match is None:
    return None
  prefix, spec = match.groups()
  if prefix in formats.SOURCES:
    return prefix, spec
  workdir, which = parse_ref(ref)
  if which is not None or pathlib.Path(workdir).expanduser().is_dir():
    return None
  raise errors.ConfigError(
    f"--config.{field}={ref!r}: unknown source {prefix + ':'!r}; give {spellings()}"
  )


def load_external(ref: str, field: str = "init_from") -> dict:
  """The variables of an external reference ('hf-gpt2:DIR'), as nested dicts."""
  prefix, spec = external(ref, field)
  try:
    variables = formats.SOURCES[prefix].load(spec)
  except errors.UserError as e:
    raise errors.ConfigError(f"--config.{field}={ref!r}: {e}") from None
  if "params" not in variables:
    raise errors.ConfigError(f"--config.{field}={ref!r}: holds no parameters")
  return variables


def locate(ref: str, field: str, *, label: str | None = None) -> tuple[pathlib.Path, int]:
  """(checkpoint directory, step) that `ref` names; `field` is the config field, for
  the error messages (`label` replaces '--config.FIELD=REF' in them)."""
  label = label or f"--config.{field}={ref!r}"
  if external(ref, field) is not None:
    raise errors.ConfigError(f"{label}: {ref} is not a dlx run; {field} needs a WORKDIR here")
  workdir, which = parse_ref(ref)
  root = pathlib.Path(workdir).expanduser()
  if not root.is_dir():
    raise errors.ConfigError(f"{label}: no such run directory")
  if which is None:
    which = "best" if checkpoint.saved_steps(root / _DIRS["best"]) else "latest"
  directory = root / _DIRS[which]
  steps = checkpoint.saved_steps(directory)
  if not steps:
    hint = (
      " (it ran with best_metric=''; use :latest)" if which == "best" else "; train that run first"
    )
    raise errors.ConfigError(f"{label}: {workdir} has no {which} checkpoint{hint}")
  return directory.resolve(), steps[-1]


def restore_state(ref: str, field: str, *, label: str | None = None) -> tuple[dict, int]:
  """The saved train state of `ref` as nested dicts of NumPy arrays, and its step."""
  directory, step = locate(ref, field, label=label)
  handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
  with ocp.CheckpointManager(str(directory), item_handlers=handlers) as manager:
    # Host arrays, whatever mesh wrote them: the caller places them on its own mesh.
    target = checkpoint.host_restore_target(manager, step)
    restored = manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
    )
  # NumPy copies: a device array here would be donated with the state that holds it.
  return jax.tree.map(np.array, restored.state), step


def _flatten(tree, prefix=()):
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, prefix + (str(key),)))
    return out
  return {"/".join(prefix): tree}


def _subtree(tree, path: str):
  for part in path.split("/") if path else ():
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree


def _set_subtree(tree, path: str, value):
  if not path:
    return value
  head, _, rest = path.partition("/")
  return {**tree, head: _set_subtree(tree[head], rest, value)}


def graft(target, source, keys=(), *, what: str):
  """`target` with the sub-trees `keys` ('/'-separated paths; () = all of it) taken
  from `source`. Every leaf taken must exist in both with the same shape; it keeps
  the target's dtype. `what` names the source in errors."""
  target = jax.tree.map(np.asarray, jax.device_get(target))
  for key in keys or ("",):
    mine, theirs = _subtree(target, key), _subtree(source, key)
    if mine is None:
      raise errors.ConfigError(f"--config.init_from_keys: this model has no {key!r}")
    if theirs is None:
      raise errors.ConfigError(f"{what} has no {key!r} to take")
    mine_flat, theirs_flat = (
      _flatten(mine, (key,) if key else ()),
      _flatten(theirs, (key,) if key else ()),
    )
    for path, leaf in mine_flat.items():
      if path not in theirs_flat:
        # A new head on a taken backbone: name the sub-trees to take.
        hint = "" if keys else "; take only what it has with --config.init_from_keys=A,B"
        raise errors.ConfigError(f"parameter {path!r} of this model is not in {what}{hint}")
      shape = np.shape(theirs_flat[path])
      if shape != np.shape(leaf):
        raise errors.ConfigError(
          f"parameter {path!r}: this model has shape {np.shape(leaf)}, {what} has {shape}"
        )
    extra = sorted(set(theirs_flat) - set(mine_flat))
    if extra:
      raise errors.ConfigError(
        f"{what} has parameters this model lacks: "
        f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}"
      )
    new = jax.tree.map(lambda m, t: np.asarray(t, dtype=m.dtype), mine, _as_structure(mine, theirs))
    target = _set_subtree(target, key, new)
  return target


def _as_structure(like, tree):
  """`tree` rebuilt with the container types of `like` (restored trees are dicts)."""
  if isinstance(like, dict):
    return {k: _as_structure(v, tree[k]) for k, v in like.items()}
  return tree


def keys_of(config) -> tuple[str, ...]:
  return tuple(k.strip().strip("/") for k in config.init_from_keys.split(",") if k.strip())


def _init_source(ref: str) -> tuple[dict, int, str]:
  """(state-like {'params', 'model_state'}, step, how errors name it) of `init_from`."""
  if external(ref) is None:
    source, step = restore_state(ref, "init_from")
    return source, step, f"the run {ref} (step {step})"
  variables = load_external(ref)
  params = variables.pop("params")
  return {"params": params, "model_state": variables}, 0, ref


def init_from(state, config):
  """`state` with the parameters and model state of `config.init_from`'s run or
  external weights (the sub-trees `config.init_from_keys` only, when set); optimizer
  state, step and rng stay fresh. Returns it and the source's step (0 if external)."""
  source, step, what = _init_source(config.init_from)
  keys = keys_of(config)
  params = graft(state.params, source["params"], keys, what=what)
  model_state = {}
  for collection, tree in state.model_state.items():
    theirs = source.get("model_state", {}).get(collection)
    if theirs is None:
      raise errors.ConfigError(f"{what} has no {collection!r} collection")
    # Only the requested sub-trees that this collection has (a backbone's batch
    # statistics, say); a sub-tree without such variables keeps none.
    present = tuple(k for k in keys if _subtree(tree, k) is not None)
    model_state[collection] = (
      graft(tree, theirs, present, what=what) if present or not keys else tree
    )
  return state.replace(params=params, model_state=model_state), step


def load_frozen(ref: str, field: str = "teacher"):
  """The run `ref` as a `dlx.experiment.FrozenModel`: its experiment and resolved
  config (from config.json), its model, and the variables of the checkpoint `ref`
  names."""
  workdir, _ = parse_ref(ref)
  config_path = os.path.join(workdir, "config.json")
  if not os.path.isfile(config_path):
    raise errors.ConfigError(
      f"--config.{field}={ref!r}: {config_path} is missing (is it a dlx workdir?)"
    )
  with open(config_path) as f:
    config = config_lib.from_json(f.read())
  experiment = experiment_lib.load(config.experiment)
  state, step = restore_state(ref, field)
  variables = {"params": state["params"], **state.get("model_state", {})}
  return experiment_lib.FrozenModel(
    workdir=os.path.abspath(workdir),
    experiment=experiment,
    config=config,
    # The teacher computes as its run did (bf16 when it trained in bf16).
    model=precision.apply_policy(experiment.get_model(config), config.get("dtype", "float32")),
    variables=variables,
    step=step,
  )
