"""SRResNet / SRGAN (dlx/models/srgan.py) and the super-resolution task
(dlx/tasks/super_resolution/): pixel shuffle against torch, the degradation and the
bicubic baseline against PIL, parameter trees an SRGAN run can start from, the
perceptual features against dlx.ops.fid's, and the content-loss choice."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
import pytest
import torch

from dlx import errors
from dlx.models import lenet
from dlx.models import srgan
from dlx.ops import fid
from dlx.tasks.super_resolution import common as sr
from dlx.tasks.super_resolution import srgan as srgan_task


@pytest.mark.parametrize("factor,channels", [(2, 3), (3, 2)])
def test_pixel_shuffle_matches_torch(factor, channels):
  x = np.random.default_rng(0).standard_normal((2, 3, 4, channels * factor**2), np.float32)
  ours = np.asarray(srgan.pixel_shuffle(jnp.asarray(x), factor))
  # torch reads NCHW: move the channels in, shuffle, move them back out.
  theirs = torch.nn.functional.pixel_shuffle(torch.from_numpy(x).permute(0, 3, 1, 2), factor)
  np.testing.assert_array_equal(ours, theirs.permute(0, 2, 3, 1).numpy())
  assert ours.shape == (2, 3 * factor, 4 * factor, channels)


def test_pixel_shuffle_rejects_channels_that_do_not_divide():
  with pytest.raises(ValueError, match="do not divide"):
    srgan.pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)


def _shapes(model, x):
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  return jax.tree.map(lambda v: v.shape, variables["params"])


def test_shapes_and_an_srgan_starts_from_an_srresnet_run():
  x = jnp.zeros((2, 7, 7, 1))
  small = dict(features=8, num_blocks=2, scale=4)
  out = jax.eval_shape(lambda: srgan.SRResNet(**small).init_with_output(jax.random.key(0), x)[0])
  assert out.shape == (2, 28, 28, 1)
  gan = srgan.SRGAN(**small, disc_features=4, disc_dense=8)
  params = _shapes(gan, x)
  assert set(params) == {"generator", "discriminator"}
  # What init_from_keys='generator' grafts: the same tree, the same shapes.
  assert _shapes(srgan.Upscaler(**small), x)["generator"] == params["generator"]
  logits = jax.eval_shape(
    lambda: srgan.Discriminator(4, dense=8).init_with_output(
      jax.random.key(0), jnp.zeros((3, 28, 28, 1))
    )[0]
  )
  assert logits.shape == (3,)


def test_srresnet_upscales_by_powers_of_two_only():
  with pytest.raises(ValueError, match="power of 2"):
    srgan.SRResNet(features=4, num_blocks=1, scale=3).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 7, 7, 1))
    )


def test_area_downsample_is_pils_box_filter():
  x = np.random.default_rng(1).random((2, 28, 28, 1)).astype(np.float32)
  ours = sr.area_downsample(x, 4)
  for i in range(2):
    box = Image.fromarray(x[i, ..., 0], mode="F").resize((7, 7), Image.BOX)
    np.testing.assert_allclose(ours[i, ..., 0], np.asarray(box), atol=1e-6)
  with pytest.raises(errors.ConfigError, match="cannot area-downsample"):
    sr.area_downsample(np.zeros((1, 30, 28, 1)), 4)


def test_bicubic_is_pils_and_not_torchs():
  x = np.random.default_rng(2).random((1, 7, 7, 1)).astype(np.float32)
  ours = np.asarray(sr.bicubic(x, 4))[0, ..., 0]
  pil = np.asarray(Image.fromarray(x[0, ..., 0], mode="F").resize((28, 28), Image.BICUBIC))
  np.testing.assert_allclose(ours, pil, atol=1e-6)
  # torch's bicubic uses Keys' a = -0.75 (PIL and jax: -0.5): a different baseline.
  t = torch.nn.functional.interpolate(
    torch.from_numpy(x).permute(0, 3, 1, 2), scale_factor=4, mode="bicubic"
  )
  assert np.abs(ours - t[0, 0].numpy()).max() > 0.01


def test_penultimate_features_are_fids():
  model = lenet.LeNet5()
  # Random weights of LeNet-5's shapes, drawn in NumPy: XLA:CPU takes seconds to compile
  # LeNet-5's init.
  rng = np.random.default_rng(3)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
  variables = jax.tree.map(lambda s: 0.3 * rng.standard_normal(s.shape, np.float32), shapes)
  images = rng.random((4, 28, 28, 1)).astype(np.float32)
  ours = jax.jit(srgan_task.penultimate_features, static_argnums=0)(model, variables, images)
  theirs, _ = fid.classifier_outputs(model, variables, fid.lenet_inputs(images))
  assert ours.shape == (4, 84)
  np.testing.assert_allclose(ours, theirs, atol=1e-6)


def _content_config(content_loss="perceptual", smoke=False, classifier=""):
  return ml_collections.ConfigDict(
    {"content_loss": content_loss, "smoke": smoke, "fid_classifier": classifier}
  )


def test_content_loss_choice():
  assert srgan_task.perceptual_network(_content_config("pixel"))[0] is None
  network, why = srgan_task.perceptual_network(_content_config(smoke=True))
  assert network is None and "smoke" in why
  with pytest.raises(errors.ConfigError, match="fid_classifier=runs/lenet5_mnist"):
    srgan_task.perceptual_network(_content_config())
  with pytest.raises(errors.ConfigError, match="choose one of"):
    srgan_task.perceptual_network(_content_config("vgg"))
