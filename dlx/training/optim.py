"""Optimizers and learning-rate schedules built from a ConfigDict.

Update rules of docs/curriculum.md#c1 (g: gradient, eta: learning rate at this
step, all ops elementwise, state starts at zero; `weight_decay` > 0 replaces g
by g + wd * W for every rule except adamw, and `grad_clip_norm` > 0 clips g by
global norm before that):

=========  ==================================================================
name       update
=========  ==================================================================
sgd        W <- W - eta g
momentum   a <- beta a + g;  W <- W - eta a
nesterov   a <- beta a + g;  W <- W - eta (g + beta a)   (g taken at W; this
           is the course's lookahead form, W_optax = W_course - eta beta a)
adagrad    G <- G + g^2;  W <- W - eta g / sqrt(G + eps)
adadelta   G <- rho G + (1-rho) g^2;  d = sqrt(H + eps) / sqrt(G + eps) g;
           H <- rho H + (1-rho) d^2;  W <- W - eta d   (eta = 1: pure rule)
rmsprop    G <- rho G + (1-rho) g^2;  W <- W - eta g / sqrt(G + eps)
adam       m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
           W <- W - eta m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1-b1^t),
           v_hat = v / (1-b2^t)
adamw      W <- W - eta (m_hat / (sqrt(v_hat) + eps) + wd W)
           (mu_dtype='bfloat16' stores m in bfloat16, big_vision's practice; v and W
           stay float32)
=========  ==================================================================

`ema_decay` > 0 also keeps an exponential moving average of the weights after each
update, E <- d_n E + (1 - d_n) W with d_n = min(ema_decay, (1 + n) / (10 + n)) at the
n-th update (n = 0, 1, ...; E starts at the initial W); the warm-up keeps E from
remembering the random initialisation in a short run. It lives in the optimizer state,
so checkpoints save and resume it; `ema_params(opt_state)` returns it (sample from it:
diffusion models, GANs). It does not change the updates.

Schedules (s: step, lr: `learning_rate`, after `warmup_steps` of linear warmup
from 0 to lr; s counts from the end of warmup):

* constant: lr
* step: lr * decay_rate ** floor(s / decay_steps)  (no floor if not staircase)
* exponential: lr * decay_rate ** (s / decay_steps)
* cosine: lr * (f + (1-f) (1 + cos(pi min(s, T) / T)) / 2), with
  f = min_learning_rate_factor and T = decay_steps or total - warmup steps.
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dlx import errors

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw")
MU_DTYPES = ("", "float32", "bfloat16")  # Adam's first moment; "" = the parameters' dtype
SCHEDULES = ("constant", "step", "exponential", "cosine")


def default_config() -> ml_collections.ConfigDict:
  """Every field any optimizer or schedule reads, with its default."""
  config = ml_collections.ConfigDict()
  config.name = "adam"
  config.learning_rate = 1e-3
  config.momentum = 0.9  # momentum / nesterov beta
  config.b1 = 0.9
  config.b2 = 0.999
  config.eps = 1e-8
  config.mu_dtype = ""  # adam/adamw first moment: "" (float32) or bfloat16 (big_vision)
  config.decay = 0.9  # rmsprop / adadelta rho
  config.initial_accumulator = 0.0  # adagrad
  config.weight_decay = 0.0  # adamw: decoupled; others: L2 on the gradient
  config.grad_clip_norm = 0.0  # 0 = off
  config.l1_penalty = 0.0  # strength of an L1 term (lambda * sum |w|) added to the loss; 0 = off
  config.schedule = "constant"
  config.warmup_steps = 0
  config.decay_steps = 0
  config.decay_rate = 0.1
  config.staircase = True  # step schedule only
  config.min_learning_rate_factor = 0.0  # cosine floor, fraction of lr
  config.ema_decay = 0.0  # EMA of the weights kept in the optimizer state; 0 = off
  return config


def _fail(message: str):
  raise errors.ConfigError(message)


def _check_range(config, field, low, high=math.inf, *, low_open=False, high_open=False):
  """Raises unless config[field] lies in the range (strict at open ends)."""
  value = config[field]
  ok_low = value > low if low_open else value >= low
  ok_high = value < high if high_open else value <= high
  if not (ok_low and ok_high):  # also rejects NaN
    left = "(" if low_open else "["
    right = ")" if high_open or high == math.inf else "]"
    _fail(
      f"optimizer.{field}={value!r} is out of range; it must lie in {left}{low}, {high}{right}."
    )


def _check_choice(value, choices, what):
  if value not in choices:
    _fail(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}.")


def create_schedule(config, total_steps: int) -> optax.Schedule:
  """Maps a step count to the learning rate described by `config`."""
  _check_choice(config.schedule, SCHEDULES, "schedule")
  _check_range(config, "learning_rate", 0.0)
  _check_range(config, "warmup_steps", 0)
  _check_range(config, "decay_steps", 0)
  if total_steps < 0:
    _fail(f"total_steps={total_steps!r} is negative; it must be >= 0.")
  lr = config.learning_rate
  warmup = config.warmup_steps
  name = config.schedule

  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name in ("step", "exponential"):
    if config.decay_steps <= 0:
      _fail(f"schedule {name!r} needs optimizer.decay_steps > 0, got {config.decay_steps!r}.")
    _check_range(config, "decay_rate", 0.0, low_open=True)
    main = optax.exponential_decay(
      init_value=lr,
      transition_steps=config.decay_steps,
      decay_rate=config.decay_rate,
      staircase=bool(config.staircase) if name == "step" else False,
    )
  else:  # cosine
    _check_range(config, "min_learning_rate_factor", 0.0, 1.0)
    length = config.decay_steps or total_steps - warmup
    if length <= 0:
      _fail(
        f"cosine schedule has no steps left to decay over: "
        f"decay_steps={config.decay_steps}, total_steps={total_steps}, "
        f"warmup_steps={warmup}; set decay_steps > 0 or total_steps > "
        f"warmup_steps."
      )
    main = optax.cosine_decay_schedule(
      init_value=lr, decay_steps=length, alpha=config.min_learning_rate_factor
    )

  if warmup == 0:
    return main
  # The main schedule sees steps counted from the end of warmup.
  ramp = optax.linear_schedule(0.0, lr, transition_steps=warmup)
  return optax.join_schedules([ramp, main], boundaries=[warmup])


def _update_rule(config, lr) -> optax.GradientTransformation:
  """The bare update rule, without clipping or L2 weight decay."""
  name = config.name
  if name == "sgd":
    return optax.sgd(lr)
  if name in ("momentum", "nesterov"):
    _check_range(config, "momentum", 0.0, 1.0, high_open=True)
    return optax.sgd(lr, momentum=config.momentum, nesterov=name == "nesterov")
  if name == "adagrad":
    _check_range(config, "initial_accumulator", 0.0)
    return optax.adagrad(lr, initial_accumulator_value=config.initial_accumulator, eps=config.eps)
  if name == "adadelta":
    _check_range(config, "decay", 0.0, 1.0, high_open=True)
    return optax.adadelta(lr, rho=config.decay, eps=config.eps)
  if name == "rmsprop":
    _check_range(config, "decay", 0.0, 1.0, high_open=True)
    # eps inside the sqrt, as in the course (docs/curriculum.md#c1); optax's
    # default, torch differs.
    return optax.rmsprop(lr, decay=config.decay, eps=config.eps, eps_in_sqrt=True)
  _check_range(config, "b1", 0.0, 1.0, high_open=True)
  _check_range(config, "b2", 0.0, 1.0, high_open=True)
  mu_dtype = config.get("mu_dtype", "") or None
  _check_choice(mu_dtype or "", MU_DTYPES, "optimizer.mu_dtype")
  if name == "adam":
    return optax.adam(lr, b1=config.b1, b2=config.b2, eps=config.eps, mu_dtype=mu_dtype)
  return optax.adamw(
    lr,
    b1=config.b1,
    b2=config.b2,
    eps=config.eps,
    weight_decay=config.weight_decay,
    mu_dtype=mu_dtype,
  )


class EmaParamsState(NamedTuple):
  """The state of `ema_of_params`: updates seen and the average of the weights."""

  count: jax.Array
  ema: Any


def ema_of_params(decay: float) -> optax.GradientTransformation:
  """Leaves the updates alone and averages the weights they lead to (see the module
  docstring for the rule); chain it last, so `updates` are the final ones."""

  def init(params):
    return EmaParamsState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.array, params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("ema_of_params needs the parameters: call update(g, state, params)")
    n = state.count.astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + n) / (10.0 + n))
    new_params = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, w: (d * e + (1.0 - d) * w).astype(e.dtype), state.ema, new_params)
    return updates, EmaParamsState(state.count + 1, ema)

  return optax.GradientTransformation(init, update)


def ema_params(opt_state):
  """The weights' EMA kept in `opt_state` (live, or as dlx.training.warm_start.restore_state returns
  it: nested dicts), or None when the optimizer keeps none."""
  if isinstance(opt_state, EmaParamsState):
    return opt_state.ema
  if isinstance(opt_state, dict) and set(opt_state) == set(EmaParamsState._fields):
    return opt_state["ema"]
  if isinstance(opt_state, dict):
    children = opt_state.values()
  elif isinstance(opt_state, (tuple, list)):  # optax's states are NamedTuples
    children = opt_state
  else:
    return None
  for child in children:
    found = ema_params(child)
    if found is not None:
      return found
  return None


def create_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """Clip -> L2 weight decay -> update rule, with the configured schedule."""
  _check_choice(config.name, OPTIMIZERS, "optimizer")
  _check_range(config, "eps", 0.0)
  _check_range(config, "weight_decay", 0.0)
  _check_range(config, "grad_clip_norm", 0.0)
  _check_range(config, "l1_penalty", 0.0)
  ema_decay = config.get("ema_decay", 0.0)
  if ema_decay:
    _check_range(config, "ema_decay", 0.0, 1.0, high_open=True)
  if config.get("mu_dtype", "") and config.name not in ("adam", "adamw"):
    _fail(
      f"optimizer.mu_dtype={config.mu_dtype!r} is Adam's first-moment dtype; "
      f"optimizer {config.name!r} has none (use adam or adamw, or drop the flag)"
    )
  lr = create_schedule(config, total_steps)
  parts = []
  if config.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  # adamw decays the weights itself (decoupled); the rest get L2 via g.
  if config.weight_decay > 0 and config.name != "adamw":
    parts.append(optax.add_decayed_weights(config.weight_decay))
  if config.l1_penalty > 0:
    # Imported here: dlx.losses imports this module's errors, not the other way round.
    from dlx import losses  # pylint: disable=g-import-not-at-top

    parts.append(losses.penalty_transform("l1", config.l1_penalty))
  parts.append(_update_rule(config, lr))
  if ema_decay:
    parts.append(ema_of_params(ema_decay))
  return optax.chain(*parts)
