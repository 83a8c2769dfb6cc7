"""Tests for dlx.training.optim: update rules against the course's formulas.

Each reference is written out in numpy from the course's update rules
(docs/curriculum.md#c1, which the course states in two slightly different
forms), not from optax. Everything runs in float64 so the comparisons can
be tight: the only differences left are rounding.

Where the course's formulas and optax differ:
* Adagrad: the course's formula prints eta / (G + eps) g; that is a typo for the
  standard eta / sqrt(G + eps) g, which optax implements (eps inside the sqrt).
* Adadelta: the course's formula prints G = gamma G - (1-gamma) g^2 (and the
  same for H); the minus is a typo for +. optax also multiplies by a learning
  rate, so the pure rule is learning_rate=1.
* RMSprop: one of the course's two forms starts sigma_0 = |g_0|; optax (like
  the other form's EMA) starts G at 0. We test the zero start, eps inside the
  sqrt.
* Adam: the course's formula puts eps inside the sqrt of the raw v; optax uses
  m_hat / (sqrt(v_hat) + eps). They agree exactly at eps=0.
* Nesterov: optax tracks the lookahead point; see test_nesterov_*.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx.training import optim

# Diagonal quadratic L(W) = sum(h W^2 / 2 - c W), so gradients change per step.
H = np.array([2.0, 0.5, 1.0])
C = np.array([1.0, -1.0, 0.5])
W0 = np.array([0.3, -1.2, 2.0])
STEPS = 3


def grad(w):
  return H * w - C


@pytest.fixture(autouse=True)
def _float64():
  with jax.enable_x64(True):
    yield


def config(**overrides):
  cfg = optim.default_config()
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


def run_optax(cfg, steps=STEPS, w0=W0):
  """Returns [W_0, ..., W_steps] and the final state from optim's optimizer."""
  opt = optim.create_optimizer(cfg, total_steps=100)
  w = jnp.asarray(w0, jnp.float64)
  state = opt.init(w)
  ws = [np.asarray(w)]
  for _ in range(steps):
    updates, state = opt.update(jnp.asarray(grad(np.asarray(w))), state, w)
    w = optax.apply_updates(w, updates)
    ws.append(np.asarray(w))
  return ws, state


def assert_trajectory(got, want):
  assert len(got) == len(want)
  for t, (g, w) in enumerate(zip(got, want)):
    np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")


# ----------------------------------------------------------------- rules


def test_sgd_matches_the_course():
  eta = 0.1
  w, want = W0.copy(), [W0.copy()]
  for _ in range(STEPS):
    w = w - eta * grad(w)  # W <- W - eta g
    want.append(w)
  got, _ = run_optax(config(name="sgd", learning_rate=eta))
  assert_trajectory(got, want)


def test_momentum_matches_the_course():
  eta, beta = 0.1, 0.9
  w, a, want = W0.copy(), np.zeros(3), [W0.copy()]
  for _ in range(STEPS):
    a = beta * a + grad(w)  # a <- beta a + g
    w = w - eta * a  # W <- W - eta a
    want.append(w)
  got, _ = run_optax(config(name="momentum", learning_rate=eta, momentum=beta))
  assert_trajectory(got, want)


def test_momentum_matches_the_courses_other_form():
  # The course's second form, m <- lambda m - eta g; theta <- theta + m, gives
  # the same iterates for fixed eta.
  eta, lam = 0.1, 0.9
  w, m, want = W0.copy(), np.zeros(3), [W0.copy()]
  for _ in range(STEPS):
    m = lam * m - eta * grad(w)
    w = w + m
    want.append(w)
  got, _ = run_optax(config(name="momentum", learning_rate=eta, momentum=lam))
  assert_trajectory(got, want)


def nesterov_course(eta, beta, steps):
  """The course's lookahead recursion (docs/curriculum.md#c1); returns W_t and a_t."""
  w, a = W0.copy(), np.zeros(3)
  ws, accs = [w], [a]
  for _ in range(steps):
    a = beta * a + grad(w - eta * beta * a)  # lookahead gradient
    w = w - eta * a
    ws.append(w)
    accs.append(a)
  return ws, accs


