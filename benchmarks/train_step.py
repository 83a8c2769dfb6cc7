"""Times one training step of LeNet-5 and an MLP in dlx and in PyTorch eager.

A step is forward + backward + Adam update on one batch (default 128):

* LeNet-5 (`dlx.models.lenet.LeNet5`) on (B, 32, 32, 1) inputs, 10 classes;
* MLP 784-256-256-10 with ReLU (`dlx.models.mlp.MLP`) on (B, 784) inputs.

dlx runs its real generic step, `dlx.training.steps.make_train_step(model, optimizer,
dlx.tasks.classification.classification)`, jitted with `donate_argnums=0`, on the state built
by `dlx.train.create_init_fn` and the Adam (lr 1e-3) from
`dlx.training.optim.create_optimizer`. PyTorch runs the same architectures eagerly with
`torch.optim.Adam(lr=1e-3)` and `F.cross_entropy`. Both see the same synthetic
batch, in the same process.

Compilation and warm-up are excluded: each framework first runs `--warmup`
steps. Every timed step is then clocked on its own (`--group 1`) or in groups
of `--group` steps (per-step time = group time / group); for dlx the clock is
read only after `jax.block_until_ready` on the step outputs. The table reports
the median over `--repeats` steps.

  .venv/bin/python benchmarks/train_step.py [--repeats 200] [--batch_size 128]
      [--models lenet,mlp] [--threads N] [--out results.json]

torch is optional: without it the script says so and times dlx only.
"""

import argparse
import sys

import _common
import jax
import jax.numpy as jnp
import numpy as np

from dlx.models import lenet
from dlx.models import mlp
from dlx.tasks import classification
from dlx.training import optim

torch = _common.torch
if torch is not None:
  from torch import nn as torch_nn  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as torch_f  # pylint: disable=g-import-not-at-top

NUM_CLASSES = 10
LENET_PARAMS = 61_706  # The count in dlx/models/lenet.py's docstring.
MODELS = ("lenet", "mlp")
SEED = 0
LEARNING_RATE = 1e-3


def synthetic_batch(name, batch_size):
  """Numpy inputs in dlx's layout (NHWC for images) and integer labels."""
  rng = np.random.default_rng(SEED)
  shape = (batch_size, 32, 32, 1) if name == "lenet" else (batch_size, 784)
  inputs = rng.standard_normal(shape, dtype=np.float32)
  labels = rng.integers(0, NUM_CLASSES, size=(batch_size,), dtype=np.int32)
  return inputs, labels


# --------------------------------------------------------------------------- #
# dlx
# --------------------------------------------------------------------------- #


def dlx_model(name):
  if name == "lenet":
    return lenet.LeNet5(num_classes=NUM_CLASSES)
  return mlp.MLP(hidden=(256, 256), num_outputs=NUM_CLASSES)


def adam(total_steps):
  """dlx's Adam (lr 1e-3) from its optimizer config."""
  config = optim.default_config()
  config.name = "adam"
  config.learning_rate = LEARNING_RATE
  return optim.create_optimizer(config, total_steps=total_steps)


def bench_dlx(name, inputs, labels, args, max_seconds=None):
  """Times dlx's generic jitted train step; returns a result dict."""
  batch = {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(labels)}
  return _common.time_dlx_step(
    dlx_model(name),
    adam(args.warmup + args.repeats + args.group),
    classification.classification,
    batch,
    warmup=args.warmup,
    repeats=args.repeats,
    group=args.group,
    max_seconds=max_seconds,
    seed=SEED,
  )


# --------------------------------------------------------------------------- #
# PyTorch
# --------------------------------------------------------------------------- #


def torch_model(name):
  """The dlx architectures in PyTorch (NCHW images, default torch init)."""
  if name == "lenet":
    # As dlx LeNet5: VALID 5x5 convs, tanh, 2x2/2 average pooling.
    return torch_nn.Sequential(
      torch_nn.Conv2d(1, 6, 5),
      torch_nn.Tanh(),
      torch_nn.AvgPool2d(2, 2),
      torch_nn.Conv2d(6, 16, 5),
      torch_nn.Tanh(),
      torch_nn.AvgPool2d(2, 2),
      torch_nn.Flatten(),
      torch_nn.Linear(16 * 5 * 5, 120),
      torch_nn.Tanh(),
      torch_nn.Linear(120, 84),
      torch_nn.Tanh(),
      torch_nn.Linear(84, NUM_CLASSES),
    )
  return torch_nn.Sequential(
    torch_nn.Flatten(),
    torch_nn.Linear(784, 256),
    torch_nn.ReLU(),
    torch_nn.Linear(256, 256),
    torch_nn.ReLU(),
    torch_nn.Linear(256, NUM_CLASSES),
  )


