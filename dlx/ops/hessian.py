"""Hessian analysis (docs/curriculum.md#c6): Hessian-vector products, the full Hessian of
small models, extreme eigenvalues of large ones by Lanczos, the classification of critical
points, escaping a saddle along negative curvature, and the spectral density (with the
extremes, on a grid spanning them: `extremes_and_density`).

Every function takes a scalar function `f(params)` of a parameter pytree (a loss with its
batch bound in, e.g. `lambda p: loss(model.apply(p, x), y)`). Nothing here forms the
Hessian of a large model: Lanczos needs only Hessian-vector products, which cost about
as much as two gradients.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Optional

import jax
from jax import flatten_util
import jax.numpy as jnp
import numpy as np

from dlx import errors

PyTree = Any
CRITICAL_POINT_KINDS = ("minimum", "maximum", "saddle", "degenerate")
# Above this many parameters classify_critical_point and escape_saddle switch from the
# full Hessian (n^2 memory, n Hessian-vector products) to Lanczos.
MAX_DENSE_SIZE = 2000
DEFAULT_LANCZOS_ITERS = 100


def hvp(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
  """H(params) v for scalar f, shaped like params.

  Forward-over-reverse (`jax.jvp` of `jax.grad(f)`): one extra forward pass over the
  gradient computation, with no n x n matrix anywhere.
  """
  return jax.jvp(jax.grad(f), (params,), (v,))[1]


def _flat_problem(f, params):
  """(flat params, unravel, flat f) for working on one 1-D parameter vector."""
  flat, unravel = flatten_util.ravel_pytree(params)
  return flat, unravel, lambda x: f(unravel(x))


def _size(params):
  return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))


def _flat_hvp(flat_f):
  # The point is an argument, not a closed-over constant: XLA would fold it into the program.
  return lambda flat, v: jax.jvp(jax.grad(flat_f), (flat,), (v,))[1]


def hessian_matrix(f: Callable[[PyTree], jax.Array], params: PyTree) -> jax.Array:
  """The (n, n) Hessian over the flattened parameters (`ravel_pytree` order).

  Column i is H e_i, from a vmap of Hessian-vector products over the basis. Only for
  small n: the result has n^2 entries.
  """
  flat, _, flat_f = _flat_problem(f, params)
  basis = jnp.eye(flat.shape[0], dtype=flat.dtype)
  return jax.jit(jax.vmap(_flat_hvp(flat_f), in_axes=(None, 0), out_axes=1))(flat, basis)


def _orthogonalise(w, basis):
  # Removes every component along the rows of V, the three-term recurrence's alpha v_j and
  # beta v_{j-1} included. Twice is enough (Kahan, Parlett); unfilled rows are zero.
  for _ in range(2):
    w = w - basis.T @ (basis @ w)
  return w


def _normalise(x):
  return x / jnp.linalg.norm(x)


@functools.partial(jax.jit, donate_argnums=(0, 1, 2))
def _lanczos_step(basis, alphas, betas, scale, j, v, hv):
  """One Lanczos step from v_j and hv = H v_j: (state..., v_{j+1}, whether to restart).

  Jitted on its own, not fused with the product into one loop, so that it compiles once
  per (num_iters, n) and each new f compiles only its Hessian-vector product.
  """
  basis = basis.at[j].set(v)
  # Below this fraction of |H| a residual is rounding noise, not a new direction.
  breakdown = math.sqrt(float(jnp.finfo(basis.dtype).eps))
  scale = jnp.maximum(scale, jnp.linalg.norm(hv))
  alpha = jnp.vdot(v, hv)
  w = _orthogonalise(hv, basis)
  beta = jnp.linalg.norm(w)
  restart = beta <= breakdown * scale
  next_v = w / jnp.where(restart, 1.0, beta)
  beta = jnp.where(restart, 0.0, beta)
  return basis, alphas.at[j].set(alpha), betas.at[j].set(beta), scale, next_v, restart


@jax.jit
def _fresh_direction(basis, candidate):
  """The unit vector along candidate's part orthogonal to the rows of basis."""
  return _normalise(_orthogonalise(candidate, basis))


def _numpy_generator(rng):
  """A NumPy generator seeded by a JAX key: random vectors without compiling a sampler."""
  if hasattr(rng, "dtype") and jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)  # new-style keys; raw uint32 keys and ints pass as they are
  return np.random.default_rng(np.asarray(rng).ravel().tolist())


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _zeros(num_iters, n, dtype):
  return jnp.zeros((num_iters, n), dtype), *jnp.zeros((2, num_iters), dtype), jnp.zeros((), dtype)