def test_nesterov_is_lookahead_form_reparameterised():
  # Let theta_t = W_t - eta beta a_t (the lookahead point). From the course's rule,
  #   theta_{t+1} = W_t - eta a_{t+1} - eta beta a_{t+1}
  #              = theta_t - eta ((1 + beta) a_{t+1} - beta a_t)
  #              = theta_t - eta (g_t + beta a_{t+1}),  g_t = grad L(theta_t),
  # using a_{t+1} = beta a_t + g_t. That is optax's nesterov update with
  # trace = a, evaluated at theta, so optax's params are exactly theta_t.
  eta, beta = 0.1, 0.9
  ws, accs = nesterov_course(eta, beta, steps=4)
  want = [w - eta * beta * a for w, a in zip(ws, accs)]
  got, state = run_optax(config(name="nesterov", learning_rate=eta, momentum=beta), steps=4)
  assert_trajectory(got, want)
  np.testing.assert_allclose(optax.tree.get(state, "trace"), accs[-1], rtol=1e-12)


def test_nesterov_differs_from_plain_momentum():
  cfg = dict(learning_rate=0.1, momentum=0.9)
  nesterov, _ = run_optax(config(name="nesterov", **cfg))
  momentum, _ = run_optax(config(name="momentum", **cfg))
  assert not np.allclose(nesterov[-1], momentum[-1])


@pytest.mark.parametrize("g0", [0.0, 0.1])
def test_adagrad_standard_sqrt_form(g0):
  # The course's formula eta / (G + eps) lacks the sqrt (typo); the standard rule:
  # G <- G + g^2; W <- W - eta g / sqrt(G + eps).
  eta, eps = 0.5, 1e-2  # eps large enough that its placement shows
  w, big_g, want = W0.copy(), np.full(3, g0), [W0.copy()]
  for _ in range(STEPS):
    g = grad(w)
    big_g = big_g + g**2
    w = w - eta / np.sqrt(big_g + eps) * g
    want.append(w)
  got, _ = run_optax(config(name="adagrad", learning_rate=eta, eps=eps, initial_accumulator=g0))
  assert_trajectory(got, want)


def test_adadelta_matches_the_course_with_plus_sign():
  # The course's "- (1-gamma)" in both EMAs is a typo for "+ (1-gamma)".
  gamma, eps = 0.9, 1e-3
  w, big_g, big_h, want = W0.copy(), np.zeros(3), np.zeros(3), [W0.copy()]
  for _ in range(STEPS):
    g = grad(w)
    big_g = gamma * big_g + (1 - gamma) * g**2
    dw = np.sqrt(big_h + eps) / np.sqrt(big_g + eps) * g
    big_h = gamma * big_h + (1 - gamma) * dw**2
    w = w - dw
    want.append(w)
  # learning_rate=1 gives the pure rule; optax scales dw by it.
  got, _ = run_optax(config(name="adadelta", learning_rate=1.0, decay=gamma, eps=eps))
  assert_trajectory(got, want)


def test_rmsprop_matches_the_course_eps_in_sqrt():
  eta, gamma, eps = 0.1, 0.9, 1e-2
  w, big_g, want = W0.copy(), np.zeros(3), [W0.copy()]
  for _ in range(STEPS):
    g = grad(w)
    big_g = gamma * big_g + (1 - gamma) * g**2
    w = w - eta / np.sqrt(big_g + eps) * g
    want.append(w)
  got, _ = run_optax(config(name="rmsprop", learning_rate=eta, decay=gamma, eps=eps))
  assert_trajectory(got, want)


def test_adam_matches_the_course_at_zero_eps():
  # The course: W <- W - eta / sqrt(v + eps) * sqrt(1-b2^t) / (1-b1^t) * m.
  # With eps=0 this equals optax's m_hat / (sqrt(v_hat) + eps) exactly.
  eta, b1, b2 = 0.1, 0.9, 0.999
  w, m, v, want = W0.copy(), np.zeros(3), np.zeros(3), [W0.copy()]
  for t in range(1, STEPS + 1):
    g = grad(w)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    w = w - eta / np.sqrt(v) * math.sqrt(1 - b2**t) / (1 - b1**t) * m
    want.append(w)
  got, _ = run_optax(config(name="adam", learning_rate=eta, b1=b1, b2=b2, eps=0.0))
  assert_trajectory(got, want)


