"""GAN training (dlx/tasks/adversarial.py, docs/curriculum.md#f19, #b9): the saturating
generator loss's vanishing gradient against its closed form, the DCGAN step, weight
clipping and the skipped gradient penalty."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlx import config as config_lib
from dlx import errors
from dlx import losses
from dlx import train
from dlx.tasks import adversarial
from dlx.training import optim


def test_saturating_generator_gradient_vanishes_where_the_non_saturating_does_not():
  """D(x) = sigmoid(w.x + b) rejecting the fake x with confidence (D ~ 3e-4):
  d/dx log(1 - D) = -D w (vanishes), d/dx -log D = -(1 - D) w (does not)."""
  w = jnp.array([0.5, -2.0, 1.5])
  b = -3.0
  x = jnp.array([-2.0, 1.0, -1.0])  # w.x + b = -8
  d = jax.nn.sigmoid(w @ x + b)
  assert 1e-4 < float(d) < 1e-3

  def grad(non_saturating):
    loss = lambda x: losses.gan_generator_loss(w @ x + b, non_saturating=non_saturating)
    return np.asarray(jax.grad(loss)(x))

  saturating, non_saturating = grad(False), grad(True)
  np.testing.assert_allclose(saturating, -float(d) * np.asarray(w), rtol=1e-5)
  np.testing.assert_allclose(non_saturating, -(1.0 - float(d)) * np.asarray(w), rtol=1e-5)
  norm_w = float(jnp.linalg.norm(w))
  assert np.linalg.norm(saturating) < 1e-3 * norm_w
  assert np.linalg.norm(non_saturating) == pytest.approx(norm_w, rel=1e-3)


def _jit(fn):
  # XLA's optimisation level 0, as in :smoke runs: compiling is most of these tests.
  return jax.jit(fn, compiler_options=config_lib.compiler_options(True))


def _config(**fields):
  config = ml_collections.ConfigDict(dict(optimizer=optim.default_config()))
  config.update(fields)
  return config


def _images(n):
  return np.random.default_rng(0).uniform(-1, 1, (n, 28, 28, 1)).astype(np.float32)


def _init(model, optimizer, x, concrete=True):
  """The initial TrainState (compiled, as the trainer does), or only its shapes."""
  init = train.create_init_fn(model, optimizer, x[:2], 0)
  return (
    _jit(init)(jax.random.PRNGKey(0)) if concrete else jax.eval_shape(init, jax.random.PRNGKey(0))
  )


# Dense players with the steps' interface (generate, score, latent_dim): the steps'
# logic at a fraction of the convolutional models' compile time (the real models train
# in the experiments' smoke tests).


class _Generator(nn.Module):
  batch_norm: bool

  @nn.compact
  def __call__(self, z, train=False):
    h = nn.Dense(8)(z)
    if self.batch_norm:
      h = nn.BatchNorm(use_running_average=not train)(h)
    return jnp.tanh(nn.Dense(28 * 28)(nn.relu(h))).reshape((-1, 28, 28, 1))


class _Scorer(nn.Module):
  batch_norm: bool

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.Dense(8)(x.reshape((x.shape[0], -1)))
    h = nn.BatchNorm(use_running_average=not train)(h) if self.batch_norm else nn.LayerNorm()(h)
    return nn.Dense(1)(nn.leaky_relu(h, 0.2))[:, 0]


class _TinyDCGAN(nn.Module):
  latent_dim: int = 4

  def setup(self):
    self.generator = _Generator(batch_norm=True)
    self.discriminator = _Scorer(batch_norm=True)

  def generate(self, z, train=False):
    return self.generator(z, train)

  def score(self, x, train=False):
    return self.discriminator(x, train)

  def __call__(self, x, train=False):
    return self.score(self.generate(x[:, 0, :4, 0], train), train)


class _TinyWGAN(nn.Module):
  latent_dim: int = 4

  def setup(self):
    self.generator = _Generator(batch_norm=False)
    self.critic = _Scorer(batch_norm=False)

  def generate(self, z, train=False):
    return self.generator(z)

  def score(self, x, train=False):
    return self.critic(x)

  def __call__(self, x, train=False):
    return self.score(self.generate(x[:, 0, :4, 0]))


@pytest.fixture(scope="module")
def dcgan():
  """A tiny DCGAN, its config, optimizers and initial state (shared: compiling is the
  cost)."""
  model = _TinyDCGAN()
  config = _config(generator_loss="non_saturating")
  optimizer = adversarial.make_dcgan_optimizers(config, 10)
  return model, config, optimizer, _init(model, optimizer, _images(2))


def test_dcgan_step_trains_both_players_and_logs_the_generator_gradient(dcgan):
  model, config, optimizer, state = dcgan
  new_state, metrics = _jit(adversarial.make_dcgan_step(model, optimizer, config))(
    state, {"inputs": _images(4)}
  )
  state, new_state, metrics = jax.device_get((state, new_state, metrics))
  for player in ("generator", "discriminator"):
    before, after = state.params[player], new_state.params[player]
    moved = [
      np.abs(np.asarray(a) - np.asarray(b)).max()
      for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))
    ]
    assert max(moved) > 0, f"{player} did not train"
    # Batch norm's running statistics follow both players' batches.
    stats_before = jax.tree.leaves(state.model_state["batch_stats"][player])
    stats_after = jax.tree.leaves(new_state.model_state["batch_stats"][player])
    assert any(not np.allclose(a, b) for a, b in zip(stats_after, stats_before)), player
  assert int(new_state.step) == 1
  for name in ("loss", "generator_loss", "generator_grad_norm", "real_prob", "fake_prob"):
    assert np.isfinite(float(metrics[name])), name
  assert float(metrics["generator_grad_norm"]) > 0
  # The minimax loss at the start: about 2 log 2 for a discriminator that cannot tell.
  assert 0.5 < float(metrics["loss"]) < 3.0


def test_unknown_generator_loss_is_a_config_error():
  model = _TinyDCGAN()
  with pytest.raises(errors.ConfigError, match="generator_loss"):
    adversarial.make_dcgan_step(model, {}, _config(generator_loss="hinge"))


def _wgan(penalty_weight, weight_clip, concrete=True):
  model = _TinyWGAN()
  config = _config(critic_steps=2, gradient_penalty_weight=penalty_weight, weight_clip=weight_clip)
  optimizer = adversarial.make_optimizers(config, 10)
  state = _init(model, optimizer, _images(2), concrete)
  return adversarial.make_wgan_gp_step(model, optimizer, config), state, {"inputs": _images(4)}


def _filled(shapes, seed=0):
  """A concrete state from its shapes without compiling `init`: parameters uniform in
  [-0.5, 0.5] (far outside a 0.01 clip), everything else (optimizer moments and counts,
  step, rng key) zero."""
  rng = np.random.default_rng(seed)
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  params = jax.tree.map(lambda s: rng.uniform(-0.5, 0.5, s.shape).astype(s.dtype), shapes.params)
  return zeros.replace(params=params)


def test_weight_clipping_keeps_every_critic_weight_in_range():
  step, shapes, batch = _wgan(0.0, 0.01, concrete=False)
  state = _filled(shapes)
  state, metrics = jax.device_get(_jit(step)(state, batch))
  leaves = jax.tree.leaves(state.params["critic"])
  assert len(leaves) == 6  # two dense layers, LayerNorm's scale and bias
  for leaf in leaves:
    assert np.abs(np.asarray(leaf)).max() <= 0.01
  assert np.isfinite(float(metrics["wasserstein"]))


@pytest.mark.parametrize("weight, calls", [(0.0, 0), (10.0, 1)])
def test_gradient_penalty_is_computed_only_when_weighted(monkeypatch, weight, calls):
  traced, penalty = [], losses.gradient_penalty

  def counting_penalty(*args):
    traced.append(1)
    return penalty(*args)

  monkeypatch.setattr(losses, "gradient_penalty", counting_penalty)
  step, state, batch = _wgan(weight, 0.0, concrete=False)
  _, metrics = jax.eval_shape(step, state, batch)
  assert len(traced) == calls  # traced once inside the critic steps' scan, or never
  assert ("gradient_penalty" in metrics) == bool(calls)


def test_samples_are_mapped_to_the_unit_interval(dcgan):
  model, _, _, state = dcgan
  config = ml_collections.ConfigDict(dict(model=dict(latent_dim=4), seed=0, fast_compile=True))
  ctx = types.SimpleNamespace(model=model, variables=state.variables(), config=config)
  images = adversarial.sample(ctx, 5, jax.random.PRNGKey(2))
  assert images.shape == (5, 28, 28, 1)
  assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0
