"""The Transformer encoder-decoder experiments (docs/curriculum.md#f13;
experiments/sequence/transformer_sort.py, transformer_reorder.py): the model's config
and constructor, and the report with its last-layer cross-attention plotted. The loss,
data and exact-match evaluation are `common`'s.
"""

import jax.numpy as jnp
import ml_collections

from dlx import config as config_lib
from dlx.models import transformer as transformer_model
from dlx.tasks.seq2seq import common


def cross_attention(model, variables, inputs):
  """A dlx.models.transformer.Transformer's last-layer cross-attention, mean over heads:
  (B, T, S)."""
  _, attention = model.apply(variables, inputs, return_attention=True)
  return jnp.mean(attention["cross"][-1], axis=1)


def model_config(config, **kwargs):
  """config.model for a dlx.models.transformer.Transformer: its keyword arguments, with
  vocab_size following config.vocab_size."""
  config.model = ml_collections.ConfigDict({"vocab_size": config.get_ref("vocab_size"), **kwargs})
  return config


def get_model(config):
  return transformer_model.Transformer(**config_lib.model_kwargs(config))


def final_report(ctx):
  """`common.seq2seq_report` with the Transformer's last-layer cross-attention plotted."""
  return common.seq2seq_report(ctx, cross_attention)