def adam_reference(eta, b1, b2, eps, wd, steps=STEPS):
  """Standard Adam (eps outside the sqrt) with decoupled weight decay wd."""
  w, m, v, ws = W0.copy(), np.zeros(3), np.zeros(3), [W0.copy()]
  for t in range(1, steps + 1):
    g = grad(w)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    w = w - eta * (m_hat / (np.sqrt(v_hat) + eps) + wd * w)
    ws.append(w)
  return ws


def test_adam_eps_outside_sqrt():
  cfg = dict(learning_rate=0.1, b1=0.8, b2=0.99, eps=0.1)
  got, _ = run_optax(config(name="adam", **cfg))
  assert_trajectory(got, adam_reference(0.1, 0.8, 0.99, 0.1, wd=0.0))


def test_adamw_decoupled_weight_decay():
  got, _ = run_optax(config(name="adamw", learning_rate=0.1, eps=1e-8, weight_decay=0.1))
  assert_trajectory(got, adam_reference(0.1, 0.9, 0.999, 1e-8, wd=0.1))


def test_adam_weight_decay_is_l2_not_decoupled():
  # For adam, wd enters the gradient, so it is rescaled by 1/sqrt(v_hat).
  got, _ = run_optax(config(name="adam", learning_rate=0.1, weight_decay=0.1))
  decoupled = adam_reference(0.1, 0.9, 0.999, 1e-8, wd=0.1)
  assert not np.allclose(got[-1], decoupled[-1])


def test_sgd_weight_decay_adds_l2_gradient():
  eta, wd = 0.1, 0.05
  w, want = W0.copy(), [W0.copy()]
  for _ in range(STEPS):
    w = w - eta * (grad(w) + wd * w)
    want.append(w)
  got, _ = run_optax(config(name="sgd", learning_rate=eta, weight_decay=wd))
  assert_trajectory(got, want)


def test_momentum_weight_decay_enters_the_trace():
  eta, beta, wd = 0.1, 0.9, 0.05
  w, a, want = W0.copy(), np.zeros(3), [W0.copy()]
  for _ in range(STEPS):
    a = beta * a + grad(w) + wd * w
    w = w - eta * a
    want.append(w)
  got, _ = run_optax(config(name="momentum", learning_rate=eta, momentum=beta, weight_decay=wd))
  assert_trajectory(got, want)


# -------------------------------------------------------------- clipping


def test_grad_clip_scales_global_norm_to_limit():
  # Global norm over both leaves: sqrt(6^2 + 8^2) = 10; clipped to 1.
  opt = optim.create_optimizer(config(name="sgd", learning_rate=0.5, grad_clip_norm=1.0), 10)
  params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
  grads = {"a": jnp.array([6.0, 0.0]), "b": jnp.array([8.0])}
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(updates["a"], [-0.5 * 0.6, 0.0], rtol=1e-12)
  np.testing.assert_allclose(updates["b"], [-0.5 * 0.8], rtol=1e-12)


def test_grad_clip_leaves_small_gradients_alone():
  opt = optim.create_optimizer(config(name="sgd", learning_rate=0.5, grad_clip_norm=20.0), 10)
  grads = jnp.array([6.0, 8.0])
  updates, _ = opt.update(grads, opt.init(grads), grads)
  np.testing.assert_allclose(updates, [-3.0, -4.0], rtol=1e-12)


def test_grad_clip_comes_before_weight_decay():
  # Clip the raw gradient, then add wd * W: -eta (g / 10 + wd W).
  opt = optim.create_optimizer(
    config(name="sgd", learning_rate=1.0, grad_clip_norm=1.0, weight_decay=0.5), 10
  )
  params, grads = jnp.array([2.0, 2.0]), jnp.array([6.0, 8.0])
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(updates, [-(0.6 + 1.0), -(0.8 + 1.0)], rtol=1e-12)


# ------------------------------------------------------------- schedules


