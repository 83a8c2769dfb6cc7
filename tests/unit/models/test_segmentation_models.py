"""Tests for the segmentation models: FCN-32s/16s/8s (dlx/models/fcn.py) and the
segmentation U-Net (dlx/models/unet.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.models import fcn
from dlx.models import unet
from dlx.nn import conv

SMALL_FCN = dict(features=(4, 4, 8, 8, 8), convs_per_stage=1, head_features=8)

FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _apply(model, x, train=False):
  """(variables, outputs); jitted, as op-by-op dispatch would dominate the test's time,
  at XLA's lowest optimisation level (compiling dominates, and shapes are what is tested)."""
  jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  variables = jit(model.init)(jax.random.PRNGKey(0), x)
  if train:
    out, _ = jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    return variables, out
  return variables, jit(model.apply)(variables, x)


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_fcn_variants_output_per_pixel_logits(variant):
  x = jnp.ones((2, 32, 64, 1))
  model = fcn.FCN(num_classes=5, variant=variant, **SMALL_FCN)
  variables, out = _apply(model, x, train=True)
  assert out.shape == (2, 32, 64, 5)
  skips = {"32s": set(), "16s": {"score_pool4"}, "8s": {"score_pool4", "score_pool3"}}[variant]
  assert {k for k in variables["params"] if k.startswith("score_pool")} == skips


def test_fcn_skip_scores_start_at_zero_and_change_the_output():
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 64, 64, 1))
  model = fcn.FCN(num_classes=3, variant="8s", **SMALL_FCN)
  variables, before = _apply(model, x)
  assert not np.asarray(variables["params"]["score_pool3"]["kernel"]).any()
  params = jax.tree.map(lambda v: v, variables["params"])
  params["score_pool3"]["kernel"] = jnp.ones_like(params["score_pool3"]["kernel"])
  after = jax.jit(model.apply)({**variables, "params": params}, x)
  assert float(jnp.abs(after - before).max()) > 1e-3  # the pool3 skip reaches the output


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_bilinear_upsample_is_the_bilinear_transposed_convolution(factor):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 3))
  # Independent path: dlx.nn.conv.ConvTranspose (lax.conv_transpose) with the paper's
  # bilinear kernel, PyTorch's padding f/2.
  deconv = conv.ConvTranspose(
    3, 2 * factor, strides=factor, padding=factor // 2, kernel_init=fcn.bilinear_init
  )
  expected = deconv.apply(deconv.init(jax.random.PRNGKey(1), x), x)
  got = fcn.bilinear_upsample(x, factor)
  assert got.shape == (2, 3 * factor, 4 * factor, 3)
  np.testing.assert_allclose(got, expected, atol=1e-5)
  # Away from the border it is bilinear resizing with half-pixel centres.
  resized = jax.image.resize(x, got.shape, "bilinear")
  inner = (slice(None), slice(factor, -factor), slice(factor, -factor))
  np.testing.assert_allclose(got[inner], resized[inner], atol=1e-5)


def test_bilinear_kernel_matches_the_paper_for_factor_2():
  # upsample_filt(4): taps (1/4, 3/4, 3/4, 1/4).
  np.testing.assert_allclose(fcn.bilinear_kernel(2)[1], 0.75 * np.array([0.25, 0.75, 0.75, 0.25]))


@pytest.mark.parametrize("upsampling", ["transpose", "resize"])
@pytest.mark.parametrize("patch_size", [1, 2])
def test_unet_outputs_per_pixel_logits(upsampling, patch_size):
  x = jnp.ones((2, 32, 48, 1))
  model = unet.SegmentationUNet(
    num_classes=7, features=(4, 8, 8), patch_size=patch_size, upsampling=upsampling
  )
  _, out = _apply(model, x, train=True)
  assert out.shape == (2, 32, 48, 7)


def test_unet_with_patches_predicts_each_pixel_of_a_patch():
  # Depth-to-space, not upsampling: the four pixels of one 2x2 cell get different logits,
  # and each depends on its own input pixel.
  model = unet.SegmentationUNet(num_classes=2, features=(4, 8), patch_size=2)
  x = jax.random.uniform(jax.random.PRNGKey(2), (1, 16, 16, 1))
  variables, out = _apply(model, x)
  corners = [out[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]
  assert all(float(jnp.abs(a - corners[0]).max()) > 1e-3 for a in corners[1:])
  jacobian = jax.jit(jax.jacrev(lambda x: model.apply(variables, x)[0, :, :, 0]))(x)
  for r, c in [(5, 7), (6, 6), (9, 10)]:
    assert jacobian[r, c, 0, r, c, 0] != 0


def test_space_to_depth_by_hand_and_inverse():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  cells = unet.space_to_depth(x, 2)
  assert cells.shape == (1, 2, 2, 4)
  np.testing.assert_array_equal(cells[0, 0, 0], [0, 1, 4, 5])
  np.testing.assert_array_equal(cells[0, 1, 0], [8, 9, 12, 13])
  y = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 4, 3))
  np.testing.assert_array_equal(unet.depth_to_space(unet.space_to_depth(y, 2), 2), y)


def test_bad_inputs_are_config_errors():
  x = jnp.ones((1, 48, 48, 1))
  with pytest.raises(errors.ConfigError, match="variant"):
    fcn.FCN(variant="4s", **SMALL_FCN).init(jax.random.PRNGKey(0), jnp.ones((1, 64, 64, 1)))
  with pytest.raises(errors.ConfigError, match="divisible by 32"):
    fcn.FCN(**SMALL_FCN).init(jax.random.PRNGKey(0), x)
  with pytest.raises(errors.ConfigError, match="divisible by 32"):
    unet.SegmentationUNet(features=(4, 4, 4, 4), patch_size=4).init(jax.random.PRNGKey(0), x)
  with pytest.raises(errors.ConfigError, match="upsampling"):
    unet.SegmentationUNet(upsampling="bicubic").init(jax.random.PRNGKey(0), x)
