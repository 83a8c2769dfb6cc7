"""Times evaluation-mode inference of a batch in float32 and in int8 (docs/curriculum.md#g3).

The same model and weights run twice, both jitted: the float forward pass
(`model.apply(..., train=False)`) and `dlx.ops.quantization.int8_apply`, where every
Dense / Conv quantizes its input to int8 and multiplies int8 by int8 with int32
accumulation (per-channel weight scales, min/max calibration on the batch itself).
Models: LeNet-5 (`lenet5_mnist`'s) on (B, 32, 32, 1) and the zoo's VGG-11 at 1/4 width
(`vgg_fashion_mnist`'s) on (B, 28, 28, 1). With `--init_from=NAME=WORKDIR` the weights come
from a finished run; otherwise from the model's initialisation (the time does not
depend on the values).

Compilation and warm-up are excluded; the clock is read after `block_until_ready`; the
table gives medians over `--repeats` calls and the ratio float / int8 (> 1: int8 is
faster). Whether int8 is faster depends on the backend: XLA's CPU backend has no
vectorised int8 dot or convolution, so on this CPU the integer path mostly shows the
cost of emulating it; on GPUs and TPUs int8 matmuls run on dedicated units.

  .venv/bin/python benchmarks/int8_inference.py [--repeats 50] [--batch_size 256]
      [--models lenet5_mnist,vgg_fashion_mnist] [--init_from lenet5_mnist=runs/lenet5_mnist]
      [--out results.json]
"""

import argparse
import functools
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlx import experiment
from dlx.ops import quantization
from dlx.training import warm_start

MODELS = ("lenet5_mnist", "vgg_fashion_mnist")
INPUT_SHAPES = {"lenet5_mnist": (32, 32, 1), "vgg_fashion_mnist": (28, 28, 1)}
SEED = 0


def _time_calls(fn, warmup, repeats):
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append((time.perf_counter() - start) * 1e3)
  return times


def _variables(name, model, inputs, init_from):
  if name in init_from:
    frozen = warm_start.load_frozen(init_from[name], field="init_from")
    return jax.tree.map(jnp.asarray, frozen.variables)
  return model.init(jax.random.PRNGKey(SEED), inputs[:1], train=False)


def bench(name, args, init_from):
  exp = experiment.load(name)
  model = exp.get_model(exp.config())
  rng = np.random.default_rng(SEED)
  inputs = jnp.asarray(rng.random((args.batch_size, *INPUT_SHAPES[name]), np.float32))
  variables = _variables(name, model, inputs, init_from)
  quantized = quantization.quantize_model(model, variables, inputs, per_channel=True)
  float_fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
  int8_fn = jax.jit(functools.partial(quantization.int8_apply, model, quantized=quantized))
  float_ms = _time_calls(lambda: float_fn(variables, inputs), args.warmup, args.repeats)
  int8_ms = _time_calls(lambda: int8_fn(variables, inputs=inputs), args.warmup, args.repeats)
  agree = float(
    jnp.mean(
      jnp.argmax(float_fn(variables, inputs), -1)
      == jnp.argmax(int8_fn(variables, inputs=inputs), -1)
    )
  )
  row = {
    "model": name,
    "batch_size": args.batch_size,
    "float32_ms": statistics.median(float_ms),
    "int8_ms": statistics.median(int8_ms),
    "top1_agreement": agree,
    "float_bytes": quantization.float_bytes(variables),
    "int8_bytes": quantization.int8_bytes(variables, quantized),
    "weights": "trained" if name in init_from else "initialisation",
  }
  row["ratio"] = row["float32_ms"] / row["int8_ms"]
  return row


def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument(
    "--init_from", default="", help="NAME=WORKDIR[,NAME=WORKDIR]: weights of finished runs"
  )
  parser.add_argument("--out", default="", help="also write the rows as JSON here")
  return parser.parse_args(argv)


def main(argv=None):
  args = _parse_args(argv)
  init_from = dict(pair.split("=", 1) for pair in args.init_from.split(",") if pair)
  names = [n for n in args.models.split(",") if n]
  unknown = sorted(set(names) - set(MODELS))
  if unknown:
    raise SystemExit(f"int8_inference.py: unknown model(s) {unknown}; choose from {MODELS}")
  rows = [bench(name, args, init_from) for name in names]
  print(f"{platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.devices()}")
  print(
    "| model | batch | float32 ms | int8 ms | float / int8 | top-1 agreement | bytes f32 -> int8 |"
  )
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['model']} ({r['weights']}) | {r['batch_size']} | {r['float32_ms']:.2f} | "
      f"{r['int8_ms']:.2f} | {r['ratio']:.2f}x | {r['top1_agreement']:.4f} | "
      f"{r['float_bytes']:,} -> {r['int8_bytes']:,} |"
    )
  if args.out:
    with open(args.out, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