def closed_form_lr(
  s, lr, schedule, warmup=0, decay_steps=0, decay_rate=0.1, staircase=True, floor=0.0, total=0
):
  """The learning rate at step s, from the formulas in the optim docstring."""
  if s < warmup:
    return lr * s / warmup
  s -= warmup
  if schedule == "constant":
    return lr
  if schedule == "step":
    return lr * decay_rate ** (s // decay_steps if staircase else s / decay_steps)
  if schedule == "exponential":
    return lr * decay_rate ** (s / decay_steps)
  length = decay_steps or total - warmup
  return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, length) / length)))


def check_schedule(total, steps, **fields):
  cfg = config(learning_rate=0.5, **fields)
  sched = optim.create_schedule(cfg, total)
  kwargs = dict(
    lr=0.5,
    schedule=cfg.schedule,
    warmup=cfg.warmup_steps,
    decay_steps=cfg.decay_steps,
    decay_rate=cfg.decay_rate,
    staircase=cfg.staircase,
    floor=cfg.min_learning_rate_factor,
    total=total,
  )
  for s in steps:
    np.testing.assert_allclose(
      float(sched(s)), closed_form_lr(s, **kwargs), rtol=1e-12, atol=1e-15, err_msg=f"step {s}"
    )


def test_constant_schedule():
  check_schedule(100, [0, 1, 50, 1000], schedule="constant")


def test_step_schedule_staircase():
  check_schedule(100, [0, 9, 10, 19, 20, 35], schedule="step", decay_steps=10)
  sched = optim.create_schedule(config(learning_rate=0.5, schedule="step", decay_steps=10), 100)
  np.testing.assert_allclose([float(sched(s)) for s in (9, 10, 25)], [0.5, 0.05, 0.005], rtol=1e-12)


def test_step_schedule_without_staircase():
  check_schedule(100, [0, 5, 10, 15], schedule="step", decay_steps=10, staircase=False)


def test_exponential_schedule():
  check_schedule(100, [0, 1, 7, 20, 33], schedule="exponential", decay_steps=20, decay_rate=0.5)
  sched = optim.create_schedule(
    config(learning_rate=0.5, schedule="exponential", decay_steps=20, decay_rate=0.5), 100
  )
  np.testing.assert_allclose(float(sched(10)), 0.5 * 0.5**0.5, rtol=1e-12)


def test_cosine_schedule_over_total_steps():
  check_schedule(100, [0, 25, 50, 75, 100, 150], schedule="cosine")
  sched = optim.create_schedule(config(learning_rate=0.5, schedule="cosine"), 100)
  np.testing.assert_allclose(
    [float(sched(s)) for s in (0, 50, 100, 200)], [0.5, 0.25, 0.0, 0.0], atol=1e-15
  )


def test_cosine_schedule_floor_and_explicit_length():
  check_schedule(
    100, [0, 10, 20, 40, 99], schedule="cosine", decay_steps=40, min_learning_rate_factor=0.1
  )
  sched = optim.create_schedule(
    config(learning_rate=0.5, schedule="cosine", decay_steps=40, min_learning_rate_factor=0.1), 100
  )
  np.testing.assert_allclose(float(sched(60)), 0.05, rtol=1e-12)


@pytest.mark.parametrize(
  "fields",
  [
    dict(schedule="constant"),
    dict(schedule="step", decay_steps=10),
    dict(schedule="exponential", decay_steps=10, decay_rate=0.5),
    dict(schedule="cosine"),
    dict(schedule="cosine", decay_steps=30, min_learning_rate_factor=0.2),
  ],
  ids=["constant", "step", "exponential", "cosine", "cosine_floor"],
)
def test_warmup_then_schedule(fields):
  check_schedule(110, [0, 1, 5, 9, 10, 11, 25, 60, 110, 200], warmup_steps=10, **fields)
  # Linear from 0; the schedule proper starts at lr when warmup ends.
  sched = optim.create_schedule(config(learning_rate=0.5, warmup_steps=10, **fields), 110)
  np.testing.assert_allclose([float(sched(s)) for s in (0, 4, 10)], [0.0, 0.2, 0.5], rtol=1e-12)


def test_optimizer_follows_schedule():
  # SGD with a step schedule: update at step t is -lr(t) g.
  opt = optim.create_optimizer(
    config(name="sgd", learning_rate=1.0, schedule="step", decay_steps=2, decay_rate=0.5), 10
  )
  params = jnp.zeros(1)
  state = opt.init(params)
  got = []
  for _ in range(5):
    updates, state = opt.update(jnp.ones(1), state, params)
    got.append(float(updates[0]))
  np.testing.assert_allclose(got, [-1, -1, -0.5, -0.5, -0.25], rtol=1e-12)


