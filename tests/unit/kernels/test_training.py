"""Training through oneDNN gives XLA's losses: 20 SGD steps of LeNet-5 and of a ResNet
block (batch norm, stride-2 projection) on fixed random data."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx.kernels import route
from dlx.models import gpt
from dlx.models import lenet
from dlx.nn import blocks
from dlx.nn import conv

STEPS = 20


class _ResNetBlock(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    x = blocks.ResidualBlock(16, strides=2)(x, train)
    x = blocks.ResidualBlock(16)(x, train)
    return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


def _losses(model, inputs, labels, learning_rate):
  """The loss before each of STEPS SGD steps, traced on the route in force."""
  variables = model.init(jax.random.PRNGKey(0), inputs[:1], train=False)
  params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  optimizer = optax.sgd(learning_rate, momentum=0.9)

  @jax.jit
  def step(params, state, opt_state):
    def loss_fn(params):
      logits, new_state = model.apply(
        {"params": params, **state}, inputs, train=True, mutable=list(state)
      )
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, new_state

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_state, opt_state, loss

  opt_state = optimizer.init(params)
  losses = []
  for _ in range(STEPS):
    params, state, opt_state, loss = step(params, state, opt_state)
    losses.append(float(loss))
  return np.array(losses)


def _compare(model, inputs, labels, learning_rate):
  xla = _losses(model, inputs, labels, learning_rate)
  with route.use("onednn"):
    variables = model.init(jax.random.PRNGKey(0), inputs[:1], train=False)
    traced = jax.make_jaxpr(lambda v: model.apply(v, inputs, train=False))(variables)
    assert "dlx_onednn_conv_forward" in str(traced)
    ours = _losses(model, inputs, labels, learning_rate)
  assert xla[-1] < xla[0]  # it trains
  np.testing.assert_allclose(ours, xla, rtol=1e-5, atol=1e-5)


def test_lenet5_trains_as_with_xla(extension):
  inputs = jax.random.normal(jax.random.PRNGKey(1), (16, 32, 32, 1))
  labels = jax.random.randint(jax.random.PRNGKey(2), (16,), 0, 10)
  _compare(lenet.LeNet5(), inputs, labels, 0.05)


def test_resnet_block_trains_as_with_xla(extension):
  inputs = jax.random.normal(jax.random.PRNGKey(1), (8, 16, 16, 8))
  labels = jax.random.randint(jax.random.PRNGKey(2), (8,), 0, 10)
  _compare(_ResNetBlock(), inputs, labels, 0.02)


def test_dlx_depthwise_kernel_takes_onednn_on_its_route(extension):
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 14, 14, 8))
  kernel = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 1, 8))

  def loss(x, kernel):
    return jnp.sum(jnp.sin(conv.depthwise_conv2d(x, kernel, strides=2, dilation=2)))

  expected = jax.grad(loss, argnums=(0, 1))(x, kernel)
  with route.use("onednn"):
    assert "dlx_onednn_conv" in str(jax.make_jaxpr(loss)(x, kernel))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, kernel)
  for ours, theirs in zip(grads, expected):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(theirs))))


def _gpt_losses(model, tokens):
  """The next-token loss before each of STEPS Adam steps, traced on the route in force."""
  params = model.init(jax.random.PRNGKey(0), tokens[:1, :-1])["params"]
  optimizer = optax.adamw(3e-3)

  @jax.jit
  def step(params, opt_state):
    def loss_fn(params):
      logits = model.apply({"params": params}, tokens[:, :-1], train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state, losses = optimizer.init(params), []
  for _ in range(STEPS):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  return np.array(losses)


def test_gpt_trains_as_with_xla(extension):
  """Dense layers and attention's products on oneDNN (dlx/kernels/matmul.py)."""
  model = gpt.GPT(vocab_size=30, max_length=16, num_layers=2, num_heads=4, features=32)
  tokens = jax.random.randint(jax.random.PRNGKey(3), (6, 17), 0, 30)
  xla = _gpt_losses(model, tokens)
  with route.use("onednn"):
    traced = jax.make_jaxpr(lambda p: model.apply(p, tokens[:, :-1]))(
      model.init(jax.random.PRNGKey(0), tokens[:1, :-1])
    )
    assert "dlx_onednn_matmul" in str(traced)
    ours = _gpt_losses(model, tokens)
  assert xla[-1] < xla[0]  # it trains
  np.testing.assert_allclose(ours, xla, rtol=1e-5, atol=1e-5)
