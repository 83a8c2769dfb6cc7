"""Which subgradient JAX picks at the kinks (docs/curriculum.md#c7), and the L1 proximal
operator in dlx/ops/proximal.py.

|x| and ReLU have no derivative at 0; any element of the subgradient set ([-1, 1] for |x|,
[0, 1] for ReLU) is a valid choice, and each implementation picks one. Measured with jax
0.10.2 in float32 (these tests pin the values, so an upgrade that changes one shows up):

  jnp.abs at 0 (and at -0.0)       1    the right derivative: abs's JVP is
                                        select(x >= 0, t, -t), and -0.0 >= 0
  jax.nn.relu at 0                 0    a custom JVP that picks 0 (so do flax.linen.relu
                                        and dlx.nn.activations.relu, the same function)
  jnp.maximum(x, 0) at 0           0.5  a tie splits the gradient between the arguments,
                                        so a hand-written ReLU differs from jax.nn.relu
  jax.nn.leaky_relu at 0           1    where(x >= 0, x, a x) takes the x >= 0 branch
  jax.nn.hard_sigmoid at -3 and 3  0    relu6's custom JVP is 0 at both of its kinks
  dlx.losses.l1_penalty at 0       0    |w| is written sign(w) w (`losses._abs`), whose
  and dlx.losses.mae at 0               derivative is sign(w) = 0 at 0, as in PyTorch; the
                                        minimum-norm subgradient, so no push at w = 0
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx import losses
from dlx.nn import activations
from dlx.ops import proximal


def _derivative(fn, x):
  return float(jax.grad(fn)(jnp.float32(x)))


def test_abs_takes_the_right_derivative_at_zero():
  assert _derivative(jnp.abs, 0.0) == 1.0
  assert _derivative(jnp.abs, -0.0) == 1.0  # -0.0 >= 0, so the same branch
  assert _derivative(jnp.abs, -2.0) == -1.0 and _derivative(jnp.abs, 2.0) == 1.0


@pytest.mark.parametrize(
  "relu",
  [jax.nn.relu, nn.relu, activations.relu, activations.get("relu")],
  ids=["jax.nn", "flax", "dlx", "dlx-by-name"],
)
def test_relu_derivative_at_zero_is_zero(relu):
  assert _derivative(relu, 0.0) == 0.0  # in [0, 1]
  assert _derivative(relu, -1.0) == 0.0 and _derivative(relu, 1.0) == 1.0


def test_hand_written_relu_splits_the_tie():
  assert _derivative(lambda x: jnp.maximum(x, 0.0), 0.0) == 0.5  # in [0, 1], but not 0


def test_leaky_relu_and_hard_sigmoid_at_their_kinks():
  assert _derivative(activations.leaky_relu, 0.0) == 1.0  # in [0.01, 1]
  assert _derivative(activations.leaky_relu, -1.0) == pytest.approx(0.01)
  for kink in (-3.0, 3.0):
    assert _derivative(activations.hard_sigmoid, kink) == 0.0  # in [0, 1/6]
  assert _derivative(activations.hard_sigmoid, 0.0) == pytest.approx(1 / 6)


def test_l1_penalty_and_mae_gradients_are_zero_at_zero():
  params = {"kernel": jnp.array([[0.0, 2.0], [-1.5, 0.0]]), "bias": jnp.zeros(3)}
  grads = jax.grad(losses.l1_penalty)(params)
  np.testing.assert_array_equal(grads["kernel"], [[0.0, 1.0], [-1.0, 0.0]])
  np.testing.assert_array_equal(grads["bias"], 0.0)
  mae_grad = jax.grad(lambda p: losses.mae(p, jnp.zeros(3)).sum())(jnp.array([-1.0, 0.0, 3.0]))
  np.testing.assert_array_equal(mae_grad, [-1.0, 0.0, 1.0])
  # So the L1 penalty transform leaves exact zeros where they are.
  tx = losses.penalty_transform("l1", 0.1)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(updates["kernel"], [[0.0, 0.1], [-0.1, 0.0]])
  np.testing.assert_array_equal(updates["bias"], 0.0)


def test_prox_l1_zeroes_small_entries_and_shrinks_the_rest():
  x = jnp.array([-3.0, -0.5, -0.0, 0.0, 0.25, 0.5, 0.7, 2.0])
  z = proximal.prox_l1(x, 0.5)
  np.testing.assert_allclose(z, [-2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 1.5], rtol=1e-6)
  small = np.abs(np.asarray(x)) <= 0.5
  assert np.all(np.asarray(z)[small] == 0) and not np.any(np.signbit(np.asarray(z)[small]))
  np.testing.assert_array_equal(proximal.prox_l1(x, 0.0), x)


def test_prox_l1_is_the_argmin_on_a_grid():
  grid = np.linspace(-4.0, 4.0, 80_001)  # spacing 1e-4
  x = np.random.default_rng(0).uniform(-3.0, 3.0, 40)
  for threshold in (0.0, 0.3, 1.0, 2.5):
    objective = 0.5 * (grid[None, :] - x[:, None]) ** 2 + threshold * np.abs(grid)[None, :]
    argmin = grid[objective.argmin(1)]
    np.testing.assert_allclose(proximal.prox_l1(jnp.asarray(x), threshold), argmin, atol=2e-4)


def test_prox_l1_satisfies_the_subgradient_optimality_condition():
  # z = prox(x) iff (x - z) / t is in the subdifferential of |.| at z: sign(z) where z != 0,
  # and [-1, 1] where z == 0.
  x = np.random.default_rng(1).normal(0.0, 1.0, 200).astype(np.float32)
  t = 0.6
  z = np.asarray(proximal.prox_l1(jnp.asarray(x), t))
  ratio = (x - z) / t
  nonzero = z != 0
  np.testing.assert_allclose(ratio[nonzero], np.sign(z[nonzero]), rtol=1e-5)
  assert np.all(np.abs(ratio[~nonzero]) <= 1.0) and (~nonzero).sum() > 50


def test_prox_l1_maps_pytrees_and_rejects_a_negative_threshold():
  params = {"kernel": jnp.array([[0.1, -2.0]]), "bias": jnp.array([1.0])}
  z = proximal.prox_l1(params, 0.5)
  np.testing.assert_allclose(z["kernel"], [[0.0, -1.5]])
  np.testing.assert_allclose(z["bias"], [0.5])
  with pytest.raises(errors.ConfigError):
    proximal.prox_l1(params, -0.1)
