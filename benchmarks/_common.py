"""Helpers the train-step benchmarks share (train_step.py, side_by_side.py, gpt_small.py).

A dlx step is dlx's real generic step, `dlx.training.steps.make_train_step`, jitted with the state
donated (`donate_argnums=0`), on the state `dlx.train.create_init_fn` builds; the clock is
read after `jax.block_until_ready`. A PyTorch step is zero_grad, forward, loss, backward,
optional clipping, optimizer step; on CUDA the clock is read after
`torch.cuda.synchronize()`, on the CPU eager ops are synchronous. Compilation and warm-up
steps are never timed; the first (compiling) call is reported on its own.
"""

import json
import os
import platform
import statistics
import time

import flax
import jax
import numpy as np
import optax

from dlx import config as config_lib
from dlx import train
from dlx.training import steps

try:
  import torch  # pylint: disable=g-import-not-at-top

  TORCH_ERROR = None
except ImportError as e:  # torch is an optional (test) extra.
  torch = None
  TORCH_ERROR = e


def available_cores():
  """Cores this process may run on (the affinity mask where there is one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def fast_cpu_compile():
  """Cheaper XLA code generation, for --tiny runs only: there compiling dominates the run
  time on a CPU and the timings mean nothing anyway. Call before the first jax call."""
  os.environ["XLA_FLAGS"] = config_lib.with_fast_compile_flags(os.environ.get("XLA_FLAGS", ""))


def write_json(path, value):
  """Writes `value` as indented JSON to `path` (making its folder) and says so."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(value, f, indent=2)
  print(f"wrote {path}")


