"""Tests for dlx.tasks.language_model: the per-token loss and the shared budget."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import experiment
from dlx.tasks import language_model as lm


def test_language_model_loss_is_per_token():
  logits = jnp.zeros((2, 5, 4))
  out = lm.language_model_loss(logits, {"targets": jnp.zeros((2, 5), jnp.int32)})
  assert out["loss"].shape == (2, 5)
  np.testing.assert_allclose(out["loss"], np.log(4.0), rtol=1e-6)


@pytest.mark.parametrize("name", ["gpt_shakespeare_char", "lstm_shakespeare_char"])
def test_language_models_default_to_nanogpts_cpu_example(name):
  exp = experiment.load(name)
  config, named = exp.config(), exp.config(lm.NANOGPT)
  assert config.to_dict() == named.to_dict()
  # nanoGPT's budget (the LSTM's width differs: 256 units for a similar parameter count).
  assert (
    config.context_length,
    config.batch_size,
    config.num_train_steps,
    config.model.dropout_rate,
  ) == (64, 12, 2000, 0.0)
  with pytest.raises(ValueError, match="nanogpt"):
    exp.config("bogus")


def test_gpt_attention_window_is_a_config_field():
  exp = experiment.load("gpt_shakespeare_char")
  assert exp.get_model(exp.config()).attention_window is None
  config = exp.config("smoke")
  window = 3
  config.model.attention_window = window  # what --config.model.attention_window=3 sets
  windowed = exp.get_model(config)
  assert windowed.attention_window == window
  config.model.attention_window = None
  full = exp.get_model(config)
  tokens = np.arange(2 * config.context_length).reshape(2, -1) % 7
  variables = full.init(jax.random.PRNGKey(0), tokens)
  out_windowed, out_full = windowed.apply(variables, tokens), full.apply(variables, tokens)
  # Positions 0..w see the same keys either way; later ones lose the keys before the window.
  np.testing.assert_allclose(out_windowed[:, : window + 1], out_full[:, : window + 1], atol=1e-5)
  assert not np.allclose(out_windowed[:, window + 1 :], out_full[:, window + 1 :], atol=1e-3)


def test_gpt_context_follows_context_length():
  config = experiment.load("gpt_shakespeare_char").config()
  config.context_length = 32
  assert config.model.max_length == 32
