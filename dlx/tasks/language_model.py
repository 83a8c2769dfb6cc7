"""Character-level language modelling on the Shakespeare plays (docs/curriculum.md#f12,
#f14): the next-token loss, the budget the GPT and LSTM experiments share, the data,
and text samples for the final report."""

import os

import jax.numpy as jnp
import ml_collections

from dlx import config as config_lib
from dlx import losses
from dlx.data import core
from dlx.data import text
from dlx.data import tokenizers

NANOGPT = "nanogpt"  # the `:nanogpt` argument: nanoGPT's CPU example (also the default)
SHAKESPEARE_CHARS = 83  # distinct characters in the training plays (all the corpus has)
SAMPLE_PROMPTS = (
  "ROMEO.\n",
  "First Citizen.\nBefore we proceed any further, hear me speak.\n",
  "KING.\nWhat news, my lord?\n",
)
OUTPUTS = ("samples.txt",)


def language_model_loss(logits, batch):
  """Next-token cross-entropy (nats per token) for every position: (B, T), which the
  trainer averages over T. Also token accuracy."""
  targets = batch["targets"]
  return {
    "loss": losses.softmax_cross_entropy(logits, targets),
    "accuracy": (jnp.argmax(logits, -1) == targets).astype(jnp.float32),
  }


def language_model_config(**model):
  """The character-level budget gpt_shakespeare_char and lstm_shakespeare_char share
  (nanoGPT's CPU example); `model` holds the model's keyword arguments besides
  vocab_size, which follows config.vocab_size."""
  config = config_lib.base_config()
  config.vocab_size = SHAKESPEARE_CHARS
  # nanoGPT's shakespeare_char CPU example: 4 layers, 4 heads (GPT), 128 dims, context 64,
  # batch 12, 2000 iterations, no dropout, AdamW 1e-3 (beta2 0.99, weight decay 0.1),
  # 100 warmup steps, cosine to 1e-4, clipping at 1. It is the default because it is
  # what a 2-core CPU trains in minutes; `:nanogpt` names it explicitly.
  config.context_length = 64
  config.train_stride = 64
  config.model = ml_collections.ConfigDict({"vocab_size": config.get_ref("vocab_size"), **model})
  config.batch_size = 12
  config.num_train_steps = 2000
  config.eval_every_steps = 500
  config.log_every_steps = 100
  config.sample_length = 500
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.b2 = 0.99
  config.optimizer.weight_decay = 0.1
  config.optimizer.warmup_steps = 100
  config.optimizer.schedule = "cosine"
  config.optimizer.min_learning_rate_factor = 0.1
  config.optimizer.grad_clip_norm = 1.0
  # Windows spread over each split (experiment.eval_split), about nanoGPT's estimate (200
  # batches of 12), keep evaluation a small part of a short run: the whole validation and
  # test plays are 12,157 windows, 3.4x the tokens 300 steps train on. The train split
  # only gives the generalisation gap. --config.eval_examples=0 scores whole splits.
  config.eval_examples = 2000
  config.train_eval_examples = 1000
  return config


def smoke(config):
  """`:smoke`: few windows (one every 2048 characters) of 32 characters, a one-layer
  model 32 wide, 20-character samples."""
  return config_lib.smoke(
    config,
    context_length=32,
    train_stride=2048,
    sample_length=20,
    **{"model.num_layers": 1, "model.features": 32},
  )


def shakespeare_char(config) -> core.Dataset:
  """Character windows of `config.context_length` from the plays, split by play
  (dlx/data/text.py); training windows start every `config.train_stride` characters."""
  dataset, _ = text.shakespeare_char(config.context_length, train_stride=config.train_stride)
  if dataset.info["vocab_size"] != config.vocab_size:
    raise ValueError(
      f"the corpus has {dataset.info['vocab_size']} characters but "
      f"--config.vocab_size={config.vocab_size}"
    )
  return dataset


def shakespeare_char_dataset(config, data_dir=None):
  del data_dir  # the plays ship inside the `shakespeare` package
  return shakespeare_char(config)


def char_tokenizer(dataset: core.Dataset):
  return tokenizers.CharTokenizer(dataset.info["chars"])


def write_text_samples(workdir: str, name: str, prompts, samples) -> str:
  """Writes `name`.txt with each prompt and its continuation; returns the file name."""
  path = os.path.join(workdir, f"{name}.txt")
  with open(path, "w") as f:
    for i, (prompt, sample) in enumerate(zip(prompts, samples)):
      f.write(f"=== sample {i} (prompt {prompt!r}) ===\n{prompt}{sample}\n\n")
  return os.path.basename(path)
