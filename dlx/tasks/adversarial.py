"""Two-player training (docs/curriculum.md#f19, #b9): the WGAN-GP step (Gulrajani et
al., 2017), or the original WGAN's weight clipping.

One trainer step = `critic_steps` critic updates (each on its own slice of the batch,
with the gradient penalty) followed by one generator update. Both players live in one
parameter tree {'generator': ..., 'critic': ...} with one optimizer each, so Adam's
moments of one player never move while the other trains.
"""

import jax
import jax.numpy as jnp
import optax

from dlx import errors
from dlx import losses
from dlx import optim
from dlx import parallel
from dlx import steps


def make_optimizers(config, total_steps):
  """The same optimizer config for both players, kept as separate optimizer states."""
  return {
    "generator": optim.create_optimizer(config.optimizer, total_steps),
    "critic": optim.create_optimizer(config.optimizer, total_steps),
  }


def wgan_loss(outputs, batch):
  """Per-example evaluation: the critic loss and the critic's Wasserstein estimate
  f(x) - f(G(z)), whose mean over the split estimates the Wasserstein-1 distance."""
  del batch
  real, fake = outputs["real_scores"], outputs["fake_scores"]
  return {"loss": losses.wgan_critic_loss(real, fake), "wasserstein": real - fake}


def make_wgan_gp_step(model, optimizer, config, axis_name=None, teacher=None):
  """A step for a model with `generate(z)` and `score(x)` methods and `latent_dim`
  (the protocol's `make_train_step`; a WGAN reads no teacher)."""
  if teacher is not None:
    raise errors.ConfigError("the WGAN step reads no teacher; unset --config.teacher")
  critic_steps, penalty_weight = config.critic_steps, config.gradient_penalty_weight
  # The original WGAN (Arjovsky et al., 2017) clips the critic's weights instead of the
  # penalty: set weight_clip (e.g. 0.01) and gradient_penalty_weight=0.
  weight_clip = config.get("weight_clip", 0.0)

  def generate(params, z):
    return model.apply({"params": params}, z, method="generate")

  def score(params, x):
    return model.apply({"params": params}, x, method="score")

  def latent(rng, n):
    return jax.random.normal(rng, (n, model.latent_dim))

  def critic_update(carry, inputs):
    critic_params, opt_state, generator_params = carry
    real, rng = inputs
    z_rng, penalty_rng = jax.random.split(rng)
    fake = jax.lax.stop_gradient(
      generate(
        {"generator": generator_params, "critic": critic_params}, latent(z_rng, real.shape[0])
      )
    )

    def objective(critic_params):
      params = {"generator": generator_params, "critic": critic_params}
      critic = lambda x: score(params, x)
      distance = jnp.mean(losses.wgan_critic_loss(critic(real), critic(fake)))
      penalty = jnp.mean(losses.gradient_penalty(critic, real, fake, penalty_rng))
      return distance + penalty_weight * penalty, (distance, penalty)

    grads, (distance, penalty) = jax.grad(objective, has_aux=True)(critic_params)
    grads = parallel.mean_over_devices(grads, axis_name)
    updates, opt_state = optimizer["critic"].update(grads, opt_state, critic_params)
    critic_params = optax.apply_updates(critic_params, updates)
    if weight_clip > 0:
      critic_params = losses.clip_params(critic_params, weight_clip)
    return (critic_params, opt_state, generator_params), (distance, penalty)

  def train_step(state, batch):
    rngs = steps.step_rngs(state, axis_name)
    critic_rng, generator_rng = jax.random.split(rngs["sample"])
    real = batch["inputs"]
    per_step = real.shape[0] // critic_steps
    reals = real[: per_step * critic_steps].reshape((critic_steps, per_step) + real.shape[1:])
    carry = (state.params["critic"], state.opt_state["critic"], state.params["generator"])
    (critic_params, critic_opt_state, _), (distance, penalty) = jax.lax.scan(
      critic_update, carry, (reals, jax.random.split(critic_rng, critic_steps))
    )

    def generator_objective(generator_params):
      params = {"generator": generator_params, "critic": critic_params}
      fake = generate(params, latent(generator_rng, per_step))
      return jnp.mean(losses.wgan_generator_loss(score(params, fake)))

    generator_loss, grads = jax.value_and_grad(generator_objective)(state.params["generator"])
    grads = parallel.mean_over_devices(grads, axis_name)
    updates, generator_opt_state = optimizer["generator"].update(
      grads, state.opt_state["generator"], state.params["generator"]
    )
    generator_params = optax.apply_updates(state.params["generator"], updates)
    metrics = parallel.mean_over_devices(
      {
        "loss": distance[-1] + penalty_weight * penalty[-1],
        "wasserstein": -distance[-1],
        "gradient_penalty": penalty[-1],
        "generator_loss": generator_loss,
      },
      axis_name,
    )
    new_state = state.replace(
      step=state.step + 1,
      params={"generator": generator_params, "critic": critic_params},
      opt_state={"generator": generator_opt_state, "critic": critic_opt_state},
    )
    return new_state, metrics

  return train_step