def _lanczos(matvec, n, num_iters, generator, dtype):
  """Lanczos with full reorthogonalisation from a random unit start vector.

  Returns (alphas, betas, basis): T = diag(alphas) + offdiag(betas[:-1]) and the
  (num_iters, n) orthonormal basis V with V H V^T = T. When the Krylov space becomes
  invariant (beta ~ 0, e.g. H has few distinct eigenvalues) the next vector is a fresh
  random one orthogonal to V and that beta is 0: T stays block diagonal, so no spurious
  zero eigenvalues appear.
  """
  basis, alphas, betas, scale = _zeros(num_iters, n, dtype)
  start = generator.standard_normal(n)
  v = jnp.asarray(start / np.linalg.norm(start), dtype)
  for j in range(num_iters):
    basis, alphas, betas, scale, v, restart = _lanczos_step(
      basis, alphas, betas, scale, j, v, matvec(v)
    )
    if bool(restart) and j + 1 < num_iters:
      v = _fresh_direction(basis, jnp.asarray(generator.standard_normal(n), dtype))
  return alphas, betas, basis


@jax.jit
def _tridiagonal_eigh(alphas, betas):
  """Ascending eigenvalues and eigenvectors (columns) of the small Lanczos matrix T.

  Jitted apart from the Lanczos loop, so it compiles once per size, not once per f.
  """
  off_diagonal = betas[:-1]  # the last beta leads out of the basis
  return jnp.linalg.eigh(jnp.diag(alphas) + jnp.diag(off_diagonal, 1) + jnp.diag(off_diagonal, -1))


@functools.partial(jax.jit, static_argnums=3)
def _ritz_extremes(alphas, betas, basis, k):
  """(top, bottom, top_vectors, bottom_vectors): the k largest and k smallest Ritz pairs."""
  values, vectors = _tridiagonal_eigh(alphas, betas)  # ascending
  ritz_vectors = vectors.T @ basis  # rows: combinations of the Lanczos basis
  return values[::-1][:k], values[:k], ritz_vectors[::-1][:k], ritz_vectors[:k]


@jax.jit
def _smoothed_density(values, weights, grid, sigma):
  """sum_i weights_i N(grid; values_i, sigma^2)."""
  gauss = jnp.exp(-0.5 * ((grid[:, None] - values[None, :]) / sigma) ** 2)
  return gauss @ weights / (sigma * math.sqrt(2 * math.pi))


@functools.partial(jax.jit, static_argnums=0)
def _cached_flat_hvp(f, params, v, args):
  """H v over the flattened parameters of f(params, *args). Compiled once per f (by
  identity) and shapes: the point and `args` are arguments, never baked-in constants."""
  flat, unravel = flatten_util.ravel_pytree(params)
  flat_f = lambda x: f(unravel(x), *args)
  return jax.jvp(jax.grad(flat_f), (flat,), (v,))[1]


def _jitted_lanczos(f, params, num_iters, args=()):
  """(flat params, unravel, NumPy generator -> (alphas, betas, basis)) for f at params."""
  flat, unravel = flatten_util.ravel_pytree(params)
  matvec = lambda v: _cached_flat_hvp(f, params, v, tuple(args))
  n = flat.shape[0]
  return flat, unravel, lambda generator: _lanczos(matvec, n, num_iters, generator, flat.dtype)


def _check_iters(n, num_iters):
  num_iters = min(n, DEFAULT_LANCZOS_ITERS) if num_iters is None else num_iters
  if not 1 <= num_iters <= n:
    raise errors.ConfigError(
      f"num_iters must be in [1, n={n}] (the parameter count), got {num_iters}"
    )
  return num_iters


@dataclasses.dataclass(frozen=True)
class ExtremeEigen:
  """Ritz approximations of the k largest and k smallest Hessian eigenpairs.

  top: (k,) largest first. bottom: (k,) smallest (most negative) first.
  top_vectors, bottom_vectors: (k, n) unit rows over the flattened parameters, row i
  belonging to eigenvalue i; `unravel(row)` turns one into a pytree like params.
  """

  top: jax.Array
  bottom: jax.Array
  top_vectors: jax.Array
  bottom_vectors: jax.Array
  unravel: Callable[[jax.Array], PyTree]


