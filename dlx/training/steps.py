"""Train and eval steps: pure functions (state, batch) -> (state, metrics) for jax.jit.

The generic step serves every experiment whose training is "minimise the batch mean of
`loss(model(inputs), batch)['loss']`" (classification, regression, VAE, diffusion,
distillation). An experiment with several players supplies its own step (see
dlx/tasks/adversarial.py).
"""

import jax
import jax.numpy as jnp
import optax

from dlx.training import parallel


def step_rngs(state, axis_name=None):
  """Named rng streams for this step: fold the step in (big_vision style), and under
  pmap the device index, so every step and every device draws fresh randomness."""
  rng = jax.random.fold_in(state.rng, state.step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
  dropout, sample = jax.random.split(rng)
  return {"dropout": dropout, "sample": sample}


def apply_model(model, state, params, inputs, *, train: bool, rngs):
  """Runs the model; in training, collections such as batch_stats are updated."""
  variables = state.variables(params)
  mutable = list(state.model_state) if train else False
  if mutable:
    outputs, new_model_state = model.apply(
      variables, inputs, train=True, rngs=rngs, mutable=mutable
    )
    return outputs, dict(new_model_state)
  return model.apply(variables, inputs, train=train, rngs=rngs), state.model_state


def per_example(values, batch_size):
  """Reduces each metric to one value per example (mean over any trailing axes)."""
  return {k: jnp.mean(jnp.reshape(v, (batch_size, -1)), axis=1) for k, v in values.items()}


def add_weight_noise(rng, params, stddev: float):
  """params + N(0, stddev^2) on every leaf (weight noise, docs/curriculum.md#d3).

  Use it for the forward pass only: take the loss and its gradient at the noisy
  params and apply that gradient to the clean params, as `make_train_step(weight_noise=s)`
  does."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(rng, len(leaves))
  noisy = [x + stddev * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, noisy)


def with_teacher(batch, state, teacher):
  """`batch` plus 'teacher_outputs', the frozen teacher's outputs on its inputs (a
  `dlx.experiment.FrozenModel` whose variables are `state.frozen['teacher']`)."""
  if teacher is None:
    return batch
  return {
    **batch,
    "teacher_outputs": teacher.apply(batch["inputs"], variables=state.frozen["teacher"]),
  }


def make_train_step(
  model,
  optimizer,
  loss_fn,
  axis_name=None,
  *,
  augment=None,
  weight_noise: float = 0.0,
  teacher=None,
):
  """The generic supervised step.

  augment: optional fn(rng, batch) -> batch run first, inside the compiled step (random
    flips, crops, mixup...), with a key derived from (seed, step), so a resumed run draws
    the same augmentations.
  weight_noise: stddev of Gaussian noise added to the weights for the forward/backward
    pass only; the gradient taken at the noisy weights updates the clean ones.
  teacher: a frozen model whose outputs on the (augmented) inputs the loss reads as
    batch['teacher_outputs'] (distillation).
  """

  def train_step(state, batch):
    rngs = step_rngs(state, axis_name)
    # Extra streams come from fold_in, so adding them leaves dropout/sample draws as before.
    if augment is not None:
      batch = augment(jax.random.fold_in(rngs["sample"], 1), batch)
    batch = with_teacher(batch, state, teacher)
    batch_size = jax.tree.leaves(batch)[0].shape[0]

    def objective(params):
      outputs, model_state = apply_model(
        model, state, params, batch["inputs"], train=True, rngs=rngs
      )
      values = per_example(loss_fn(outputs, batch), batch_size)
      metrics = {k: jnp.mean(v) for k, v in values.items()}
      return metrics["loss"], (metrics, model_state)

    forward_params = state.params
    if weight_noise:
      forward_params = add_weight_noise(
        jax.random.fold_in(rngs["sample"], 2), state.params, weight_noise
      )
    grads, (metrics, model_state) = jax.grad(objective, has_aux=True)(forward_params)
    grads, metrics, model_state = parallel.mean_over_devices(
      (grads, metrics, model_state), axis_name
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["grad_norm"] = optax.global_norm(grads)
    new_state = state.replace(
      step=state.step + 1, params=params, opt_state=opt_state, model_state=model_state
    )
    return new_state, metrics

  return train_step


def make_eval_step(model, loss_fn, axis_name=None, *, teacher=None):
  """Sums of per-example metrics over the real (mask = 1) rows, and their count."""

  def eval_step(state, batch, rng):
    sample, dropout = jax.random.split(rng)
    mask = batch["mask"]
    batch = with_teacher(batch, state, teacher)
    outputs, _ = apply_model(
      model,
      state,
      state.params,
      batch["inputs"],
      train=False,
      rngs={"sample": sample, "dropout": dropout},
    )
    values = per_example(loss_fn(outputs, batch), mask.shape[0])
    sums = {k: jnp.sum(v * mask) for k, v in values.items()}
    return parallel.sum_over_devices((sums, jnp.sum(mask)), axis_name)

  return eval_step
