"""Times dlx's oneDNN convolutions (dlx/kernels, docs/cpu_kernels.md) against XLA's, forward +
backward (the gradients of both the input and the kernel), in one process: LeNet-5's two
convolutions, a ResNet-18 3x3 convolution, a depthwise 3x3 (also against dlx's own
shifted-sum kernel, `dlx.nn.conv.depthwise_conv2d`) and a 1-D convolution.

Compilation is excluded (one warm-up call); each call is clocked after
`block_until_ready`; the table reports medians. Needs the extension built
(`python -m dlx.kernels.onednn`).

  .venv/bin/python benchmarks/onednn_conv.py [--repeats 20] [--batch_size 64]
"""

import argparse
import sys

import cpu_kernels  # the same clock: median of block_until_ready'd calls
import jax
from jax import lax
import jax.numpy as jnp

from dlx.kernels import conv as kernels_conv
from dlx.kernels import onednn
from dlx.kernels import route
from dlx.nn import conv as nn_conv

SPECS = {3: ("NWC", "WIO", "NWC"), 4: ("NHWC", "HWIO", "NHWC")}
# name, input shape without the batch, kernel shape, strides, padding, groups
SHAPES = (
  ("LeNet-5 conv1 5x5, 32x32x1 -> 6", (32, 32, 1), (5, 5, 1, 6), (1, 1), "VALID", 1),
  ("LeNet-5 conv2 5x5, 14x14x6 -> 16", (14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID", 1),
  ("ResNet-18 3x3, 16x16x128 -> 128", (16, 16, 128), (3, 3, 128, 128), (1, 1), "SAME", 1),
  ("depthwise 3x3, 14x14x48", (14, 14, 48), (3, 3, 1, 48), (1, 1), "SAME", 48),
  ("1-D k5, 128x64 -> 64", (128, 64), (5, 64, 64), (1,), "SAME", 1),
)


def forward_backward(conv_fn, strides, padding, groups):
  def loss(x, w):
    spec = SPECS[x.ndim]
    y = conv_fn(x, w, strides, padding, dimension_numbers=spec, feature_group_count=groups)
    return jnp.sum(y**2)

  return jax.jit(jax.grad(loss, argnums=(0, 1)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--batch_size", type=int, default=64)
  args = parser.parse_args()
  if onednn.load() is None:
    sys.exit(f"dlx's oneDNN extension is {onednn.missing()}")
  print(
    f"oneDNN {onednn.version()}, {onednn.default_threads()} threads; batch {args.batch_size}; "
    f"fwd+bwd medians of {args.repeats}"
  )
  rng = jax.random.PRNGKey(0)
  rows = []
  for name, shape, kernel_shape, strides, padding, groups in SHAPES:
    x = jax.random.normal(rng, (args.batch_size, *shape))
    w = jax.random.normal(rng, kernel_shape)
    xla = cpu_kernels.median_ms(
      forward_backward(lax.conv_general_dilated, strides, padding, groups), (x, w), args.repeats
    )
    with route.use("onednn"):  # traced (at the warm-up call) on oneDNN
      ours = cpu_kernels.median_ms(
        forward_backward(kernels_conv.conv_general_dilated, strides, padding, groups),
        (x, w),
        args.repeats,
      )
    rows.append((name, ours, xla))
    if groups > 1 and groups == shape[-1] and len(shape) == 3:
      shifted = jax.jit(
        jax.grad(lambda x, w: jnp.sum(nn_conv.depthwise_conv2d(x, w) ** 2), argnums=(0, 1))
      )
      rows.append(
        (
          "  same, dlx's shifted-sum kernel",
          cpu_kernels.median_ms(shifted, (x, w), args.repeats),
          xla,
        )
      )
  print(f"{'convolution':40s} {'oneDNN ms':>10s} {'XLA ms':>10s} {'XLA/oneDNN':>11s}")
  for name, ours, xla in rows:
    print(f"{name:40s} {ours:10.2f} {xla:10.2f} {xla / ours:10.2f}x")


if __name__ == "__main__":
  main()
