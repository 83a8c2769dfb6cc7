"""Full causal attention vs blockwise local attention (docs/curriculum.md#e6) in a GPT.

Truncated attention only saves compute when the T x T score matrix is never built:
`dlx.nn.attention.blockwise_local_attention` scores each block of `window` queries
against its own and the previous block's keys, (B, H, T/w, w, 2w) scores instead of
(B, H, T, T). This script trains the same small character GPT on the Shakespeare plays
twice per context length, `GPT(attention_window=None)` and `GPT(attention_window=w)`,
from the same initial weights on the same batches, and reports per context:

  * the median train-step time (dlx's generic step, `make_train_step`, jitted, state
    donated; the first, compiling step and `--warmup` steps are not timed; the clock is
    read after `jax.block_until_ready`; batches are on the device before the clock starts),
  * the training loss (mean of the last 10 steps) and the validation loss (nats per
    character on fixed held-out windows) after the same `--steps` steps,
  * speed-up = full ms / blockwise ms and loss gap = blockwise / full - 1.

  python benchmarks/local_attention.py [--contexts 1024,2048] [--window 128] [--steps 150]
      [--json FILE] [--tiny]

`--tiny` (contexts 32 and 48, window 8, one layer 16 wide, 3 steps) runs in seconds for
the tests; its numbers mean nothing.
"""

import argparse
import statistics
import sys
import time

import _common
import jax
import jax.numpy as jnp
import numpy as np

from dlx import train
from dlx.data import text
from dlx.models import gpt
from dlx.tasks import language_model as lm
from dlx.training import optim
from dlx.training import steps as steps_lib

SEED = 0


def _optimizer(total_steps):
  """The character GPT's recipe (nanoGPT's CPU example): AdamW, warmup + cosine, clip 1."""
  config = lm.language_model_config().optimizer
  config.warmup_steps = max(1, min(100, total_steps // 10))
  return optim.create_optimizer(config, total_steps=total_steps)


def _train(args, context, window, data):
  """Trains one model; returns step times, losses and the validation loss."""
  model = gpt.GPT(
    vocab_size=data["vocab_size"],
    max_length=context,
    num_layers=args.layers,
    num_heads=args.heads,
    features=args.features,
    attention_window=window,
  )
  optimizer = _optimizer(args.steps)
  train_inputs, train_targets = data["train"]
  init_fn = train.create_init_fn(model, optimizer, jnp.asarray(train_inputs[:1]), SEED)
  state = jax.jit(init_fn)(jax.random.PRNGKey(SEED))
  train_step = jax.jit(
    steps_lib.make_train_step(model, optimizer, lm.language_model_loss), donate_argnums=0
  )
  order = np.random.default_rng(SEED).integers(0, len(train_inputs), (args.steps, args.batch_size))
  times_ms, losses, first_ms = [], [], None
  for step, rows in enumerate(order):
    batch = jax.device_put({"inputs": train_inputs[rows], "targets": train_targets[rows]})
    jax.block_until_ready(batch)
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(train_step(state, batch))
    elapsed = (time.perf_counter() - start) * 1e3
    if step == 0:
      first_ms = elapsed  # compiles
    elif step > args.warmup:
      times_ms.append(elapsed)
    losses.append(float(metrics["loss"]))

  @jax.jit
  def eval_loss(params, inputs, targets):
    logits = model.apply({"params": params}, inputs)
    return jnp.mean(lm.language_model_loss(logits, {"targets": targets})["loss"])

  val_inputs, val_targets = data["validation"]
  val = [
    float(
      eval_loss(
        state.params, val_inputs[i : i + args.batch_size], val_targets[i : i + args.batch_size]
      )
    )
    for i in range(0, len(val_inputs), args.batch_size)
  ]
  return {
    "context": context,
    "attention": "full" if window is None else f"blockwise window {window}",
    "window": window,
    "median_ms": statistics.median(times_ms) if times_ms else None,
    "min_ms": min(times_ms) if times_ms else None,
    "steps_timed": len(times_ms),
    "first_call_ms": first_ms,
    "train_loss_last10": float(np.mean(losses[-10:])),
    "validation_loss": float(np.mean(val)),
    "num_params": _common.count_params(state.params),
  }


def _data(context, args):
  """Train windows and fixed, evenly spaced validation windows of `context` characters."""
  dataset, _ = text.shakespeare_char(context, train_stride=context)
  val = dataset.validation
  pick = np.linspace(0, len(val["inputs"]) - 1, args.eval_batches * args.batch_size).astype(int)
  return {
    "vocab_size": dataset.info["vocab_size"],
    "train": (np.asarray(dataset.train["inputs"]), np.asarray(dataset.train["targets"])),
    "validation": (np.asarray(val["inputs"])[pick], np.asarray(val["targets"])[pick]),
  }


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--contexts", default="1024,2048", help="comma-separated lengths")
  parser.add_argument("--window", type=int, default=128)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--features", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=2)
  parser.add_argument("--steps", type=int, default=150, help="train steps per model")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
  parser.add_argument("--eval_batches", type=int, default=8, help="validation batches")
  parser.add_argument("--only", choices=("both", "full", "blockwise"), default="both")
  parser.add_argument("--tiny", action="store_true", help="a tiny run (tests)")
  parser.add_argument("--json", default=None, help="write the rows to this JSON file")
  args = parser.parse_args(argv)
  if args.tiny:
    args.contexts, args.window, args.layers, args.heads, args.features = "32,48", 8, 1, 2, 16
    args.batch_size, args.steps, args.warmup, args.eval_batches = 2, 3, 0, 1
  return args


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  if args.tiny:
    _common.fast_cpu_compile()
  env = _common.environment()
  print(
    f"# {env['processor']}, {env['available_cores']} cores, jax {env['jax']} ({env['jax_backend']})"
  )
  modes = {"both": (None, args.window), "full": (None,), "blockwise": (args.window,)}[args.only]
  rows = []
  for context in [int(c) for c in args.contexts.split(",")]:
    data = _data(context, args)
    per_context = []
    for window in modes:
      began = time.perf_counter()
      row = _train(args, context, window, data)
      row["wall_s"] = time.perf_counter() - began
      row.update(layers=args.layers, heads=args.heads, features=args.features)
      row.update(batch_size=args.batch_size, steps=args.steps)
      per_context.append(row)
      print(
        f"context {context:5d} {row['attention']:>22}: {row['median_ms']:.1f} ms/step (median of "
        f"{row['steps_timed']}), train loss {row['train_loss_last10']:.4f}, validation loss "
        f"{row['validation_loss']:.4f}, {row['wall_s']:.0f} s",
        flush=True,
      )
    if len(per_context) == 2 and per_context[1]["median_ms"]:
      full, local = per_context
      local["speedup"] = full["median_ms"] / local["median_ms"]
      local["validation_loss_gap"] = local["validation_loss"] / full["validation_loss"] - 1
      local["train_loss_gap"] = local["train_loss_last10"] / full["train_loss_last10"] - 1
      print(
        f"context {context}: speed-up {local['speedup']:.2f}x, validation loss gap "
        f"{100 * local['validation_loss_gap']:+.2f}%, train loss gap "
        f"{100 * local['train_loss_gap']:+.2f}%"
      )
    rows.extend(per_context)
  for row in rows:
    row["environment"] = env
  if args.json:
    _common.write_json(args.json, rows)
  return rows


if __name__ == "__main__":
  main()
