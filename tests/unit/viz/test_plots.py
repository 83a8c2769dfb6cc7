"""Vision figures and model helpers (dlx/viz/plots.py), on tiny arrays."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from dlx.viz import plots


class _SmallCnn(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    del train
    x = nn.relu(nn.Conv(4, (3, 3), name="stem")(x))
    x = nn.Conv(6, (3, 3), strides=(2, 2), name="conv2")(x)
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(3, name="a_head")(x)


def _init(model, shape):
  return model.init(jax.random.key(0), jnp.zeros(shape))


def _check_png(path, min_width=20, min_height=20):
  with Image.open(path) as img:
    assert img.format == "PNG"
    assert img.width >= min_width and img.height >= min_height
    return img.size, img.mode


@pytest.mark.parametrize("shape", [(12, 12), (12, 12, 1), (10, 14, 3)])
def test_plot_filtered_images(tmp_path, shape):
  image = np.random.default_rng(0).random(shape).astype(np.float32)
  path = tmp_path / "filtered.png"
  plots.plot_filtered_images(image, path)
  (width, height), _ = _check_png(path, 300, 100)
  assert width > height  # One row of six panels.


def test_plot_first_layer_filters(tmp_path):
  rgb = np.random.default_rng(0).normal(size=(5, 5, 3, 6))
  plots.plot_first_layer_filters(rgb, tmp_path / "rgb.png")
  assert _check_png(tmp_path / "rgb.png")[1] == "RGB"
  grey = np.random.default_rng(1).normal(size=(3, 3, 1, 8))
  plots.plot_first_layer_filters(grey, tmp_path / "grey.png")
  assert _check_png(tmp_path / "grey.png")[1] == "L"
  several = np.random.default_rng(2).normal(size=(3, 3, 2, 4))
  plots.plot_first_layer_filters(several, tmp_path / "several.png", scale=4)
  (width, height), _ = _check_png(tmp_path / "several.png")
  assert height > width  # 4 rows (outputs) of 2 tiles (inputs).
  with pytest.raises(ValueError):
    plots.plot_first_layer_filters(np.zeros((3, 3, 2)), tmp_path / "bad.png")


def test_plot_feature_maps(tmp_path):
  maps = np.random.default_rng(0).random((6, 6, 40))
  plots.plot_feature_maps(maps, tmp_path / "maps.png", max_maps=9, scale=4)
  (width, height), mode = _check_png(tmp_path / "maps.png")
  assert mode == "L"
  # 9 maps -> a 3 x 3 grid of 6x6 tiles with 2-pixel gaps, upscaled 4x.
  assert width == height == 4 * (3 * (6 + 2) + 2)
  plots.plot_feature_maps(maps[None, ..., :3], tmp_path / "batched.png")
  _check_png(tmp_path / "batched.png")


def test_first_conv_kernel_follows_module_order():
  variables = _init(_SmallCnn(), (1, 8, 8, 2))
  kernel = plots.first_conv_kernel(variables)
  # 'stem' is created first, although 'a_head' and 'conv2' sort before it.
  np.testing.assert_array_equal(kernel, variables["params"]["stem"]["kernel"])
  assert kernel.shape == (3, 3, 2, 4)
  assert plots.first_conv_kernel(variables["params"]) is kernel
  with pytest.raises(ValueError):
    plots.first_conv_kernel({"dense": {"kernel": np.zeros((3, 2))}})


def test_feature_maps_shape_and_values():
  model = _SmallCnn()
  variables = _init(model, (1, 8, 8, 2))
  image = np.random.default_rng(0).random((8, 8, 2)).astype(np.float32)
  stem = plots.feature_maps(model, variables, image, "stem", train=False)
  assert stem.shape == (8, 8, 4)
  expected = nn.Conv(4, (3, 3)).apply({"params": variables["params"]["stem"]}, image[None])[0]
  np.testing.assert_allclose(stem, expected, atol=1e-5)
  assert plots.feature_maps(model, variables, image, "conv2").shape == (4, 4, 6)
  with pytest.raises(KeyError, match="stem"):
    plots.feature_maps(model, variables, image, "nope")


def test_nested_layer_name(tmp_path):

  class Outer(nn.Module):
    @nn.compact
    def __call__(self, x):
      return _SmallCnn(name="body")(x)

  model = Outer()
  variables = _init(model, (1, 8, 8, 1))
  maps = plots.feature_maps(model, variables, np.ones((8, 8, 1)), "body/stem")
  assert maps.shape == (8, 8, 4)
  plots.plot_feature_maps(maps, tmp_path / "nested.png")
  _check_png(tmp_path / "nested.png")


def test_rescale_to_unit():
  np.testing.assert_allclose(
    plots.rescale_to_unit([[-2.0, 0.0], [2.0, 6.0]]), [[0.0, 0.25], [0.5, 1.0]]
  )
  np.testing.assert_array_equal(plots.rescale_to_unit(np.full((2, 3), 7.0)), np.full((2, 3), 0.5))
