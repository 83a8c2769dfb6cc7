"""Tests for dlx/ops/hessian.py (docs/curriculum.md#c6): Hessian-vector products and the
full Hessian against `jax.hessian`, Lanczos against closed-form spectra (A = Q diag(l) Q^T)
and `numpy.linalg.eigh`, the classification of textbook critical points, and escaping a
saddle by the closed form of a quadratic.

Comparisons with exact values run in float64 (the `x64` fixture); the LeNet-5 run is
float32, as a model would be.
"""

import jax
from jax import flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import errors
from dlx.models import lenet
from dlx.ops import hessian


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _key(seed):
  # 'rbg' keys: threefry kernels are slow to compile on this CPU.
  return jax.random.key(seed, impl="rbg")


def _quadratic(eigenvalues, seed=0):
  """(f, A) with f(x) = 0.5 x^T A x and A = Q diag(eigenvalues) Q^T, Q random orthogonal."""
  eigenvalues = np.asarray(eigenvalues, np.float64)
  n = eigenvalues.shape[0]
  q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
  a = (q * eigenvalues) @ q.T
  a = 0.5 * (a + a.T)
  return (lambda x: 0.5 * x @ jnp.asarray(a) @ x), a, q


def _mlp_problem():
  """A tanh MLP's mean squared error as a function of its pytree params (26 of them)."""
  rng = np.random.default_rng(1)
  params = {
    "hidden": {"kernel": rng.standard_normal((3, 4)), "bias": rng.standard_normal(4)},
    "out": {"kernel": rng.standard_normal((4, 2)), "bias": rng.standard_normal(2)},
  }
  params = jax.tree.map(jnp.asarray, params)
  x, y = jnp.asarray(rng.standard_normal((16, 3))), jnp.asarray(rng.standard_normal((16, 2)))

  def loss(p):
    h = jnp.tanh(x @ p["hidden"]["kernel"] + p["hidden"]["bias"])
    return jnp.mean((h @ p["out"]["kernel"] + p["out"]["bias"] - y) ** 2)

  return loss, params


def _reference_hessian(f, params):
  flat, unravel = flatten_util.ravel_pytree(params)
  return np.asarray(jax.jit(jax.hessian(lambda z: f(unravel(z))))(flat))


def test_hvp_matches_jax_hessian_times_v(x64):
  loss, params = _mlp_problem()
  flat, unravel = flatten_util.ravel_pytree(params)
  v = jnp.asarray(np.random.default_rng(2).standard_normal(flat.shape[0]))
  product = hessian.hvp(loss, params, unravel(v))
  assert jax.tree.structure(product) == jax.tree.structure(params)
  np.testing.assert_allclose(
    flatten_util.ravel_pytree(product)[0], _reference_hessian(loss, params) @ v, rtol=1e-10
  )


def test_hessian_matrix_is_A_for_a_quadratic_and_jax_hessian_for_an_mlp(x64):
  f, a, _ = _quadratic(np.linspace(-2.0, 3.0, 7))
  np.testing.assert_allclose(hessian.hessian_matrix(f, jnp.ones(7)), a, atol=1e-12)
  loss, params = _mlp_problem()
  h = hessian.hessian_matrix(loss, params)
  assert h.shape == (26, 26)
  np.testing.assert_allclose(h, _reference_hessian(loss, params), rtol=1e-10, atol=1e-12)


def test_lanczos_recovers_a_known_spectrum_with_repeated_eigenvalues(x64):
  # Five distinct eigenvalues: the Krylov space is invariant after 5 steps, and Lanczos must
  # restart; without that the remaining steps would add spurious zero eigenvalues.
  eigenvalues = np.concatenate([[-3.0, -2.0], np.ones(36), [4.0, 5.0]])
  f, _, q = _quadratic(eigenvalues)
  eig = hessian.extreme_eigenvalues(f, jnp.zeros(40), 3, _key(0), num_iters=12)
  np.testing.assert_allclose(eig.top, [5.0, 4.0, 1.0], atol=1e-9)
  np.testing.assert_allclose(eig.bottom, [-3.0, -2.0, 1.0], atol=1e-9)
  vectors = np.concatenate([eig.top_vectors, eig.bottom_vectors])
  # Simple eigenvalues: each Ritz vector is +-the matching column of Q.
  np.testing.assert_allclose(np.abs(vectors[[0, 1, 3, 4]] @ q[:, [39, 38, 0, 1]]).diagonal(), 1)
  # The two Ritz vectors for eigenvalue 1 lie in its eigenspace and are orthonormal.
  ones = vectors[[2, 5]]
  np.testing.assert_allclose(ones @ q[:, 2:38] @ q[:, 2:38].T, ones, atol=1e-9)
  np.testing.assert_allclose(ones @ ones.T, np.eye(2), atol=1e-9)


