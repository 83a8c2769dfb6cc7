"""The experiment protocol: what an `experiments/NAME.py` module declares.

Required:
  get_config() -> ConfigDict          start from `dlx.config.base_config()`
  get_model(config) -> nn.Module      called as model(batch['inputs'], train=...); inputs
                                      is an array or a dict of arrays
  get_dataset(config, data_dir) -> dlx.data.Dataset
  loss(outputs, batch) -> dict        per-example arrays (B,): 'loss' plus any metrics;
                                      training minimises the batch mean of 'loss' and
                                      evaluation averages every entry over the split
    (or get_loss(config) -> such a function, when the loss depends on the config)
Optional:
  make_optimizer(config, total_steps) -> optax.GradientTransformation (or a dict of them,
      one per top-level parameter group, for a custom step); default: from config.optimizer
  make_train_step(model, optimizer, config, axis_name) -> step(state, batch) -> (state,
      metrics): for training with several players (GANs); default: dlx.steps
  get_augment(config) -> fn(rng, batch) -> batch, run inside the compiled train step
      (default: built from the config's `augment` block by dlx.augment.make_augment)
  visualize(model, variables, batch, rng, config) -> {name: images (N, H, W, C) in [0, 1]}
      written as NAME_<step>.png (e.g. samples, reconstructions)
  final_report(model, variables, dataset, config, workdir, rng) -> dict of JSON values
      run once after the final evaluation (process 0): extra measurements (decoding,
      longer sequences), text samples, attention plots; stored under results['report']
"""

import importlib.util
import pathlib
import sys
import types

from dlx import errors

REQUIRED = ("get_config", "get_model", "get_dataset", ("loss", "get_loss"))
EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def available():
  return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_"))


def resolve(name_or_path: str) -> pathlib.Path:
  """An experiment name (file stem in experiments/) or a path to its .py file."""
  path = pathlib.Path(name_or_path)
  for candidate in (path, EXPERIMENTS_DIR / f"{name_or_path}.py"):
    if candidate.suffix == ".py" and candidate.is_file():
      return candidate.resolve()
  raise errors.UserError(f"unknown experiment {name_or_path!r}; available: "
                         f"{', '.join(available())} (or give a path to a .py file)")


def load(name_or_path: str) -> types.ModuleType:
  path = resolve(name_or_path)
  module_name = f"dlx_experiments.{path.stem}"
  if module_name in sys.modules and sys.modules[module_name].__file__ == str(path):
    return sys.modules[module_name]
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module
  spec.loader.exec_module(module)
  missing = [name if isinstance(name, str) else " or ".join(name) for name in REQUIRED
             if not any(hasattr(module, n) for n in ((name,) if isinstance(name, str) else name))]
  if missing:
    raise errors.UserError(f"experiment {path} does not define {', '.join(missing)}; "
                           "see dlx/experiment.py for the protocol")
  return module


def name_of(path) -> str:
  return pathlib.Path(path).stem


def loss_fn(experiment, config):
  """The experiment's per-example loss function (see the protocol above)."""
  if hasattr(experiment, "get_loss"):
    return experiment.get_loss(config)
  return experiment.loss
