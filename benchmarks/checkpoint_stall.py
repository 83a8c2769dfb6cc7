"""How long a checkpoint stalls training: synchronous against asynchronous saves.

  python benchmarks/checkpoint_stall.py [--params_millions=25] [--steps=30] [--json=FILE]

A TrainState of an MLP with `params_millions` million float32 parameters and Adam's two
moments (so about 12 bytes per parameter on disk) trains with dlx's real step
(`dlx.training.steps.make_train_step`, state donated). Every run saves through dlx's
`Checkpointer` `repeats` times, each followed by `steps` timed steps (medians over the
repeats), into a fresh directory:

  step alone      median step time with no save in sight
  save call       wall time of `Checkpointer.save` (sync: the whole write; async: the
                  copy to host memory and the hand-over to orbax's thread)
  stalled steps   sum of the (save call + the following steps) above what the same steps
                  take alone: the training time the checkpoint cost
  written         wall time of a second save waited for with nothing else running: the
                  whole write, from the call until the checkpoint is complete on disk

The clock is read after `jax.block_until_ready`; compilation and warm-up are not timed.
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlx import train
from dlx.training import checkpoint
from dlx.training import steps


class _Wide(nn.Module):
  width: int
  depth: int

  @nn.compact
  def __call__(self, x, train=False):
    del train
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dense(10)(x)


def _loss(logits, batch):
  labels = jax.nn.one_hot(batch["targets"], 10)
  return {"loss": optax.softmax_cross_entropy(logits, labels)}


def measure(params_millions: float, num_steps: int, asynchronous: bool, repeats: int) -> dict:
  depth = 4
  width = int((params_millions * 1e6 / depth) ** 0.5)
  model, optimizer = _Wide(width, depth), optax.adam(1e-4)
  batch = {
    "inputs": jax.random.normal(jax.random.key(0), (32, width)),
    "targets": jnp.zeros((32,), jnp.int32),
  }
  state = jax.jit(train.create_init_fn(model, optimizer, batch["inputs"][:2], 0))(jax.random.key(1))
  step = jax.jit(steps.make_train_step(model, optimizer, _loss), donate_argnums=0)
  for _ in range(3):  # compile and warm up
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))

  def timed(state, count):
    times = []
    for _ in range(count):
      start = time.perf_counter()
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    return state, times

  state, alone = timed(state, num_steps)
  median = statistics.median(alone)
  directory = tempfile.mkdtemp(prefix="dlx-ckpt-bench-")
  ckpt = checkpoint.Checkpointer(directory, keep=1, asynchronous=asynchronous)
  save_calls, stalls = [], []
  try:
    for _ in range(repeats):  # a save, then the steps it may slow down
      jax.block_until_ready(state)
      start = time.perf_counter()
      ckpt.save(int(state.step), state, {})
      save_calls.append(time.perf_counter() - start)
      state, after = timed(state, num_steps)
      stalls.append(save_calls[-1] + sum(after) - median * len(after))
      ckpt.latest.wait_until_finished()
    # The write on its own: one more save, waited for with nothing else running.
    start = time.perf_counter()
    ckpt.save(int(state.step) + 1, state, {})
    ckpt.latest.wait_until_finished()
    written = time.perf_counter() - start
  finally:
    ckpt.close()
    shutil.rmtree(directory, ignore_errors=True)
  median = statistics.median(alone)
  return {
    "mode": "async" if asynchronous else "sync",
    "parameters": num_params,
    "checkpoint_mb": round(3 * num_params * 4 / 2**20, 1),
    "step_alone_ms": round(1e3 * median, 2),
    "save_call_s": round(statistics.median(save_calls), 3),
    "stalled_s": round(statistics.median(stalls), 3),
    "written_s": round(written, 3),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--params_millions", type=float, default=25.0)
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json", default=None)
  args = parser.parse_args()
  rows = [measure(args.params_millions, args.steps, mode, args.repeats) for mode in (False, True)]
  for row in rows:
    print(json.dumps(row))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  main()