def extreme_eigenvalues(
  f: Callable[[PyTree], jax.Array],
  params: PyTree,
  k: int,
  rng: jax.Array,
  *,
  num_iters: Optional[int] = None,
  args: tuple = (),
) -> ExtremeEigen:
  """The k largest and k smallest Hessian eigenvalues (and vectors), by Lanczos.

  Runs `num_iters` (default min(n, 100)) Lanczos steps from a random start, each one
  jitted Hessian-vector product and a full reorthogonalisation against the earlier
  vectors, and returns the extreme Ritz pairs of the tridiagonal matrix. Memory is
  num_iters * n numbers for the basis. The extremes converge first; they are exact when
  num_iters = n. A Ritz value never lies outside the spectrum, so an unconverged `bottom`
  is too high and an unconverged `top` too low.

  Args:
    f: scalar function of the parameter pytree.
    params: the point at which the Hessian is taken.
    k: how many eigenpairs at each end; 1 <= k <= num_iters.
    rng: PRNG key; it seeds the NumPy generator that draws the start vector (and restarts).
    num_iters: Lanczos steps, at most the parameter count n.
    args: more arguments of f, called as f(params, *args) (a batch, model state): passed
      to the compiled product as arguments, so calls with the same f and shapes reuse it.
  """
  num_iters = _check_iters(_size(params), num_iters)
  if not 1 <= k <= num_iters:
    raise errors.ConfigError(f"k must be in [1, num_iters={num_iters}], got {k}")
  flat, unravel, lanczos = _jitted_lanczos(f, params, num_iters, args)
  alphas, betas, basis = lanczos(_numpy_generator(rng))
  return ExtremeEigen(*_ritz_extremes(alphas, betas, basis, k), unravel=unravel)


def _extreme_pair(f, params, rng, max_dense_size, num_iters):
  """(smallest eigenvalue, its unit vector, largest eigenvalue, unravel), dense for small n."""
  flat, unravel, _ = _flat_problem(f, params)
  if flat.shape[0] <= max_dense_size:
    h = hessian_matrix(f, params)
    values, vectors = jnp.linalg.eigh(0.5 * (h + h.T))
    return values[0], vectors[:, 0], values[-1], unravel
  rng = jax.random.key(0) if rng is None else rng
  eig = extreme_eigenvalues(f, params, 1, rng, num_iters=num_iters)
  return eig.bottom[0], eig.bottom_vectors[0], eig.top[0], unravel


def classify_critical_point(
  f: Callable[[PyTree], jax.Array],
  params: PyTree,
  tol: float = 1e-5,
  *,
  rng: Optional[jax.Array] = None,
  max_dense_size: int = MAX_DENSE_SIZE,
  num_iters: Optional[int] = None,
) -> str:
  """'minimum', 'maximum', 'saddle' or 'degenerate', from the Hessian's extreme eigenvalues.

  The rule (second-derivative test): an eigenvalue > tol and one < -tol prove a saddle
  (f rises along one eigenvector and falls along the other), whatever the rest; otherwise
  all eigenvalues > tol is a strict minimum and all < -tol a strict maximum; anything else
  has an eigenvalue within tol of 0 (and none of the opposite sign), where the second
  derivatives cannot decide (x^4 and x^3 both have H = 0 at 0): 'degenerate'. The rule
  needs only the smallest and largest eigenvalues, so for more than `max_dense_size`
  parameters it uses Lanczos (`num_iters`, `rng`), trusting it to have converged.

  It assumes params is a critical point (gradient ~ 0) and does not check it; tol is
  absolute, so scale it with the loss.
  """
  if tol < 0:
    raise errors.ConfigError(f"tol must be >= 0, got {tol}")
  lowest, _, highest, _ = _extreme_pair(f, params, rng, max_dense_size, num_iters)
  lowest, highest = float(lowest), float(highest)
  if highest > tol and lowest < -tol:
    return "saddle"
  if lowest > tol:
    return "minimum"
  if highest < -tol:
    return "maximum"
  return "degenerate"


