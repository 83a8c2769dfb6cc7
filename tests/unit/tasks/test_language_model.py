"""Tests for dlx.tasks.language_model: the per-token loss and the shared budget."""

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


def test_gpt_context_follows_context_length():
  config = experiment.load("gpt_shakespeare_char").config()
  config.context_length = 32
  assert config.model.max_length == 32
