"""Dropout is inverted (docs/curriculum.md#d1): in training each unit is zeroed with
probability p and the survivors are scaled by 1 / (1 - p), so the expected training
activation equals the evaluation activation and evaluation uses the network unchanged.

Every dlx model with dropout uses Flax's `nn.Dropout` (rng stream 'dropout'), so the layer
is tested directly and through `dlx.models.mlp.MLP`, whose last layer is linear after the
dropout, so its expected training output is its evaluation output.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import mlp


def _key(seed):
  # 'rbg' keys: threefry kernels are slow to compile on this CPU.
  return jax.random.key(seed, impl="rbg")


def _apply_dropout(rate, x, key, train=True):
  return nn.Dropout(rate).apply({}, x, deterministic=not train, rngs={"dropout": key})


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_scales_survivors_by_one_over_keep(rate):
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, (1000, 1000)), jnp.float32)
  out = np.asarray(jax.jit(_apply_dropout, static_argnums=0)(rate, x, _key(1)))
  x = np.asarray(x)
  kept = out != 0  # x is never 0, so a 0 output is a dropped unit
  np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-6)
  assert np.all(out[~kept] == 0)
  # Binomial(10^6, p) / 10^6 has sd <= 5e-4.
  assert (~kept).mean() == pytest.approx(rate, abs=0.0025)


def test_mean_training_activation_equals_the_evaluation_activation():
  rate, draws = 0.4, 20_000
  x = jnp.asarray(np.random.default_rng(1).normal(size=(16,)), jnp.float32)
  out = np.asarray(_apply_dropout(rate, jnp.broadcast_to(x, (draws, 16)), _key(2)))
  x = np.asarray(x)
  np.testing.assert_array_equal(_apply_dropout(rate, x, _key(2), train=False), x)
  # Each unit is x / (1 - p) with probability 1 - p: sd |x| sqrt(p / (1 - p)) per draw.
  standard_error = np.abs(x) * np.sqrt(rate / (1 - rate)) / np.sqrt(draws)
  assert np.all(np.abs(out.mean(0) - x) < 5 * standard_error)


def test_rate_zero_is_the_identity_and_rate_one_gives_zeros():
  x = jnp.arange(1.0, 7.0)
  np.testing.assert_array_equal(_apply_dropout(0.0, x, _key(3)), x)
  np.testing.assert_array_equal(_apply_dropout(1.0, x, _key(3)), 0.0)


def test_mlp_expected_training_output_is_its_evaluation_output():
  model = mlp.MLP(hidden=(32,), num_outputs=3, dropout_rate=0.3)
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5)), jnp.float32)
  params = model.init(_key(4), x)
  evaluation = np.asarray(model.apply(params, x, train=False))
  train_fn = jax.jit(
    jax.vmap(lambda key: model.apply(params, x, train=True, rngs={"dropout": key}))
  )
  train = np.asarray(train_fn(jax.random.split(_key(5), 5000)))  # (5000, 2, 3)
  assert train.std(0).min() > 0.01  # dropout is on in training
  standard_error = train.std(0) / np.sqrt(train.shape[0])
  assert np.all(np.abs(train.mean(0) - evaluation) < 5 * standard_error)
