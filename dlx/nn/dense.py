"""`Dense`: flax's nn.Dense (same class, names and parameters) with its product routed
through dlx.kernels.matmul: oneDNN's sgemm on the XLA thread pool when the trainer's
`--config.cpu_kernels` route is oneDNN (docs/cpu_kernels.md), XLA's dot otherwise. dlx's
layers and models build their dense layers with it."""

import functools

import flax.linen as nn

from dlx.kernels import matmul as kernels_matmul

Dense = functools.partial(nn.Dense, dot_general=kernels_matmul.dot_general)
