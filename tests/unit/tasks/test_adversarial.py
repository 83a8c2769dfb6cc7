"""The two-player WGAN step: critic weight clipping and per-player optimizer states."""

import jax
import ml_collections
import numpy as np

from dlx import train
from dlx.models import gan
from dlx.tasks import adversarial
from dlx.training import optim


def _setup(**overrides):
  config = ml_collections.ConfigDict(
    dict(
      critic_steps=2,
      gradient_penalty_weight=10.0,
      weight_clip=0.0,
      optimizer=optim.default_config(),
    )
  )
  config.update(overrides)
  model = gan.WGAN(latent_dim=4, base_features=4)
  optimizer = adversarial.make_optimizers(config, 10)
  x = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
  state = train.create_init_fn(model, optimizer, x[:2], 0)(jax.random.PRNGKey(0))
  step = jax.jit(adversarial.make_wgan_gp_step(model, optimizer, config))
  return state, step, {"inputs": x}


def test_weight_clipping_bounds_every_critic_weight():
  state, step, batch = _setup(weight_clip=0.01, gradient_penalty_weight=0.0)
  state, metrics = step(state, batch)
  for leaf in jax.tree.leaves(state.params["critic"]):
    assert np.abs(np.asarray(leaf)).max() <= 0.01 + 1e-7
  # The generator is not clipped.
  generator = jax.tree.leaves(state.params["generator"])
  assert max(np.abs(np.asarray(leaf)).max() for leaf in generator) > 0.01
  assert np.isfinite(float(metrics["loss"]))


def test_each_player_keeps_its_own_optimizer_state():
  state, step, batch = _setup()
  new_state, _ = step(state, batch)
  count = lambda tree: [
    int(x)
    for x in jax.tree.leaves(tree)
    if np.ndim(x) == 0 and np.issubdtype(np.asarray(x).dtype, np.integer)
  ]
  # Adam's step counter: critic_steps critic updates, one generator update.
  assert max(count(new_state.opt_state["critic"])) == 2
  assert max(count(new_state.opt_state["generator"])) == 1
