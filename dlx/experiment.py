"""The experiment protocol, written once: what an `experiments/<family>/NAME.py` module declares.

An experiment module fills named slots; `load(name_or_path)` checks them once and
returns a frozen `Experiment` with every hook resolved and the defaults filled in. A
public name that looks like a hook but is not one (`final_reprot`, `get_loss_fn`) is an
error naming the closest valid hook, so a typo is never silently ignored.

Required:
  get_config(arg=None) -> ConfigDict
      start from `dlx.config.base_config()`; `config.model` holds the model's keyword
      arguments; `arg` is the text after `NAME:` (parse it with `config.parse_arg`;
      every experiment accepts `smoke`: a few steps on tiny data)
  get_model(config) -> flax.linen.Module
      called as model(batch['inputs'], train=...); inputs is an array or a dict of
      arrays; it may draw randomness from the rng streams 'dropout' and 'sample'
  get_dataset(config, data_dir) -> dlx.data.Dataset | dlx.data.Stream
      three in-memory splits, or training batches made on the fly as a function of
      (seed, step) with fixed validation and test splits
  loss(outputs, batch) -> {'loss': (B,), metric: (B,), ...}
      per-example values; training minimises the batch mean of 'loss', evaluation
      averages every entry over the split. Or get_loss(config) -> such a function.
      With --config.teacher, batch['teacher_outputs'] holds the teacher's outputs.

Optional:
  make_optimizer(config, total_steps) -> optax.GradientTransformation
      (or a dict of them, one per top-level parameter group, for a custom step);
      default: `dlx.training.optim.create_optimizer(config.optimizer, total_steps)`
  make_train_step(model, optimizer, config, *, axis_name, teacher) -> step
      step(state, batch) -> (state, metrics), for training with several players
      (GANs); default: `dlx.training.steps.make_train_step` with the loss and augmentation
  get_augment(config) -> fn(rng, batch) -> batch
      run inside the compiled train step; default: built from the config's `augment`
      block by `dlx.data.augment.make_augment` (none without the block)
  visualize(ctx, batch) -> {name: images (N, H, W, C) in [0, 1]}
      written as NAME_<step>.png (samples, reconstructions); batch = 64 test examples
  evaluate(ctx, split) -> {metric: float}
      set-level metrics that are not means of per-example values (mAP, mIoU, FID);
      runs at every validation and in the final evaluation, beside the means
  final_report(ctx) -> dict of JSON values
      once after the final evaluation (process 0): extra measurements, text samples,
      plots; stored under results['report']

Declarations (module constants):
  OUTPUTS = ('attention.png', 'samples_{step}.png', ...)
      files the hooks write into the workdir ({step}: the final step); the smoke test
      checks each one
  TARGETS = {'test.accuracy': ('>=', 0.99), ...}
      the bars the default configuration must reach (keys are paths into
      results.json); the slow test suite trains to them
  STARTS_FROM = {'init_from': 'lenet5_mnist'}  (or 'teacher': ...)
      the experiment whose finished run the config field must name; without it a run
      stops at once saying which command makes it (`:smoke` runs start from scratch)

Hooks that run on a trained model receive one `RunContext`.
"""

import dataclasses
import difflib
import functools
import importlib.util
import operator
import pathlib
import sys
import types
from typing import Any, Callable, Iterator, Mapping, Optional

import jax
import ml_collections
import numpy as np

from dlx import errors
from dlx.data import augment
from dlx.data import core
from dlx.data import pipeline
from dlx.training import optim

Config = ml_collections.ConfigDict
Batch = Mapping[str, Any]
LossFn = Callable[[Any, Batch], dict]

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"