def test_lanczos_extremes_converge_in_few_iterations(x64):
  # Well-separated extremes in a 300-dim spectrum converge long before 300 steps.
  eigenvalues = np.concatenate([[-4.0, -3.0], np.linspace(-1.0, 1.0, 296), [6.0, 8.0]])
  f, _, _ = _quadratic(eigenvalues, seed=3)
  eig = hessian.extreme_eigenvalues(f, jnp.zeros(300), 2, _key(1), num_iters=40)
  np.testing.assert_allclose(eig.top, [8.0, 6.0], rtol=1e-6)
  np.testing.assert_allclose(eig.bottom, [-4.0, -3.0], rtol=1e-6)


def test_lanczos_on_an_mlp_agrees_with_numpy_eigh(x64):
  loss, params = _mlp_problem()
  reference = np.linalg.eigh(_reference_hessian(loss, params))
  eig = hessian.extreme_eigenvalues(loss, params, 2, _key(3))  # num_iters = n = 26
  np.testing.assert_allclose(eig.top, reference.eigenvalues[::-1][:2], rtol=1e-8)
  np.testing.assert_allclose(eig.bottom, reference.eigenvalues[:2], rtol=1e-8)
  top = np.asarray(eig.top_vectors[0])
  assert abs(top @ reference.eigenvectors[:, -1]) == pytest.approx(1.0, abs=1e-8)
  as_tree = eig.unravel(eig.top_vectors[0])
  assert jax.tree.structure(as_tree) == jax.tree.structure(params)


def test_lanczos_on_lenet5():
  # 61,706 parameters in float32: no n x n matrix exists. The top Ritz pair is checked
  # against the definition H u = lambda u with an independent Hessian-vector product.
  model = lenet.LeNet5()
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.standard_normal((4, 32, 32, 1)), jnp.float32)
  labels = jnp.arange(4)
  # Random weights of the right shapes, without compiling model.init.
  shapes = jax.eval_shape(model.init, _key(5), x[:1])
  params = jax.tree.map(
    lambda s: jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1])), s.dtype),
    shapes,
  )

  def loss(p):
    return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), labels).mean()

  assert flatten_util.ravel_pytree(params)[0].shape == (61706,)
  eig = hessian.extreme_eigenvalues(loss, params, 1, _key(6), num_iters=30)
  assert eig.top_vectors.shape == eig.bottom_vectors.shape == (1, 61706)
  u, value = eig.top_vectors[0], float(eig.top[0])
  hu = flatten_util.ravel_pytree(
    jax.jit(hessian.hvp, static_argnums=0)(loss, params, eig.unravel(u))
  )[0]
  assert value > 0 > float(eig.bottom[0])
  assert float(jnp.linalg.norm(hu - value * u)) < 0.01 * value


CRITICAL_POINTS = [
  ("x^2 + y^2", lambda p: p[0] ** 2 + p[1] ** 2, 2, "minimum"),
  ("-(x^2 + y^2)", lambda p: -(p[0] ** 2) - p[1] ** 2, 2, "maximum"),
  ("x^2 - y^2", lambda p: p[0] ** 2 - p[1] ** 2, 2, "saddle"),
  ("x^2 - y^2 + z^4", lambda p: p[0] ** 2 - p[1] ** 2 + p[2] ** 4, 3, "saddle"),
  ("x^4 + y^2", lambda p: p[0] ** 4 + p[1] ** 2, 2, "degenerate"),
  ("-x^4 - y^2", lambda p: -(p[0] ** 4) - p[1] ** 2, 2, "degenerate"),
  ("x^3", lambda p: p[0] ** 3, 1, "degenerate"),
]


def _cases(names=None):
  chosen = [c for c in CRITICAL_POINTS if names is None or c[0] in names]
  return pytest.mark.parametrize("f, n, kind", [c[1:] for c in chosen], ids=[c[0] for c in chosen])


@_cases()
def test_classify_critical_point(f, n, kind):
  assert hessian.classify_critical_point(f, jnp.zeros(n)) == kind


# Each Lanczos run compiles its own loop (~1 s here), so only one case per outcome.
@_cases(("x^2 + y^2", "-(x^2 + y^2)", "x^2 - y^2 + z^4", "x^4 + y^2"))
def test_classify_critical_point_by_lanczos(f, n, kind):
  got = hessian.classify_critical_point(f, jnp.zeros(n), rng=_key(7), max_dense_size=0)
  assert got == kind


def test_classify_finds_one_small_negative_eigenvalue_among_many_positive_ones(x64):
  f, _, _ = _quadratic(np.concatenate([[-0.1], np.linspace(0.5, 2.0, 39)]), seed=5)
  assert hessian.classify_critical_point(f, jnp.zeros(40), max_dense_size=10) == "saddle"