def bench_torch(name, inputs, labels, args, device=None, max_seconds=None):
  """Times an eager PyTorch step (zero_grad, forward, CE, backward, Adam)."""
  device = device or torch.device("cpu")
  torch.manual_seed(SEED)
  model = torch_model(name).to(device)
  model.train()
  optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
  if name == "lenet":
    inputs = np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))  # NHWC->NCHW
  return _common.time_torch_step(
    model,
    optimizer,
    torch_f.cross_entropy,
    torch.from_numpy(inputs).to(device),
    torch.from_numpy(labels.astype(np.int64)).to(device),
    device,
    warmup=args.warmup,
    repeats=args.repeats,
    group=args.group,
    max_seconds=max_seconds,
  )


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--repeats", type=int, default=200, help="timed steps per model and framework"
  )
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument(
    "--models", default=",".join(MODELS), help="comma-separated subset of: " + ",".join(MODELS)
  )
  parser.add_argument(
    "--warmup", type=int, default=10, help="untimed steps after the first (compiling) call"
  )
  parser.add_argument(
    "--group", type=int, default=1, help="steps per clock reading (1 = each step alone)"
  )
  parser.add_argument(
    "--threads",
    type=int,
    default=_common.available_cores(),
    help="torch.set_num_threads (default: available cores)",
  )
  parser.add_argument("--out", default=None, help="write the results as JSON")
  args = parser.parse_args(argv)
  args.models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = sorted(set(args.models) - set(MODELS))
  if unknown or not args.models:
    parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
  for flag in ("repeats", "batch_size", "group", "threads"):
    if getattr(args, flag) < 1:
      parser.error(f"--{flag} must be >= 1")
  if args.warmup < 0:
    parser.error("--warmup must be >= 0")
  return args


def main(argv=None):
  args = _parse_args(argv)
  cores = _common.available_cores()
  if torch is None:
    print(f"note: torch is not importable ({_common.TORCH_ERROR}); timing dlx only.")
  else:
    torch.set_num_threads(args.threads)
  env = _common.environment()

  print(
    f"batch {args.batch_size}, {args.repeats} timed steps after "
    f"{args.warmup} warm-up steps, clock read every {args.group} step(s); "
    f"median reported."
  )
  print(
    f"{cores} core(s) available; jax {jax.__version__} on "
    f"{jax.default_backend()} (XLA default thread pool)"
    + (
      ""
      if torch is None
      else f"; torch {torch.__version__} eager, set_num_threads({env['torch_threads']})"
    )
    + "."
  )

  results = {}
  for name in args.models:
    inputs, labels = synthetic_batch(name, args.batch_size)
    entry = {"dlx": _common.summary(bench_dlx(name, inputs, labels, args))}
    if name == "lenet":
      assert entry["dlx"]["num_params"] == LENET_PARAMS, entry["dlx"]
    if torch is not None:
      entry["torch"] = _common.summary(bench_torch(name, inputs, labels, args))
      assert entry["torch"]["num_params"] == entry["dlx"]["num_params"], (
        f"{name}: torch has {entry['torch']['num_params']} parameters, "
        f"dlx {entry['dlx']['num_params']}"
      )
      entry["speedup_dlx_vs_torch"] = entry["torch"]["median_ms"] / entry["dlx"]["median_ms"]
    results[name] = entry

  header = (
    f"{'model':<7} {'framework':<10} {'params':>8} "
    f"{'median ms/step':>15} {'steps/s':>9} {'speedup':>8}"
  )
  print()
  print(header)
  print("-" * len(header))
  for name, entry in results.items():
    for framework in ("dlx", "torch"):
      if framework not in entry:
        continue
      row = entry[framework]
      speedup = ""
      if framework == "dlx" and "speedup_dlx_vs_torch" in entry:
        speedup = f"{entry['speedup_dlx_vs_torch']:.2f}x"
      print(
        f"{name:<7} {framework:<10} {row['num_params']:>8,} "
        f"{row['median_ms']:>15.3f} {row['steps_per_s']:>9.1f} "
        f"{speedup:>8}"
      )
  if torch is not None:
    print("speedup = torch median / dlx median (> 1: dlx is faster).")

  if args.out:
    payload = {
      "config": {k: v for k, v in vars(args).items() if k != "out"},
      "environment": env,
      "results": results,
    }
    _common.write_json(args.out, payload)


if __name__ == "__main__":
  sys.exit(main())