def escape_saddle(
  f: Callable[[PyTree], jax.Array],
  params: PyTree,
  step_size: float,
  *,
  rng: Optional[jax.Array] = None,
  max_dense_size: int = MAX_DENSE_SIZE,
  num_iters: Optional[int] = None,
) -> PyTree:
  """params + step_size * s * u, u the unit eigenvector of the most negative eigenvalue.

  At a saddle the gradient is ~0 and gradient descent stalls, but to second order
  f(params + t u) = f(params) + t g.u + t^2 lambda / 2 with lambda < 0, so a step along u
  lowers f; of s = +1 and -1 we keep the one with the lower f (it also follows the
  gradient's sign when g.u is not 0). Raises ConfigError when no eigenvalue is negative.
  """
  if step_size <= 0:
    raise errors.ConfigError(f"step_size must be > 0, got {step_size}")
  lowest, direction, _, unravel = _extreme_pair(f, params, rng, max_dense_size, num_iters)
  if float(lowest) >= 0:
    raise errors.ConfigError(
      f"no negative curvature to escape along (smallest Hessian eigenvalue {float(lowest):.3g})"
    )
  flat, _ = flatten_util.ravel_pytree(params)
  forward = unravel(flat + step_size * direction)
  backward = unravel(flat - step_size * direction)
  jitted_f = jax.jit(f)
  return forward if float(jitted_f(forward)) <= float(jitted_f(backward)) else backward


def spectral_density(
  f: Callable[[PyTree], jax.Array],
  params: PyTree,
  rng: jax.Array,
  grid: jax.Array,
  *,
  num_iters: Optional[int] = None,
  num_probes: int = 4,
  sigma: Optional[float] = None,
  args: tuple = (),
) -> jax.Array:
  """Gaussian-smoothed Hessian eigenvalue density on `grid`, by stochastic Lanczos quadrature.

  Each probe runs Lanczos from a random unit vector v; the Ritz values theta_i with weights
  tau_i^2 (squared first entries of T's eigenvectors) are a quadrature rule for
  v^T g(H) v, whose average over random v is (1/n) sum_j g(lambda_j). With g a Gaussian
  of width sigma (default: 1% of the grid's span) this estimates
  (1/n) sum_j N(x; lambda_j, sigma^2), which integrates to 1 (Ghorbani et al., 2019).
  `args`: more arguments of f, as in `extreme_eigenvalues`.
  """
  num_iters = _check_iters(_size(params), num_iters)
  if num_probes < 1:
    raise errors.ConfigError(f"num_probes must be >= 1, got {num_probes}")
  flat, _, lanczos = _jitted_lanczos(f, params, num_iters, args)
  grid = jnp.asarray(grid, flat.dtype)
  if sigma is None:
    sigma = 0.01 * float(grid.max() - grid.min()) if grid.size else 0.0
  if sigma <= 0:
    raise errors.ConfigError(f"sigma must be > 0 (give a grid with a span), got {sigma}")
  density = jnp.zeros_like(grid)
  generator = _numpy_generator(rng)
  for _ in range(num_probes):
    alphas, betas, _ = lanczos(generator)
    values, vectors = _tridiagonal_eigh(alphas, betas)
    density = density + _smoothed_density(values, vectors[0] ** 2, grid, sigma)
  return density / num_probes


def extremes_and_density(
  f: Callable[[PyTree], jax.Array],
  params: PyTree,
  k: int,
  rng: jax.Array,
  *,
  grid_points: int,
  num_iters: Optional[int] = None,
  density_iters: Optional[int] = None,
  density_probes: int = 4,
  args: tuple = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(top (k,), bottom (k,), grid, density) in float64: the k extreme eigenvalues at each
  end (`extreme_eigenvalues`, `num_iters` Lanczos steps) and the spectral density
  (`spectral_density`, `density_probes` runs of `density_iters` steps) on `grid_points`
  points from the smallest to the largest eigenvalue with a margin of 5% of that range
  on each side. `rng` is split in two, one key for each estimate; `args` as in
  `extreme_eigenvalues` (one compiled Hessian-vector product serves both)."""
  extremes_rng, density_rng = jax.random.split(rng)
  eig = extreme_eigenvalues(f, params, k, extremes_rng, num_iters=num_iters, args=args)
  top, bottom = np.asarray(eig.top, np.float64), np.asarray(eig.bottom, np.float64)
  margin = 0.05 * max(top[0] - bottom[0], 1e-6)
  grid = np.linspace(bottom[0] - margin, top[0] + margin, grid_points)
  density = spectral_density(
    f, params, density_rng, grid, num_iters=density_iters, num_probes=density_probes, args=args
  )
  return top, bottom, grid, np.asarray(density, np.float64)
