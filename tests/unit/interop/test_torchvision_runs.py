"""torchvision state dicts in and out of dlx runs: `--config.init_from=torchvision:ARCH:FILE`
and `python -m dlx.tools.export --format=torchvision` (dlx/interop/formats.py).

A random ResNet-18 state dict (to_torchvision of random variables, as a .safetensors file)
starts a `resnet18_finetune_fashion_mnist:smoke` run whose backbone takes the file's
parameters and whose head is its own; the run exported with --format=torchvision is
to_torchvision of its parameters and loads into torchvision's resnet18 strictly (the torch
half skips without torch).
"""

import dataclasses
import importlib.util
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx import experiment as experiment_lib
from dlx import train
from dlx.interop import formats
from dlx.interop import safetensors_io
from dlx.interop import torchvision
from dlx.tools import export
from dlx.training import warm_start
from tests import conftest

pytestmark = pytest.mark.skipif(
  importlib.util.find_spec("safetensors") is None,
  reason="dlx.interop needs safetensors (pip install 'dlx[interop]')",
)

# Without the plots of its final report (seconds per run); config.json still names it.
FINETUNE = dataclasses.replace(
  experiment_lib.load("resnet18_finetune_fashion_mnist"), final_report=None, outputs=()
)
HEAD = "classifier"


def _random_variables(seed=0):
  """Random ResNet-18 variables of the experiment's model (positive variances)."""
  config = FINETUNE.config("smoke")
  model = FINETUNE.get_model(config)
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False)
  )
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: np.abs(rng.normal(size=s.shape)).astype(np.float32), dict(shapes))


def _params(workdir):
  steps = conftest.checkpoint_steps(workdir / "checkpoints")
  return conftest.restore_checkpoint(workdir / "checkpoints", steps[-1])[0]["params"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  """(variables, path of their torchvision state dict as .safetensors)."""
  variables = _random_variables()
  path = tmp_path_factory.mktemp("tv") / "resnet18.safetensors"
  safetensors_io.write(path, torchvision.to_torchvision("resnet18", variables))
  return variables, path


@pytest.fixture(scope="module")
def run(weights, tmp_path_factory):
  """One step at learning rate 0 from the file: the checkpoint holds the initial params."""
  _, path = weights
  config = FINETUNE.config("smoke")
  config.init_from = f"torchvision:resnet18:{path}"
  config.num_train_steps = 1
  config.optimizer.learning_rate, config.optimizer.warmup_steps = 0.0, 0
  workdir = tmp_path_factory.mktemp("finetune")
  train.train_and_evaluate(config, str(workdir), experiment=FINETUNE)
  return workdir


def test_the_backbone_starts_from_the_file_and_the_head_is_fresh(weights, run):
  variables, _ = weights
  params, theirs = _params(run), variables["params"]
  assert set(params) == set(theirs)
  for name in set(params) - {HEAD}:
    for path, x in formats.flat_tensors(params[name]).items():
      np.testing.assert_array_equal(x, formats.flat_tensors(theirs[name])[path], err_msg=name)
  for leaf in ("kernel", "bias"):
    assert not np.allclose(params[HEAD][leaf], theirs[HEAD][leaf]), leaf
  # The keys the experiment takes are every sub-tree but the head.
  assert set(warm_start.keys_of(FINETUNE.config())) == set(params) - {HEAD}


def test_the_torchvision_export_is_the_runs_state_dict(run, tmp_path):
  out = tmp_path / "run.safetensors"
  assert export.main([str(run) + ":latest", "--format=torchvision", f"--out={out}"]) == 0
  steps = conftest.checkpoint_steps(run / "checkpoints")
  state = conftest.restore_checkpoint(run / "checkpoints", steps[-1])[0]
  expected = torchvision.to_torchvision(
    "resnet18", {"params": state["params"], **state["model_state"]}
  )
  written = safetensors_io.read(out)
  assert sorted(written) == sorted(expected)
  for key, x in expected.items():
    np.testing.assert_array_equal(written[key], x, err_msg=key)


# torch next to the tensorflow that tfds' mock data loads can crash on import: torchvision
# reads the files in a process of its own.
_LOAD_STRICTLY = """
import sys, torch, torchvision
from safetensors.torch import load_file
model = torchvision.models.resnet18(num_classes=10)
for path in sys.argv[1:]:
  state = load_file(path) if path.endswith(".safetensors") else torch.load(path, weights_only=True)
  model.load_state_dict(state, strict=True)
print("loaded", len(sys.argv) - 1)
"""


@pytest.mark.torch
def test_torchvision_loads_the_export_strictly(run, tmp_path):
  for module in ("torch", "torchvision"):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"{module} is not installed (the check loads the export into torchvision)")
  paths = [tmp_path / "run.pth", tmp_path / "run.safetensors"]
  for path in paths:
    assert export.main([str(run), "--format=torchvision", f"--out={path}"]) == 0
  done = subprocess.run(
    [sys.executable, "-c", _LOAD_STRICTLY, *map(str, paths)],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0 and "loaded 2" in done.stdout, done.stderr[-2000:]


def test_bad_torchvision_references_are_one_line(weights, tmp_path):
  _, path = weights
  with pytest.raises(errors.ConfigError) as error:
    warm_start.load_external(f"torchvision:resnet19:{path}")
  message = str(error.value)
  assert "\n" not in message and "unknown torchvision architecture 'resnet19'" in message
  with pytest.raises(errors.ConfigError, match="give torchvision:ARCH:FILE"):
    warm_start.load_external(f"torchvision:{path}")
  mlp = experiment_lib.load("mlp_xor")
  model = mlp.get_model(mlp.config())
  variables = model.init(jax.random.key(0), jnp.zeros((1, 2)))
  with pytest.raises(errors.UserError) as error:
    formats.EXPORTS["torchvision"].write(model, variables, tmp_path / "w.safetensors", {})
  assert "\n" not in str(error.value) and "model (MLP) has the variables of none" in str(
    error.value
  )
  with pytest.raises(errors.UserError, match="writes a .safetensors, .pth or .pt FILE"):
    formats.EXPORTS["torchvision"].write(model, variables, tmp_path / "w.bin", {})