# ----------------------------------------------------------- config, errors


def test_default_config_has_every_field():
  assert set(optim.default_config().keys()) == {
    "name",
    "learning_rate",
    "momentum",
    "b1",
    "mu_dtype",
    "b2",
    "eps",
    "decay",
    "initial_accumulator",
    "weight_decay",
    "grad_clip_norm",
    "schedule",
    "warmup_steps",
    "decay_steps",
    "decay_rate",
    "staircase",
    "min_learning_rate_factor",
    "l1_penalty",
    "ema_decay",
  }


def test_l1_penalty_adds_sign_of_weights_to_the_gradient():
  # SGD with an L1 term: w <- w - eta (g + lambda sign(w)), the subgradient of the loss
  # plus lambda * sum |w|.
  cfg = config(name="sgd", learning_rate=0.1, l1_penalty=0.5)
  opt = optim.create_optimizer(cfg, total_steps=10)
  w = jnp.array([2.0, -3.0, 0.5])
  g = jnp.array([0.1, 0.2, -0.3])
  updates, _ = opt.update(g, opt.init(w), w)
  np.testing.assert_allclose(w + updates, w - 0.1 * (g + 0.5 * np.sign(w)), rtol=1e-6)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_runs_jitted_with_all_features(name):
  cfg = config(name=name, schedule="cosine", warmup_steps=2, grad_clip_norm=1.0, weight_decay=1e-3)
  opt = optim.create_optimizer(cfg, total_steps=10)
  params = {"w": jnp.asarray(W0)}
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    grads = {"w": H * params["w"] - C}
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(3):
    params, state = step(params, state)
  assert np.all(np.isfinite(params["w"]))
  # Adadelta at lr=1e-3, eps=1e-8 barely moves, so just check it moved.
  assert np.any(np.asarray(params["w"]) != W0)


@pytest.mark.parametrize(
  "fields, total, words",
  [
    (dict(name="adamx"), 10, ["'adamx'", "sgd, momentum, nesterov", "adamw"]),
    (dict(schedule="linear"), 10, ["'linear'", "constant, step", "cosine"]),
    (dict(learning_rate=-0.1), 10, ["learning_rate=-0.1"]),
    (dict(learning_rate=float("nan")), 10, ["learning_rate=nan"]),
    (dict(weight_decay=-1.0), 10, ["weight_decay=-1.0"]),
    (dict(grad_clip_norm=-1.0), 10, ["grad_clip_norm=-1.0"]),
    (dict(eps=-1e-8), 10, ["eps=-1e-08"]),
    (dict(name="momentum", momentum=1.0), 10, ["momentum=1.0"]),
    (dict(name="rmsprop", decay=1.5), 10, ["decay=1.5"]),
    (dict(b2=1.0), 10, ["b2=1.0"]),
    (dict(name="adagrad", initial_accumulator=-1.0), 10, ["initial_accumulator=-1.0"]),
    (dict(warmup_steps=-1), 10, ["warmup_steps=-1"]),
    (dict(schedule="step"), 10, ["'step'", "decay_steps"]),
    (dict(schedule="exponential", decay_steps=5, decay_rate=0.0), 10, ["decay_rate=0.0"]),
    (dict(schedule="cosine", warmup_steps=10), 10, ["cosine", "total_steps"]),
    (dict(schedule="cosine", min_learning_rate_factor=2.0), 10, ["min_learning_rate_factor=2.0"]),
    (dict(), -1, ["total_steps=-1"]),
  ],
)
def test_bad_config_raises_value_error(fields, total, words):
  with pytest.raises(ValueError) as info:
    optim.create_optimizer(config(**fields), total)
  message = str(info.value)
  for word in words:
    assert word in message
  assert message.count(". ") == 0, "expected one sentence"


def test_create_schedule_rejects_bad_name_directly():
  with pytest.raises(ValueError, match="unknown schedule 'warm'"):
    optim.create_schedule(config(schedule="warm"), 10)
