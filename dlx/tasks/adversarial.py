"""Two-player training (docs/curriculum.md#f19, #b9): GANs on MNIST in [-1, 1].

  make_optimizers        one optimizer state per player ('generator' + 'critic', or
                         + 'discriminator' for make_dcgan_optimizers), same config
  make_dcgan_step        one discriminator update (minimax loss) then one generator
                         update (non-saturating or saturating loss, config.generator_loss)
  make_wgan_gp_step      critic_steps critic updates (gradient penalty and/or the original
                         WGAN's weight clipping) then one generator update
  dcgan_loss, wgan_loss  per-example evaluation of the players
  mnist_dataset          MNIST scaled to [-1, 1]; the [0, 1] test images are the
                         sample-quality reference
  sample, visualize, final_report
                         generator samples in [0, 1]: grids and the MNIST-FID report

Both players live in one parameter tree with one optimizer each, so Adam's moments of
one player never move while the other trains. Every step logs `generator_grad_norm`, the
global L2 norm of the generator's gradient: with the saturating loss log(1 - D(G(z)))
it is proportional to D(G(z)), which is ~0 early in training, when the discriminator
rejects every fake; the non-saturating -log D(G(z)) scales with 1 - D(G(z)) instead.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx import losses
from dlx.data import pipeline
from dlx.tasks import sample_quality
from dlx.training import optim
from dlx.training import parallel
from dlx.training import steps

GENERATOR_LOSSES = ("non_saturating", "saturating")
SAMPLE_BATCH = 1000  # generator samples per compiled call in `sample`


def make_optimizers(config, total_steps, opponent="critic"):
  """The same optimizer config for both players, kept as separate optimizer states."""
  return {
    "generator": optim.create_optimizer(config.optimizer, total_steps),
    opponent: optim.create_optimizer(config.optimizer, total_steps),
  }


def make_dcgan_optimizers(config, total_steps):
  return make_optimizers(config, total_steps, opponent="discriminator")


def non_saturating(config) -> bool:
  """config.generator_loss, checked: True for 'non_saturating'."""
  kind = config.get("generator_loss", "non_saturating")
  if kind not in GENERATOR_LOSSES:
    raise errors.ConfigError(
      f"--config.generator_loss={kind!r}: choose one of {', '.join(GENERATOR_LOSSES)}"
    )
  return kind == "non_saturating"


def wgan_loss(outputs, batch):
  """Per-example evaluation: the critic loss and the critic's Wasserstein estimate
  f(x) - f(G(z)), whose mean over the split estimates the Wasserstein-1 distance."""
  del batch
  real, fake = outputs["real_scores"], outputs["fake_scores"]
  return {"loss": losses.wgan_critic_loss(real, fake), "wasserstein": real - fake}


def get_dcgan_loss(config):
  """Per-example evaluation: the discriminator's minimax loss, D(x), D(G(z)) and the
  configured generator loss."""
  saturation = not non_saturating(config)

  def loss(outputs, batch):
    del batch
    real, fake = outputs["real_logits"], outputs["fake_logits"]
    return {
      "loss": losses.gan_discriminator_loss(real, fake),
      "real_prob": jax.nn.sigmoid(real),
      "fake_prob": jax.nn.sigmoid(fake),
      "generator_loss": losses.gan_generator_loss(fake, non_saturating=not saturation),
    }

  return loss


# ------------------------------------------------------------------ steps


def _check_no_teacher(teacher):
  if teacher is not None:
    raise errors.ConfigError("a GAN step reads no teacher; unset --config.teacher")


def _runner(model):
  """run(method, params, model_state, x, train) -> (output, model_state): the model's
  `generate` or `score`, updating batch statistics (if any) in training."""

  def run(method, params, model_state, x, train):
    variables = {"params": params, **model_state}
    if train and model_state:
      out, new_state = model.apply(
        variables, x, train=True, method=method, mutable=list(model_state)
      )
      return out, dict(new_state)
    return model.apply(variables, x, train=train, method=method), model_state

  return run


def _latent(model, rng, n):
  return jax.random.normal(rng, (n, model.latent_dim))


def _apply_update(tx, grads, opt_state, params, axis_name):
  """One optimizer update of one player from its (device-averaged) gradient."""
  grads = parallel.mean_over_devices(grads, axis_name)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, optax.global_norm(grads)


def _generator_update(run, optimizer, state, opponent, model_state, z, loss_fn, axis_name):
  """One generator update against the opponent's params `opponent` = (name, params).

  Returns (params, opt_state, model_state, metrics, the opponent's scores of the fakes);
  model_state keeps the generator's new batch statistics and drops the opponent's (it
  only judged the fakes here)."""
  name, opponent_params = opponent

  def objective(generator_params):
    params = {"generator": generator_params, name: opponent_params}
    fake, new_state = run("generate", params, model_state, z, True)
    scores, _ = run("score", params, new_state, fake, True)
    return jnp.mean(loss_fn(scores)), (new_state, scores)

  (loss, (model_state, scores)), grads = jax.value_and_grad(objective, has_aux=True)(
    state.params["generator"]
  )
  params, opt_state, grad_norm = _apply_update(
    optimizer["generator"], grads, state.opt_state["generator"], state.params["generator"],
    axis_name,
  )  # fmt: skip
  metrics = {"generator_loss": loss, "generator_grad_norm": grad_norm}
  return params, opt_state, model_state, metrics, scores


def make_dcgan_step(model, optimizer, config, axis_name=None, teacher=None):
  """DCGAN step for a model with `generate(z, train)`, `score(x, train)` (logits),
  `latent_dim` and players 'generator' and 'discriminator' (the protocol's
  `make_train_step`).

  The discriminator minimises -log D(x) - log(1 - D(G(z))) on the batch and as many
  fakes; the generator then minimises -log D(G(z)) (non-saturating) or log(1 - D(G(z)))
  (saturating, the minimax game itself) on the same latents against the updated
  discriminator."""
  _check_no_teacher(teacher)
  use_non_saturating = non_saturating(config)
  run = _runner(model)

  def generator_loss(logits):
    return losses.gan_generator_loss(logits, non_saturating=use_non_saturating)

  def train_step(state, batch):
    real = batch["inputs"]
    z = _latent(model, steps.step_rngs(state, axis_name)["sample"], real.shape[0])
    # The generator's batch statistics move in its own update below, not here.
    fake, _ = run("generate", state.params, state.model_state, z, True)
    fake = jax.lax.stop_gradient(fake)

    def objective(discriminator_params):
      params = {"generator": state.params["generator"], "discriminator": discriminator_params}
      # Separate batches (DCGAN): batch norm never mixes real and generated images.
      real_logits, model_state = run("score", params, state.model_state, real, True)
      fake_logits, model_state = run("score", params, model_state, fake, True)
      loss = jnp.mean(losses.gan_discriminator_loss(real_logits, fake_logits))
      return loss, (model_state, real_logits)

    (loss, (model_state, real_logits)), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params["discriminator"]
    )
    discriminator_params, discriminator_opt_state, discriminator_grad_norm = _apply_update(
      optimizer["discriminator"], grads, state.opt_state["discriminator"],
      state.params["discriminator"], axis_name,
    )  # fmt: skip
    generator_params, generator_opt_state, model_state, generator_metrics, fake_logits = (
      _generator_update(
        run,
        optimizer,
        state,
        ("discriminator", discriminator_params),
        model_state,
        z,
        generator_loss,
        axis_name,
      )  # fmt: skip
    )
    metrics = {
      "loss": loss,
      "discriminator_grad_norm": discriminator_grad_norm,
      "real_prob": jnp.mean(jax.nn.sigmoid(real_logits)),
      # D(G(z)) as the generator's update saw it (after the discriminator's update): the
      # factor that makes the saturating loss's gradient vanish.
      "fake_prob": jnp.mean(jax.nn.sigmoid(fake_logits)),
      **generator_metrics,
    }
    new_state = state.replace(
      step=state.step + 1,
      params={"generator": generator_params, "discriminator": discriminator_params},
      opt_state={"generator": generator_opt_state, "discriminator": discriminator_opt_state},
      model_state=parallel.mean_over_devices(model_state, axis_name),
    )
    return new_state, parallel.mean_over_devices(metrics, axis_name)

  return train_step


def make_wgan_gp_step(model, optimizer, config, axis_name=None, teacher=None):
  """WGAN step for a model with `generate(z)` and `score(x)` methods and `latent_dim`
  (the protocol's `make_train_step`).

  critic_steps critic updates, each on its own slice of the batch, then one generator
  update. gradient_penalty_weight > 0: WGAN-GP (Gulrajani et al., 2017); the original
  WGAN (Arjovsky et al., 2017) sets it to 0 (the penalty is then not computed at all) and
  clips every critic weight to [-weight_clip, weight_clip] after each critic update."""
  _check_no_teacher(teacher)
  critic_steps, penalty_weight = config.critic_steps, config.gradient_penalty_weight
  weight_clip = config.get("weight_clip", 0.0)
  if critic_steps < 1:
    raise errors.ConfigError(f"--config.critic_steps={critic_steps}: must be >= 1")
  if penalty_weight < 0 or weight_clip < 0:
    raise errors.ConfigError(
      f"--config.gradient_penalty_weight={penalty_weight}, --config.weight_clip="
      f"{weight_clip}: both must be >= 0"
    )
  use_penalty = penalty_weight > 0
  run = _runner(model)

  def score(params, x):
    return run("score", params, {}, x, False)[0]

  def critic_update(carry, inputs):
    critic_params, opt_state, generator_params = carry
    real, rng = inputs
    z_rng, penalty_rng = jax.random.split(rng)
    z = _latent(model, z_rng, real.shape[0])
    params = {"generator": generator_params, "critic": critic_params}
    fake = jax.lax.stop_gradient(run("generate", params, {}, z, False)[0])

    def objective(critic_params):
      params = {"generator": generator_params, "critic": critic_params}
      critic = lambda x: score(params, x)
      distance = jnp.mean(losses.wgan_critic_loss(critic(real), critic(fake)))
      if not use_penalty:  # decided when tracing: no double backward pass at all
        return distance, (distance, jnp.zeros(()))
      penalty = jnp.mean(losses.gradient_penalty(critic, real, fake, penalty_rng))
      return distance + penalty_weight * penalty, (distance, penalty)

    grads, (distance, penalty) = jax.grad(objective, has_aux=True)(critic_params)
    critic_params, opt_state, _ = _apply_update(
      optimizer["critic"], grads, opt_state, critic_params, axis_name
    )
    if weight_clip > 0:
      critic_params = losses.clip_params(critic_params, weight_clip)
    return (critic_params, opt_state, generator_params), (distance, penalty)

  def train_step(state, batch):
    critic_rng, generator_rng = jax.random.split(steps.step_rngs(state, axis_name)["sample"])
    real = batch["inputs"]
    per_step = real.shape[0] // critic_steps
    if per_step == 0:
      raise errors.ConfigError(
        f"a batch of {real.shape[0]} cannot feed {critic_steps} critic steps; raise "
        "--config.batch_size to a multiple of --config.critic_steps"
      )
    reals = real[: per_step * critic_steps].reshape((critic_steps, per_step) + real.shape[1:])
    carry = (state.params["critic"], state.opt_state["critic"], state.params["generator"])
    (critic_params, critic_opt_state, _), (distance, penalty) = jax.lax.scan(
      critic_update, carry, (reals, jax.random.split(critic_rng, critic_steps))
    )
    generator_params, generator_opt_state, _, generator_metrics, _ = _generator_update(
      run, optimizer, state, ("critic", critic_params), {},
      _latent(model, generator_rng, per_step), losses.wgan_generator_loss, axis_name,
    )  # fmt: skip
    metrics = {
      "loss": distance[-1] + penalty_weight * penalty[-1],
      "wasserstein": -distance[-1],
      **generator_metrics,
    }
    if use_penalty:
      metrics["gradient_penalty"] = penalty[-1]
    new_state = state.replace(
      step=state.step + 1,
      params={"generator": generator_params, "critic": critic_params},
      opt_state={"generator": generator_opt_state, "critic": critic_opt_state},
    )
    return new_state, parallel.mean_over_devices(metrics, axis_name)

  return train_step


# --------------------------------------------------------- data and samples


def mnist_dataset(config, data_dir):
  """MNIST scaled to [-1, 1] (the generators' tanh range); the [0, 1] test images are
  the reference the samples are scored against."""
  del config
  ds = data.load("mnist", data_dir=data_dir).map(data.transforms.scale_images)
  ds = sample_quality.with_reference(ds, ds.test["inputs"])
  return ds.map(lambda split: {**split, "inputs": 2.0 * split["inputs"] - 1.0})


def sample(ctx, n, rng):
  """n generator samples of z ~ N(0, I) (evaluation mode: batch norm's running
  statistics), mapped from [-1, 1] to [0, 1]."""
  z = jax.random.normal(rng, (n, ctx.config.model.latent_dim))
  generate = jax.jit(
    lambda variables, z: ctx.model.apply(variables, z, method="generate"),
    compiler_options=config_lib.compiler_options(ctx.config),
  )
  images = pipeline.apply_in_chunks(generate, ctx.variables, z, batch_size=SAMPLE_BATCH)
  images = images.astype(np.float32)
  return np.clip((images + 1.0) / 2.0, 0.0, 1.0)


def visualize(ctx, batch):
  """samples_<step>.png: 64 samples of the same latents every time, so grids over
  training are comparable."""
  del batch
  return {"samples": sample(ctx, 64, jax.random.PRNGKey(ctx.config.seed))}


def final_report(ctx):
  """MNIST-FID, confident fraction and class entropy of config.fid_samples samples
  (dlx/tasks/sample_quality.py), drawn with a key of their own."""
  rng = jax.random.fold_in(ctx.rng, 1)
  return sample_quality.report(ctx, lambda n: sample(ctx, n, rng))