def test_escape_saddle_steps_along_negative_curvature(x64):
  f = lambda p: p[0] ** 2 - p[1] ** 2
  moved = hessian.escape_saddle(f, jnp.zeros(2), 0.1)
  np.testing.assert_allclose(np.abs(moved), [0.0, 0.1], atol=1e-12)
  assert float(f(moved)) == pytest.approx(-0.01)


def test_escape_saddle_by_lanczos_lowers_f_by_the_closed_form(x64):
  # f(x) = 0.5 x^T A x + b^T x has its critical point at x* = -A^-1 b, where a step t q
  # along the unit eigenvector of lambda_min changes f by exactly 0.5 lambda_min t^2.
  eigenvalues = np.concatenate([[-2.0, -0.5], np.linspace(0.5, 3.0, 38)])
  quad, a, q = _quadratic(eigenvalues, seed=6)
  b = np.random.default_rng(7).standard_normal(40)
  f = lambda x: quad(x) + jnp.asarray(b) @ x
  saddle = jnp.asarray(-np.linalg.solve(a, b))
  moved = hessian.escape_saddle(f, saddle, 0.3, rng=_key(8), max_dense_size=0)
  assert float(f(moved)) == pytest.approx(float(f(saddle)) - 0.5 * 2.0 * 0.3**2, rel=1e-9)
  np.testing.assert_allclose(abs(float((moved - saddle) @ q[:, 0])), 0.3, rtol=1e-9)


def test_escape_saddle_picks_the_downhill_sign_off_a_critical_point(x64):
  # Gradient (0, 1) along the negative-curvature axis y: only -y lowers f.
  f = lambda p: p[0] ** 2 - p[1] ** 2 + p[1]
  moved = hessian.escape_saddle(f, jnp.zeros(2), 0.5)
  np.testing.assert_allclose(moved, [0.0, -0.5], atol=1e-12)


def test_spectral_density_matches_the_smoothed_spectrum(x64):
  eigenvalues = np.concatenate([np.linspace(-1.0, 0.0, 150), np.linspace(2.0, 3.0, 150)])
  f, _, _ = _quadratic(eigenvalues, seed=8)
  grid = np.linspace(-3.0, 5.0, 801)
  sigma = 0.2
  density = hessian.spectral_density(
    f, jnp.zeros(300), _key(9), grid, num_iters=40, num_probes=8, sigma=sigma
  )
  gauss = np.exp(-0.5 * ((grid[:, None] - eigenvalues) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
  expected = gauss.mean(1)
  np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-6)
  # A probe v weighs eigenvalue j by (q_j . v)^2, 1/n on average; with ~75 eigenvalues
  # under each Gaussian and 8 probes that is a ~6% Monte Carlo error.
  assert np.max(np.abs(density - expected)) < 0.15 * expected.max()
  # The two bumps carry half the mass each (Monte Carlo sd ~0.015).
  half = np.trapezoid(density[grid < 1.0], grid[grid < 1.0])
  assert half == pytest.approx(0.5, abs=0.06)


def test_extremes_and_density_span_the_spectrum(x64):
  eigenvalues = np.linspace(-1.0, 3.0, 40)
  f, _, _ = _quadratic(eigenvalues, seed=4)
  top, bottom, grid, density = hessian.extremes_and_density(
    f, jnp.zeros(40), 2, _key(5), grid_points=201, num_iters=40, density_iters=40
  )
  # 40 Lanczos steps on 40 parameters: exact extremes.
  np.testing.assert_allclose(top, [3.0, eigenvalues[-2]], atol=1e-8)
  np.testing.assert_allclose(bottom, [-1.0, eigenvalues[1]], atol=1e-8)
  assert all(a.dtype == np.float64 for a in (top, bottom, grid, density))
  # The grid runs 5% of the range past each extreme; the density has all its mass on it.
  assert grid.shape == density.shape == (201,)
  np.testing.assert_allclose([grid[0], grid[-1]], [-1.2, 3.2], atol=1e-8)
  assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
  "call",
  [
    lambda f, x: hessian.extreme_eigenvalues(f, x, 0, _key(0)),
    lambda f, x: hessian.extreme_eigenvalues(f, x, 2, _key(0), num_iters=4),
    lambda f, x: hessian.extreme_eigenvalues(f, x, 3, _key(0), num_iters=2),
    lambda f, x: hessian.classify_critical_point(f, x, tol=-1.0),
    lambda f, x: hessian.escape_saddle(f, x, 0.0),
    lambda f, x: hessian.escape_saddle(f, x, 0.1),  # a minimum: nothing to escape along
    lambda f, x: hessian.spectral_density(f, x, _key(0), np.zeros(5)),
  ],
)
def test_bad_arguments_raise_config_error(call):
  with pytest.raises(errors.ConfigError):
    call(lambda p: jnp.sum(p**2), jnp.zeros(3))
