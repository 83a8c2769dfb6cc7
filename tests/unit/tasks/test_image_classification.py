"""The image-classification experiments' `:full` variants: the original architectures
at 224x224x3 (dlx/tasks/image_classification.py resizes the 28x28 input on the device)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import config as config_lib
from dlx import experiment
from dlx import train
from dlx.tasks import image_classification as ic
from dlx.tools import model_stats
from tests import conftest

# At 1000 classes each must have the published parameter count (GoogLeNet: with its two
# auxiliary heads).
FULL_SCALE_PARAMS = {
  "alexnet_fashion_mnist": 62_378_344,
  "vgg_fashion_mnist": 138_357_544,  # VGG-16
  "googlenet_fashion_mnist": 13_004_888,  # 6,624,904 without the auxiliary heads
  "resnet_fashion_mnist": 11_689_512,  # ResNet-18
  "densenet_fashion_mnist": 7_978_856,  # DenseNet-121
  "mobilenet_fashion_mnist": 4_231_976,
}


def _full_config(name, **overrides):
  exp = experiment.load(name)
  return exp, config_lib.override(exp.config(ic.FULL), **overrides)


@pytest.mark.parametrize("name", sorted(FULL_SCALE_PARAMS))
def test_full_variant_is_the_original_architecture(name):
  exp, config = _full_config(name, num_classes=1000)
  assert config.resize_to == 224 and config.model.num_classes == 1000
  model = exp.get_model(config)
  # Grey 28x28 Fashion-MNIST goes in; the wrapper makes it 224x224x3 on the device.
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  )
  assert model_stats.count_params(shapes) == FULL_SCALE_PARAMS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FULL_SCALE_PARAMS))
def test_full_variant_trains_one_step_on_cpu(name, tmp_path, data_dir):
  exp, config = _full_config(
    name,
    num_train_steps=1,
    log_every_steps=1,
    eval_every_steps=1,
    checkpoint_every_steps=1,
    batch_size=2,
    eval_batch_size=2,
    eval_examples=2,
    train_eval_examples=2,
  )
  config.optimizer.warmup_steps = 0
  results = train.train_and_evaluate(config, str(tmp_path), data_dir=data_dir, experiment=exp)
  for split in ("test", "validation", "train"):
    conftest.assert_finite(results[split])


def test_unknown_argument_names_the_valid_ones():
  with pytest.raises(ValueError, match=":full or :resnet34 or :resnet50 or :smoke"):
    experiment.load("resnet_fashion_mnist").config("fulll")


class _TwoConvs(nn.Module):
  """Execution order (z_first, then a_second) opposite to the parameters' sorted order."""

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Conv(3, (3, 3), padding="SAME", name="z_first")(x)
    return nn.Conv(2, (3, 3), padding="SAME", name="a_second")(nn.relu(x))


def test_first_conv_is_the_first_to_run_and_its_maps_are_its_output():
  model = _TwoConvs()
  image = np.random.default_rng(0).normal(size=(8, 8, 1)).astype(np.float32)
  variables = model.init(jax.random.PRNGKey(0), image[None])
  kernel, maps = ic.first_conv(model, variables, image)
  first = variables["params"]["z_first"]
  np.testing.assert_array_equal(kernel, first["kernel"])
  expected = nn.Conv(3, (3, 3), padding="SAME").apply({"params": first}, image[None])[0]
  np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
  assert maps.shape == (8, 8, 3)
