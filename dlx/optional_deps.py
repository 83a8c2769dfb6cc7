"""Which optional dependency group ("extra") provides what, and one clear error when one
is missing (docs/curriculum.md#a1).

`pip install dlx` (the core) is enough for `dlx.losses`, `dlx.nn`, `dlx.models` and
`dlx.ops`: JAX, Flax, Optax and NumPy. The trainer needs `[train]`, reading datasets
`[data]`, reading and writing other libraries' checkpoints (`dlx.interop`) `[interop]`;
`./launch.sh` installs `[all]`. The experiment trackers of `--config.loggers` are extras
of their own, `[wandb]` and `[mlflow]`, outside `[all]`.
"""

import importlib.util
import sys

# Import name -> (pip requirement, extra).
PROVIDERS = {
  "absl": ("absl-py", "train"),
  "ml_collections": ("ml-collections", "train"),
  "orbax": ("orbax-checkpoint", "train"),
  "tensorboard": ("tensorboard", "train"),
  "matplotlib": ("matplotlib", "train"),
  "PIL": ("pillow", "train"),
  "tensorflow": ("tensorflow-cpu", "data"),
  "tensorflow_datasets": ("tensorflow-datasets", "data"),
  "sklearn": ("scikit-learn", "data"),
  "mnist1d": ("mnist1d", "data"),
  "sentencepiece": ("sentencepiece", "data"),
  "grain": ("grain", "data"),
  "array_record": ("array_record", "data"),
  "ray": ("ray", "ray"),
  "wandb": ("wandb", "wandb"),
  "mlflow": ("mlflow-skinny", "mlflow"),
  "safetensors": ("safetensors", "interop"),
}
TRAINER = ("absl", "ml_collections", "orbax", "tensorboard", "matplotlib")
# Extras that [all] (what ./launch.sh installs) leaves out: the experiment trackers.
NOT_IN_ALL = ("wandb", "mlflow")


def message(module: str, what: str) -> str:
  """The one line that says which extra to install for `module` (an import name)."""
  top = module.split(".")[0]
  requirement, extra = PROVIDERS.get(top, (top, "all"))
  also = "" if extra in NOT_IN_ALL else " (or 'dlx[all]'; ./launch.sh installs everything)"
  return f"{what} needs {requirement}, from dlx's [{extra}] extra: pip install 'dlx[{extra}]'{also}"


def require(what: str, *modules: str):
  """Raises ImportError naming the extra if any of `modules` is not installed (checked
  without importing them)."""
  for module in modules:
    top = module.split(".")[0]
    # sys.modules[name] = None is Python's way to block an import; treat it as absent.
    blocked = top in sys.modules and sys.modules[top] is None
    if blocked or importlib.util.find_spec(top) is None:
      raise ImportError(message(module, what))


def missing(error: ModuleNotFoundError, what: str) -> ImportError:
  """The ImportError to raise instead of `error`, a failed import of an optional package."""
  return ImportError(message(error.name or "?", what))
