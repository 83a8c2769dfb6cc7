"""Rosenblatt's perceptron (docs/curriculum.md#f1): its learning rule as a custom train
step (no gradient) driven by an optax transformation that counts the updates in its
state, the perceptron criterion as the loss, and the convergence report.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import errors
from dlx.data import core
from dlx.models import perceptron as perceptron_lib
from dlx.tasks.classic import common
from dlx.training import parallel
from dlx.training import warm_start


def update_rule(learning_rate: float) -> optax.GradientTransformation:
  """The perceptron's update as an optax transformation: it scales the rule's direction
  sum (y - y_hat) x by the learning rate and counts, in its state, the steps that changed
  the parameters ('updates') and the last of them ('last_update', -1 before any)."""

  def init(params):
    del params
    zero = jnp.zeros((), jnp.int32)
    return {"steps": zero, "updates": zero, "last_update": zero - 1}

  def update(direction, state, params=None):
    del params
    changed = jnp.any(jnp.stack([jnp.any(d != 0) for d in jax.tree.leaves(direction)]))
    new_state = {
      "steps": state["steps"] + 1,
      "updates": state["updates"] + changed.astype(jnp.int32),
      "last_update": jnp.where(changed, state["steps"], state["last_update"]),
    }
    return jax.tree.map(lambda d: learning_rate * d, direction), new_state

  return optax.GradientTransformation(init, update)


def loss(scores, batch):
  """The perceptron criterion max(0, -t s) with t = +-1 (0 when a point is on the right
  side; what the rule decreases), and the accuracy of step(s)."""
  labels = batch["targets"]
  signs = 2.0 * labels - 1.0
  return {
    "loss": jnp.maximum(0.0, -signs * scores),
    "accuracy": (perceptron_lib.step(scores) == labels).astype(jnp.float32),
  }


def make_train_step(model, optimizer, config, *, axis_name=None, teacher=None):
  """Rosenblatt's rule, no gradient: w += lr * sum (y - y_hat) x and b += lr * sum
  (y - y_hat) over the batch (batch 1: the classic online rule, which changes the
  parameters only on a mistake). The model is dlx.models.perceptron.Perceptron."""
  del config
  if teacher is not None:
    raise errors.ConfigError("the perceptron reads no teacher; unset --config.teacher")

  def train_step(state, batch):
    inputs = batch["inputs"].reshape((batch["inputs"].shape[0], -1))
    scores = model.apply({"params": state.params}, inputs)
    error = (batch["targets"] - perceptron_lib.step(scores)).astype(inputs.dtype)
    direction = parallel.sum_over_devices(
      {"weights": inputs.T @ error, "bias": jnp.sum(error)}, axis_name
    )
    updates, opt_state = optimizer.update(direction, state.opt_state, state.params)
    values = {**loss(scores, batch), "mistakes": (error != 0).astype(jnp.float32)}
    metrics = parallel.mean_over_devices({k: jnp.mean(v) for k, v in values.items()}, axis_name)
    new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state
    )
    return new_state, metrics

  return train_step


def final_report(ctx):
  """Updates made, the epoch of the last one, and whether the rule converged (every
  training point on the right side); the rule's counters come from the run's final
  checkpoint (they live in the optimizer state, not in the model)."""
  state, _ = warm_start.restore_state(f"{ctx.workdir}:latest", "workdir")
  counters = {k: int(v) for k, v in state["opt_state"].items()}
  train = ctx.dataset.train
  scores = common.split_outputs(ctx, train)
  train_accuracy = float(np.mean(np.asarray(perceptron_lib.step(scores)) == train["targets"]))
  per_epoch = core.num_examples(train) // ctx.config.batch_size
  converged = train_accuracy == 1.0
  return {
    "train_accuracy": train_accuracy,
    "converged": converged,
    "updates": counters["updates"],
    "steps": counters["steps"],
    "steps_per_epoch": per_epoch,
    "epochs_run": counters["steps"] / per_epoch,
    # The epoch (1-based) of the last update: from then on no point moved the weights.
    "epochs_to_convergence": counters["last_update"] // per_epoch + 1 if converged else None,
    "weights": np.asarray(ctx.variables["params"]["weights"]).tolist(),
    "bias": float(ctx.variables["params"]["bias"]),
  }