REQUIRED = ("get_config", "get_model", "get_dataset")
LOSS_HOOKS = ("loss", "get_loss")  # exactly one of them
OPTIONAL = (
  "make_optimizer",
  "make_train_step",
  "get_augment",
  "visualize",
  "evaluate",
  "final_report",
)
DECLARATIONS = ("OUTPUTS", "TARGETS", "STARTS_FROM")
RUN_FIELDS = ("init_from", "teacher")  # config fields that name another run
PROTOCOL = REQUIRED + LOSS_HOOKS + OPTIONAL + DECLARATIONS
TARGET_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclasses.dataclass(frozen=True)
class FrozenModel:
  """A finished run loaded read-only (`--config.teacher=WORKDIR`): its experiment,
  resolved config, model and variables. In a compiled step, pass the variables the
  trainer keeps in `state.frozen[name]`, so they are arguments, not constants."""

  workdir: str
  experiment: "Experiment"
  config: Config
  model: Any
  variables: Any
  step: int

  def apply(self, inputs, variables=None):
    """The frozen model's evaluation-mode outputs (no gradient flows into them)."""
    variables = self.variables if variables is None else variables
    return jax.lax.stop_gradient(self.model.apply(variables, inputs, train=False))


@dataclasses.dataclass(frozen=True)
class RunContext:
  """What a hook that runs on a trained model sees (visualize, evaluate, final_report)."""

  experiment: "Experiment"
  config: Config
  workdir: str
  model: Any
  variables: Any  # {'params': ..., 'batch_stats': ...}
  dataset: Any  # dlx.data.Dataset or dlx.data.Stream
  rng: jax.Array  # a key of the hook's own, fixed by the seed (and the step)
  step: int
  teacher: Optional[FrozenModel] = None
  predict: Optional[Callable] = None  # jitted (variables, inputs) -> outputs, eval mode
  opt_state: Any = None  # the optimizer state (e.g. an EMA of the weights: optim.ema_params)

  def examples(self, split: str):
    """The split's examples as the trainer evaluates them (see `eval_split`)."""
    return eval_split(self.dataset, split, self.config)

  def outputs(
    self, data, batch_size: int | None = None, variables=None
  ) -> Iterator[tuple[dict, Any]]:
    """(batch, model outputs in eval mode) over `data` (a split's arrays), in order.
    The model runs on batches padded to one size (`pipeline.padded_batches`: one compiled
    program); the padding is dropped before yielding, so the last batch may be smaller.
    `variables` default to the run's."""
    predict = self.predict or jax.jit(
      lambda variables, inputs: self.model.apply(variables, inputs, train=False)
    )
    variables = self.variables if variables is None else variables
    total = core.num_examples(data)
    batch_size = min(batch_size or self.config.eval_batch_size, max(total, 1))
    for batch, mask in pipeline.padded_batches(data, batch_size):
      rows = int(mask.sum())
      outputs = predict(variables, batch["inputs"])
      if rows < batch_size:
        batch = core.take(batch, slice(0, rows))
        outputs = jax.tree.map(lambda x, r=rows: x[:r], outputs)
      yield batch, outputs


@dataclasses.dataclass(frozen=True)
class Experiment:
  """An experiment module's hooks, checked and resolved (see the module docstring)."""

  name: str
  path: pathlib.Path
  get_config: Callable[..., Config]
  get_model: Callable[[Config], Any]
  get_dataset: Callable[[Config, Optional[str]], Any]
  get_loss: Callable[[Config], LossFn]
  make_optimizer: Callable[[Config, int], Any]
  get_augment: Callable[[Config], Optional[Callable]]
  make_train_step: Optional[Callable] = None  # None: the generic step (dlx.training.steps)
  visualize: Optional[Callable[[RunContext, Batch], dict]] = None
  evaluate: Optional[Callable[[RunContext, str], dict]] = None
  final_report: Optional[Callable[[RunContext], dict]] = None
  outputs: tuple[str, ...] = ()
  targets: Mapping[str, tuple[str, float]] = dataclasses.field(default_factory=dict)
  starts_from: Mapping[str, str] = dataclasses.field(default_factory=dict)
  custom_optimizer: bool = False

  def config(self, arg: str | None = None) -> Config:
    """get_config(arg) with `experiment` set to this experiment's name."""
    config = self.get_config() if arg is None else self.get_config(arg)
    with config.unlocked():
      config.experiment = config.get("experiment") or self.name
    return config


def eval_split(dataset, split: str, config):
  """The examples an evaluation of `split` scores: validation and test limited to
  `config.eval_examples`, train to `config.train_eval_examples` (0 = the whole split).
  A limited split keeps `limit` examples evenly spaced over it, not the first ones, so a
  split stored in order (a language model's windows, play after play) is represented
  whole. A stream's 'train' is the first examples it yields (`Stream.train_sample`)."""
  limit = config.train_eval_examples if split == "train" else config.eval_examples
  if split == "train" and isinstance(dataset, core.Stream):
    return dataset.train_sample(config.seed, limit or core.num_examples(dataset.validation))
  data = dataset.split(split)
  total = core.num_examples(data)
  if not limit or limit >= total:
    return data
  return core.take(data, spread(total, limit))


