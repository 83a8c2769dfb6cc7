"""Tests for the model files under dlx/models and dlx/nn/embeddings.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models.cnn1d import CNN1D
from dlx.models.gan import WGAN
from dlx.models.gan import Critic
from dlx.models.gan import Generator
from dlx.models.lenet import LeNet5
from dlx.models.mlp import MLP
from dlx.models.mlp import Linear
from dlx.models.unet import UNet
from dlx.models.vae import VAE
from dlx.nn.embeddings import sinusoidal_embedding


def _key(seed):
  # 'rbg' keys: threefry kernels take ~2 s each to compile on this CPU.
  return jax.random.key(seed, impl="rbg")


def _rngs(seed=0):
  k = jax.random.split(_key(seed), 3)
  return {"params": k[0], "dropout": k[1], "sample": k[2]}


def _cheap_init(model, *args, **kwargs):
  """Variables with init's exact structure, filled from NumPy.

  Skips compiling the random initialisers (slow on this CPU) for tests that
  only need shapes and a generic, non-degenerate network.
  """
  shapes = jax.eval_shape(lambda: model.init(_rngs(), *args, **kwargs))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "scale" in name:
      return jnp.ones(leaf.shape, leaf.dtype)
    fan_in = math.prod(leaf.shape[:-1]) if len(leaf.shape) > 1 else leaf.shape[0]
    std = 0.1 if "bias" in name else 1.0 / math.sqrt(fan_in)
    return jnp.asarray(rng.normal(0.0, std, leaf.shape), leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _num_params(params):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


# --- MLP / Linear ---


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_mlp_shapes(activation):
  model = MLP(hidden=(16, 8), num_outputs=3, activation=activation, dropout_rate=0.5)
  x = jnp.ones((5, 4, 2))  # Non-batch axes are flattened.
  variables = model.init(_rngs(), x)
  assert model.apply(variables, x).shape == (5, 3)
  y = model.apply(variables, x, train=True, rngs={"dropout": _key(1)})
  assert y.shape == (5, 3)
  # 8 inputs -> 16 -> 8 -> 3.
  assert _num_params(variables) == 8 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3


def test_mlp_rejects_unknown_activation():
  with pytest.raises(ValueError, match="activation"):
    MLP(hidden=(4,), num_outputs=2, activation="gelu").init(_rngs(), jnp.ones((1, 2)))


def test_linear_shape():
  model = Linear(num_outputs=2)
  variables = model.init(_rngs(), jnp.ones((1, 3, 2)))
  assert model.apply(variables, jnp.ones((7, 3, 2))).shape == (7, 2)
  assert _num_params(variables) == 6 * 2 + 2


# --- LeNet-5 ---


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_lenet5_param_count_and_shapes(pooling):
  model = LeNet5(pooling=pooling)
  variables = _cheap_init(model, jnp.ones((1, 32, 32, 1)))
  assert _num_params(variables["params"]) == 61_706
  assert model.apply(variables, jnp.ones((4, 32, 32, 1))).shape == (4, 10)


def test_lenet5_rejects_28x28():
  with pytest.raises(ValueError, match="pad 28x28 MNIST to 32x32"):
    LeNet5().init(_rngs(), jnp.ones((1, 28, 28, 1)))


@pytest.mark.torch
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_lenet5_matches_torch(pooling):
  torch = pytest.importorskip("torch")
  tnn = torch.nn
  model = LeNet5(pooling=pooling)
  params = model.init(_rngs(3), jnp.ones((1, 32, 32, 1)))["params"]  # Real init.
  pool = tnn.AvgPool2d(2) if pooling == "avg" else tnn.MaxPool2d(2)
  ref = tnn.Sequential(
    tnn.Conv2d(1, 6, 5),
    tnn.Tanh(),
    pool,
    tnn.Conv2d(6, 16, 5),
    tnn.Tanh(),
    pool,
    tnn.Flatten(),
    tnn.Linear(400, 120),
    tnn.Tanh(),
    tnn.Linear(120, 84),
    tnn.Tanh(),
    tnn.Linear(84, 10),
  )
  p = jax.tree.map(np.asarray, params)
  t = lambda a: torch.from_numpy(np.array(a))  # Writable copy.
  with torch.no_grad():
    for i, name in [(0, "Conv_0"), (3, "Conv_1")]:
      ref[i].weight.copy_(t(p[name]["kernel"].transpose(3, 2, 0, 1)))  # HWIO->OIHW
      ref[i].bias.copy_(t(p[name]["bias"]))
    # Flax flattens (H, W, C); torch flattens (C, H, W): permute fc1's rows.
    k0 = p["Dense_0"]["kernel"].reshape(5, 5, 16, 120).transpose(2, 0, 1, 3)
    ref[7].weight.copy_(t(k0.reshape(400, 120).T))
    ref[7].bias.copy_(t(p["Dense_0"]["bias"]))
    for i, name in [(9, "Dense_1"), (11, "Dense_2")]:
      ref[i].weight.copy_(t(p[name]["kernel"].T))
      ref[i].bias.copy_(t(p[name]["bias"]))
  x = np.random.default_rng(0).normal(size=(3, 32, 32, 1)).astype(np.float32)
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(x)))
  with torch.no_grad():
    theirs = ref(t(x.transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)


# --- CNN1D ---


@pytest.mark.parametrize("shape", [(6, 40), (6, 40, 1)])
def test_cnn1d_shapes(shape):
  model = CNN1D(dropout_rate=0.1)
  variables = model.init(_rngs(), jnp.ones(shape))
  assert model.apply(variables, jnp.ones(shape)).shape == (6, 10)
  y = model.apply(variables, jnp.ones(shape), train=True, rngs={"dropout": _key(0)})
  assert y.shape == (6, 10)
  # Length 40 -> 19 -> 9 -> 4 with kernel 5, stride 2, padding 1.
  assert variables["params"]["Dense_0"]["kernel"].shape == (4 * 32, 10)


def test_cnn1d_same_padding():
  model = CNN1D(channels=(8, 8), padding="SAME", num_classes=3)
  variables = model.init(_rngs(), jnp.ones((2, 40)))
  assert model.apply(variables, jnp.ones((2, 40))).shape == (2, 3)
  assert variables["params"]["Dense_0"]["kernel"].shape == (10 * 8, 3)


# --- VAE ---


def test_vae_shapes():
  model = VAE()
  x = jnp.ones((3, 28, 28, 1))
  variables = _cheap_init(model, x)
  assert _num_params(variables) == 652_824
  logits, mean, log_variance = model.apply(variables, x, rngs={"sample": _key(1)})
  assert logits.shape == (3, 28, 28, 1)
  assert mean.shape == log_variance.shape == (3, 20)
  z = jnp.zeros((4, 20))
  assert model.apply(variables, z, method=VAE.decode).shape == (4, 28, 28, 1)
  images = model.apply(variables, z, method=VAE.generate)
  assert images.shape == (4, 28, 28, 1)
  assert jnp.all((images >= 0) & (images <= 1))
  mean2, _ = model.apply(variables, x, method=VAE.encode)
  np.testing.assert_allclose(mean, mean2, rtol=1e-6)


def test_vae_reparameterisation():
  model = VAE(latent_dim=4, hidden=(8,), output_shape=(3,))
  x = jnp.tile(jnp.array([[0.3, -1.0, 2.0]]), (20_000, 1))  # One input, many draws.
  variables = model.init(_rngs(), x[:1])

  @jax.jit
  def run(params, x, key):
    return model.apply({"params": params}, x, rngs={"sample": key}, mutable=["intermediates"])

  params = variables["params"]
  (_, mean, log_variance), state = run(params, x, _key(5))
  z = state["intermediates"]["z"][0]
  np.testing.assert_allclose(z.mean(0), mean[0], atol=0.03)
  np.testing.assert_allclose(z.std(0), jnp.exp(0.5 * log_variance[0]), rtol=0.03)
  # Fixed rng -> same z; a new rng -> different z.
  z_again = run(params, x, _key(5))[1]["intermediates"]["z"][0]
  z_other = run(params, x, _key(6))[1]["intermediates"]["z"][0]
  np.testing.assert_array_equal(z, z_again)
  assert not np.allclose(z, z_other)

  # Gradients reach the layers producing mean and log-variance through z.
  def loss(params):
    logits, _, _ = model.apply({"params": params}, x[:4], rngs={"sample": _key(5)})
    return jnp.sum(logits**2)

  grads = jax.jit(jax.grad(loss))(params)
  for name in ("mean_layer", "log_variance_layer"):
    assert jnp.any(grads[name]["kernel"] != 0), name


# --- WGAN ---


def test_wgan_init_and_shapes():
  model = WGAN(latent_dim=16, base_features=8)
  x = jnp.zeros((4, 28, 28, 1))
  variables = _cheap_init(model, x)
  assert set(variables["params"]) == {"generator", "critic"}
  out = model.apply(variables, x, rngs={"sample": _key(1)})
  assert out["real_scores"].shape == out["fake_scores"].shape == (4,)
  z = jax.random.normal(_key(2), (5, 16)) * 10.0
  images = model.apply(variables, z, method=WGAN.generate)
  assert images.shape == (5, 28, 28, 1)
  assert jnp.all(jnp.abs(images) <= 1.0)
  assert model.apply(variables, images, method=WGAN.score).shape == (5,)


@pytest.mark.parametrize("normalize", [False, True])
def test_critic_scores_are_per_example(normalize):
  # The gradient penalty needs each score to depend on its own input only.
  critic = Critic(base_features=8, normalize=normalize)
  x = jax.random.normal(_key(0), (4, 28, 28, 1))
  variables = _cheap_init(critic, x)
  full = critic.apply(variables, x)
  np.testing.assert_allclose(full[:1], critic.apply(variables, x[:1]), rtol=1e-5, atol=1e-6)


def test_generator_without_norm():
  gen = Generator(latent_dim=8, base_features=8, normalize=False)
  z = jnp.ones((2, 8))
  variables = _cheap_init(gen, z)
  assert gen.apply(variables, z).shape == (2, 28, 28, 1)


# --- Embeddings ---


def test_sinusoidal_embedding_hand_case():
  emb = sinusoidal_embedding(jnp.array([0, 1, 2]), dim=4, max_period=10000.0)
  # dim 4 -> frequencies 1 and 10000 ** (-1/2) = 0.01; [sin, sin, cos, cos].
  expected = np.array(
    [
      [0.0, 0.0, 1.0, 1.0],
      [math.sin(1.0), math.sin(0.01), math.cos(1.0), math.cos(0.01)],
      [math.sin(2.0), math.sin(0.02), math.cos(2.0), math.cos(0.02)],
    ]
  )
  np.testing.assert_allclose(emb, expected, rtol=1e-6, atol=1e-6)
  assert sinusoidal_embedding(jnp.array([1.5]), dim=5).shape == (1, 5)


# --- UNet ---


def test_unet_shape_and_time_dependence():
  model = UNet(channels=(8, 16, 16), time_dim=16, num_groups=4)
  x = jax.random.normal(_key(0), (2, 28, 28, 1))
  t = jnp.array([3, 3])
  variables = _cheap_init(model, x, t)
  apply = jax.jit(model.apply)
  y = apply(variables, x, t)
  assert y.shape == x.shape
  y_other_t = apply(variables, x, jnp.array([700, 700]))
  assert not np.allclose(y, y_other_t, atol=1e-4)
