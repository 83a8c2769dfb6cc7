"""Times the two CPU kernels dlx writes itself against the XLA op they replace, forward +
backward, in one process: the depthwise 3x3 convolution (`dlx.nn.conv.depthwise_conv2d`,
shifted multiply-adds, vs lax.conv_general_dilated with feature_group_count = C) and
AlexNet's local response normalisation (`dlx.nn.normalization.local_response_norm`, a
band-matrix matmul, vs the same sum as `size` shifted slices).

Compilation is excluded (one warm-up call); each call is clocked after
`block_until_ready`; the table reports medians.

  .venv/bin/python benchmarks/cpu_kernels.py [--repeats 50] [--batch_size 128]
"""

import argparse
import statistics
import time

import jax
from jax import lax
import jax.numpy as jnp

from dlx.nn import conv
from dlx.nn import normalization


def grouped_conv(x, kernel, strides):
  return lax.conv_general_dilated(
    x,
    kernel,
    (strides, strides),
    ((1, 1), (1, 1)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=x.shape[-1],
  )


def lrn_by_slices(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
  padded = jnp.pad(jnp.square(x), [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)])
  sums = sum(padded[..., o : o + x.shape[-1]] for o in range(size))
  return x / (k + alpha * sums) ** beta


def median_ms(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def forward_backward(f):
  return jax.jit(jax.grad(lambda *args: jnp.sum(f(*args) ** 2), argnums=(0, 1)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=50)
  parser.add_argument("--batch_size", type=int, default=128)
  args = parser.parse_args()
  rng = jax.random.PRNGKey(0)
  rows = []
  for size, channels, strides in ((14, 48, 1), (14, 48, 2), (7, 96, 1)):
    x = jax.random.normal(rng, (args.batch_size, size, size, channels))
    kernel = jax.random.normal(rng, (3, 3, 1, channels))
    ours = median_ms(
      forward_backward(lambda x, w: conv.depthwise_conv2d(x, w, strides)), (x, kernel), args.repeats
    )
    xla = median_ms(
      forward_backward(lambda x, w: grouped_conv(x, w, strides)), (x, kernel), args.repeats
    )
    rows.append((f"depthwise 3x3/{strides} on {size}x{size}x{channels}", ours, xla))
  for size, channels in ((28, 16), (13, 43)):
    x = jax.random.normal(rng, (args.batch_size, size, size, channels))
    scale = jnp.ones(())
    ours = median_ms(
      forward_backward(lambda x, s: normalization.local_response_norm(x * s)),
      (x, scale),
      args.repeats,
    )
    slices = median_ms(
      forward_backward(lambda x, s: lrn_by_slices(x * s)), (x, scale), args.repeats
    )
    rows.append((f"LRN (n=5) on {size}x{size}x{channels}", ours, slices))
  print(
    f"batch {args.batch_size}, forward + backward, median of {args.repeats}, "
    f"{jax.devices()[0].platform}"
  )
  print(f"{'kernel':40s} {'dlx ms':>8s} {'baseline ms':>12s} {'speed-up':>9s}")
  for name, ours, base in rows:
    print(f"{name:40s} {ours:8.2f} {base:12.2f} {base / ours:8.1f}x")


if __name__ == "__main__":
  main()