def spread(total: int, count: int) -> np.ndarray:
  """`count` distinct indices evenly spaced over range(total), the first and last included."""
  return np.linspace(0, total - 1, count).round().astype(np.int64)


def default_make_optimizer(config, total_steps):
  return optim.create_optimizer(config.optimizer, total_steps)


def default_get_augment(config):
  if "augment" not in config:
    return None
  return augment.make_augment(config.augment)


def _experiment_files(directory: pathlib.Path = EXPERIMENTS_DIR) -> dict[str, pathlib.Path]:
  """{name: file} of every experiment: experiments/<family>/NAME.py. One name in two
  families is an error, since `./launch.sh NAME` could not tell them apart."""
  found = {}
  for path in sorted(directory.glob("*/*.py")):
    if path.stem.startswith("_") or path.parent.name.startswith(("_", ".")):
      continue
    if path.stem in found:
      raise errors.UserError(
        f"two experiments are named {path.stem!r}: {found[path.stem].relative_to(directory)} "
        f"and {path.relative_to(directory)}; rename one (names are unique across families)"
      )
    found[path.stem] = path
  return found


def available() -> list[str]:
  """Every experiment's name, over all family folders."""
  return sorted(_experiment_files())


def family(name: str) -> str:
  """The family folder an experiment lives in ('vision' for 'lenet5_mnist')."""
  return resolve(name).parent.name


def resolve(name_or_path: str) -> pathlib.Path:
  """An experiment name (file stem in experiments/<family>/) or a path to its .py file.
  A path of the flat layout before families (experiments/NAME.py) still names NAME."""
  path = pathlib.Path(name_or_path)
  if path.suffix == ".py" and path.is_file():
    return path.resolve()
  files = _experiment_files()
  if str(name_or_path) in files:
    return files[str(name_or_path)].resolve()
  if path.suffix == ".py" and path.parent.name == "experiments" and path.stem in files:
    return files[path.stem].resolve()
  close = difflib.get_close_matches(str(name_or_path), available(), n=1)
  hint = f"did you mean {close[0]!r}? " if close else ""
  raise errors.UserError(
    f"unknown experiment {name_or_path!r}; {hint}available: "
    f"{', '.join(available())} (or give a path to a .py file)"
  )


def _import(path: pathlib.Path) -> types.ModuleType:
  module_name = f"dlx_experiments.{path.stem}"
  module = sys.modules.get(module_name)
  if module is not None and module.__file__ == str(path):
    return module
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[module_name]
    raise
  return module


def _check_names(namespace: Mapping[str, Any], where: str):
  """Every public name that looks like a hook must be one of the protocol's."""
  for name, value in namespace.items():
    if name.startswith("_") or name in PROTOCOL or isinstance(value, types.ModuleType):
      continue
    close = difflib.get_close_matches(name.lower(), [p.lower() for p in PROTOCOL], n=1, cutoff=0.8)
    if close or name.startswith(("get_", "make_")):
      suggestion = next((p for p in PROTOCOL if close and p.lower() == close[0]), None)
      hint = (
        f"did you mean {suggestion!r}?"
        if suggestion
        else f"valid hooks: {', '.join(REQUIRED + LOSS_HOOKS + OPTIONAL)}"
      )
      raise errors.UserError(
        f"experiment {where} defines {name!r}, which is not a protocol hook; {hint} "
        "(prefix helpers with '_'; see dlx/experiment.py)"
      )


