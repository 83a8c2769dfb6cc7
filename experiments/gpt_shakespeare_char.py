"""Character-level GPT (CURRICULUM F14) on the Shakespeare plays, split by play.

  ./launch.sh gpt_shakespeare_char
  ./launch.sh gpt_shakespeare_char:nanogpt   # nanoGPT's CPU example configuration

Reports validation and test loss in nats per character and writes samples.txt
(temperature 0.8, top-k 40) generated with the key/value cache. The default IS the
`:nanogpt` configuration (the name exists for side-by-side commands); scale it with
--config fields (context_length, num_layers, features, num_train_steps) on a GPU.

`:nanogpt` is the configuration of nanoGPT's shakespeare_char CPU example: 4 layers,
4 heads, 128 dims, context 64, batch 12, 2000 iterations, no dropout, AdamW lr 1e-3
(beta2 0.99, weight decay 0.1), 100 warmup steps, cosine decay to 1e-4, gradient
clipping at 1. (nanoGPT splits the text 90/10; here whole plays are held out, which is
harder: the held-out plays' names and words are new.) nanoGPT's cosine floor is 1e-4
= 0.1 x lr, here `optimizer.min_learning_rate_factor`.
"""

import jax
import numpy as np

from dlx import sequence_tasks
from dlx.models import gpt


def get_config(arg=None):
  config = sequence_tasks.language_model_config(arg)
  config.num_heads = 4
  return config


def get_model(config):
  return gpt.GPT(config.vocab_size, config.context_length, config.num_layers,
                 config.num_heads, config.features, config.dropout_rate)


get_dataset = sequence_tasks.shakespeare_char_dataset
loss = sequence_tasks.language_model_loss


def generate_text(model, params, tokenizer, prompt: str, length: int, rng,
                  temperature=0.8, top_k=40) -> str:
  """`length` characters after `prompt`. The context is model.max_length, so longer
  texts are made in chunks, each re-prompted with the last half context."""
  ids = tokenizer.encode(prompt)[-model.max_length // 2:]
  out = []
  while len(out) < length:
    context = (list(ids) + out)[-(model.max_length // 2):]
    new = min(model.max_length - len(context), length - len(out))
    tokens = gpt.generate(model, params, np.array([context], np.int32), new,
                          jax.random.fold_in(rng, len(out)), temperature=temperature,
                          top_k=top_k)
    out.extend(int(t) for t in np.asarray(tokens)[0, len(context):])
  return tokenizer.decode(out)


def final_report(model, variables, dataset, config, workdir, rng):
  tokenizer = sequence_tasks.char_tokenizer(dataset)
  prompts = sequence_tasks.SAMPLE_PROMPTS
  samples = [generate_text(model, variables["params"], tokenizer, p, config.sample_length,
                           jax.random.fold_in(rng, i)) for i, p in enumerate(prompts)]
  return {"samples": sequence_tasks.write_text_samples(workdir, "samples", prompts, samples)}