def count_params(tree):
  """Number of scalars in a pytree of arrays."""
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def time_steps(run_step, sync, warmup, repeats, group=1, max_seconds=None):
  """Per-step wall times in ms, after `warmup` untimed steps.

  Args:
    run_step: runs one step and returns its outputs.
    sync: blocks until the given outputs are computed.
    warmup: untimed steps run first.
    repeats: number of steps timed (rounded up to whole groups).
    group: steps per clock reading.
    max_seconds: stop early once this much time has been spent timing (at least three
      readings are always taken), so slow models on a CPU finish; None: no limit.

  Returns:
    A list of per-step times in milliseconds, one per group.
  """
  for _ in range(warmup):
    sync(run_step())
  times = []
  began = time.perf_counter()
  for _ in range(-(-repeats // group)):
    start = time.perf_counter()
    for _ in range(group):
      outputs = run_step()
    sync(outputs)
    now = time.perf_counter()
    times.append((now - start) * 1e3 / group)
    if max_seconds is not None and len(times) >= 3 and now - began > max_seconds:
      break
  return times


def _finite(value, what):
  if not np.isfinite(value):
    raise RuntimeError(f"{what}: non-finite loss {value}")
  return value


def time_dlx_step(
  model, optimizer, loss_fn, batch, *, warmup, repeats, group=1, max_seconds=None, seed=0
):
  """Times dlx's generic jitted train step on one fixed batch.

  Args:
    model: a Flax module called as model.apply(variables, inputs, train=True, ...).
    optimizer: an optax GradientTransformation (from dlx.training.optim.create_optimizer).
    loss_fn: loss_fn(outputs, batch) -> {'loss': per-example or per-element values}.
    batch: dict with 'inputs' and whatever loss_fn reads, already on the device.
    warmup, repeats, group, max_seconds: see `time_steps`.
    seed: initialisation seed.

  Returns:
    {'num_params', 'times_ms', 'first_call_ms', 'final_loss', 'device'}.
  """
  init_fn = train.create_init_fn(
    model, optimizer, jax.tree.map(lambda x: x[:1], batch["inputs"]), seed
  )
  state = jax.jit(init_fn)(jax.random.PRNGKey(seed))
  num_params = count_params(state.params)
  train_step = jax.jit(steps.make_train_step(model, optimizer, loss_fn), donate_argnums=0)

  start = time.perf_counter()
  state, _ = jax.block_until_ready(train_step(state, batch))
  first_ms = (time.perf_counter() - start) * 1e3

  # The state is donated, so each step must feed the next one its output.
  holder = {"state": state}

  def run_step():
    holder["state"], step_metrics = train_step(holder["state"], batch)
    return holder["state"], step_metrics

  times = time_steps(run_step, jax.block_until_ready, warmup, repeats, group, max_seconds)
  state, metrics = jax.block_until_ready(train_step(holder["state"], batch))
  return {
    "num_params": num_params,
    "times_ms": times,
    "first_call_ms": first_ms,
    "final_loss": _finite(float(metrics["loss"]), "dlx"),
    "device": str(next(iter(jax.tree.leaves(state.params)[0].devices()))),
  }


def torch_device(choice="auto"):
  """'cuda' when asked, or when 'auto' and torch sees a CUDA device; else 'cpu'."""
  if choice == "auto":
    choice = "cuda" if torch.cuda.is_available() else "cpu"
  if choice == "cuda" and not torch.cuda.is_available():
    raise RuntimeError("--torch_device=cuda but torch sees no CUDA device")
  return torch.device(choice)


def torch_sync(device):
  """A sync(outputs) for `time_steps`: CUDA work is asynchronous, CPU eager is not."""
  if device.type == "cuda":
    return lambda _: torch.cuda.synchronize(device)
  return lambda _: None


def time_torch_step(
  model,
  optimizer,
  loss_fn,
  inputs,
  targets,
  device,
  *,
  warmup,
  repeats,
  group=1,
  max_seconds=None,
  clip_norm=None,
  before_step=None,
):
  """Times an eager PyTorch step (zero_grad, forward, loss, backward, [clip,] step).

  Args:
    model: a torch.nn.Module already on `device`, in train mode.
    optimizer: its torch optimizer.
    loss_fn: loss_fn(outputs, targets) -> scalar tensor.
    inputs, targets: tensors on `device`.
    device: the torch.device (decides how to synchronise).
    warmup, repeats, group, max_seconds: see `time_steps`.
    clip_norm: clip the gradients to this global norm (None: no clipping).
    before_step: optional fn(step_index) run first in every step (e.g. set the lr).

  Returns:
    {'num_params', 'times_ms', 'first_call_ms', 'final_loss', 'device'}.
  """
  params = [p for p in model.parameters() if p.requires_grad]
  counter = {"step": 0}

  def run_step():
    if before_step is not None:
      before_step(counter["step"])
    counter["step"] += 1
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    if clip_norm:
      torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    return loss

  sync = torch_sync(device)
  start = time.perf_counter()
  sync(run_step())
  first_ms = (time.perf_counter() - start) * 1e3
  times = time_steps(run_step, sync, warmup, repeats, group, max_seconds)
  return {
    "num_params": sum(p.numel() for p in model.parameters()),
    "times_ms": times,
    "first_call_ms": first_ms,
    "final_loss": _finite(float(run_step().detach()), "torch"),
    "device": str(device),
  }


def summary(result):
  """Median, spread and the raw times of one `time_*_step` result."""
  median = statistics.median(result["times_ms"])
  return {
    "num_params": result["num_params"],
    "median_ms": median,
    "steps_per_s": 1e3 / median,
    "min_ms": min(result["times_ms"]),
    "max_ms": max(result["times_ms"]),
    "first_call_ms": result["first_call_ms"],
    "final_loss": result["final_loss"],
    "times_ms": result["times_ms"],
  }


def environment():
  """Machine and library versions, for the JSON and the printed header."""
  env = {
    "python": platform.python_version(),
    "machine": platform.machine(),
    "processor": platform.processor() or platform.machine(),
    "available_cores": available_cores(),
    "jax": jax.__version__,
    "jax_backend": jax.default_backend(),
    "jax_devices": [str(d) for d in jax.devices()],
    "jax_device_kind": jax.devices()[0].device_kind,
    "torch": None if torch is None else torch.__version__,
    "torch_threads": None if torch is None else torch.get_num_threads(),
    "flax": flax.__version__,
    "optax": optax.__version__,
    "torch_cuda": None,
  }
  if torch is not None and torch.cuda.is_available():
    env["torch_cuda"] = torch.cuda.get_device_name(0)
  return env