def _check_declarations(hooks, where):
  outputs = hooks.get("OUTPUTS", ())
  if isinstance(outputs, str) or not all(isinstance(o, str) for o in outputs):
    raise errors.UserError(
      f"experiment {where}: OUTPUTS must be a tuple of file names, got {outputs!r}"
    )
  targets = dict(hooks.get("TARGETS", {}))
  for key, bar in targets.items():
    if not (isinstance(bar, tuple) and len(bar) == 2 and bar[0] in TARGET_OPS):
      raise errors.UserError(
        f"experiment {where}: TARGETS[{key!r}] must be (op, value) with op one of "
        f"{', '.join(TARGET_OPS)}, got {bar!r}"
      )
  starts_from = dict(hooks.get("STARTS_FROM", {}))
  for field, name in starts_from.items():
    if field not in RUN_FIELDS or name not in available():
      raise errors.UserError(
        f"experiment {where}: STARTS_FROM maps a config field ({', '.join(RUN_FIELDS)}) "
        f"to an experiment in experiments/, got {field!r}: {name!r}"
      )
  return tuple(outputs), targets, starts_from


def check_starts_from(experiment: "Experiment", config):
  """A run that needs another run's checkpoint says which command makes it."""
  for field, name in experiment.starts_from.items():
    if not config[field] and not config.smoke:
      raise errors.ConfigError(
        f"{experiment.name} starts from a finished {name} run: pass --config.{field}=WORKDIR "
        f"(make one with `./launch.sh {name}`, adding --data_dir=DIR for tfds data)"
      )


def _from_namespace(
  name: str, path: pathlib.Path, namespace: Mapping[str, Any], where: str
) -> Experiment:
  _check_names(namespace, where)
  hooks = {n: namespace[n] for n in PROTOCOL if n in namespace}
  missing = [n for n in REQUIRED if n not in hooks]
  has_loss = [n for n in LOSS_HOOKS if n in hooks]
  if len(has_loss) != 1:
    missing.append("loss or get_loss" if not has_loss else "only one of loss and get_loss")
  if missing:
    raise errors.UserError(
      f"experiment {where} does not define {', '.join(missing)}; "
      "see dlx/experiment.py for the protocol"
    )
  for hook in REQUIRED + LOSS_HOOKS + OPTIONAL:
    if hook in hooks and not callable(hooks[hook]):
      raise errors.UserError(
        f"experiment {where}: {hook} must be a function, got {type(hooks[hook]).__name__}"
      )
  outputs, targets, starts_from = _check_declarations(hooks, where)
  get_loss = hooks.get("get_loss") or functools.partial(_constant, hooks.get("loss"))
  return Experiment(
    name=name,
    path=path,
    get_config=hooks["get_config"],
    get_model=hooks["get_model"],
    get_dataset=hooks["get_dataset"],
    get_loss=get_loss,
    make_optimizer=hooks.get("make_optimizer", default_make_optimizer),
    get_augment=hooks.get("get_augment", default_get_augment),
    make_train_step=hooks.get("make_train_step"),
    visualize=hooks.get("visualize"),
    evaluate=hooks.get("evaluate"),
    final_report=hooks.get("final_report"),
    outputs=outputs,
    targets=targets,
    starts_from=starts_from,
    custom_optimizer="make_optimizer" in hooks,
  )


def load(name_or_path: str) -> Experiment:
  """The experiment `name_or_path` (a name in experiments/<family>/ or a .py path), checked."""
  path = resolve(name_or_path)
  return _from_namespace(path.stem, path, vars(_import(path)), path.name)


def build(name: str, **hooks) -> Experiment:
  """An experiment from hooks given in code (a notebook, a test), checked as `load`
  checks a module: `build("xor2", get_config=..., get_model=..., ...)`."""
  return _from_namespace(name, pathlib.Path(f"<{name}>"), hooks, repr(name))


def _constant(loss, config):
  del config
  return loss


def lookup(results: Mapping, key: str):
  """results['test']['accuracy'] for the key 'test.accuracy' (TARGETS keys)."""
  value = results
  for part in key.split("."):
    value = value[int(part) if isinstance(value, list) else part]
  return value


def missed_targets(experiment: Experiment, results: Mapping) -> list[str]:
  """The TARGETS the results miss, as readable lines ([] = all met)."""
  missed = []
  for key, (op, bar) in experiment.targets.items():
    try:
      value = lookup(results, key)
    except (KeyError, IndexError, TypeError):
      missed.append(f"{key}: not in results.json")
      continue
    if not TARGET_OPS[op](float(value), bar):
      missed.append(f"{key} = {float(value):.6g}, bar {op} {bar}")
  return missed
