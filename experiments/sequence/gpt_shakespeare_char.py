"""Character-level GPT (docs/curriculum.md#f14) on the Shakespeare plays, split by play.

  ./launch.sh gpt_shakespeare_char
  ./launch.sh gpt_shakespeare_char:nanogpt   # nanoGPT's CPU example configuration
  ./launch.sh gpt_shakespeare_char:gpt2      # the same run with GPT-2's exact architecture

Reports validation and test loss in nats per character, the same in bits
(`bits_per_char`, comparable with gpt_shakespeare_bpe's) and writes samples.txt
(temperature 0.8, top-k 40) generated with the key/value cache. The default IS the
`:nanogpt` configuration (the name exists for side-by-side commands); scale it with
--config fields (context_length, model.num_layers, model.features, num_train_steps) on
a GPU.

`:nanogpt` is the configuration of nanoGPT's shakespeare_char CPU example: 4 layers,
4 heads, 128 dims, context 64, batch 12, 2000 iterations, no dropout, AdamW lr 1e-3
(beta2 0.99, weight decay 0.1), 100 warmup steps, cosine decay to 1e-4, gradient
clipping at 1. (nanoGPT splits the text 90/10; here whole plays are held out, which is
harder: the held-out plays' names and words are new.) nanoGPT's cosine floor is 1e-4
= 0.1 x lr, here `optimizer.min_learning_rate_factor`.

`:gpt2` drops the output bias (`model.output_bias=False`), the one place dlx's GPT
differs from GPT-2 (biased attention and MLP, GELU with the tanh approximation and
LayerNorm eps 1e-5 are already its defaults), so the run exports as a Hugging Face
GPT-2: `python -m dlx.tools.export WORKDIR --format=hf-gpt2 --out=DIR` (docs/interop.md).
It combines with the others: `:gpt2,smoke`.
"""

import jax
from ml_collections import config_dict
import numpy as np

from dlx import config as config_lib
from dlx.models import gpt
from dlx.tasks import language_model as lm

_GPT2 = "gpt2"  # the `:gpt2` argument: no output bias, as GPT-2


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (lm.NANOGPT, _GPT2))
  config = lm.language_model_config(
    num_layers=4, num_heads=4, features=128, dropout_rate=0.0, output_bias=True
  )
  config.model.max_length = config.get_ref("context_length")
  # None: full causal attention. An int w: blockwise local attention, each character sees
  # itself and the w before it, at a cost that grows as T x w (E6, benchmarks/local_attention.py).
  config.model.attention_window = config_dict.placeholder(int)
  if _GPT2 in args:
    config.model.output_bias = False
  if config_lib.SMOKE in args:
    lm.smoke(config)
  return config


def get_model(config):
  return gpt.GPT(**config_lib.model_kwargs(config))


get_dataset = lm.shakespeare_char_dataset
loss = lm.char_language_model_loss


def generate_text(
  model, params, tokenizer, prompt: str, length: int, rng, temperature=0.8, top_k=40
) -> str:
  """`length` characters after `prompt`. The context is model.max_length, so longer
  texts are made in chunks, each re-prompted with the last half context. Every chunk
  fills the context (the surplus of the last is cut off): one compiled shape serves all
  chunks after the first (each new shape costs seconds of compilation, the sampling
  itself milliseconds)."""
  ids = tokenizer.encode(prompt)[-model.max_length // 2 :]
  out = []
  while len(out) < length:
    context = (list(ids) + out)[-(model.max_length // 2) :]
    new = model.max_length - len(context)
    tokens = gpt.generate(
      model,
      params,
      np.array([context], np.int32),
      new,
      jax.random.fold_in(rng, len(out)),
      temperature=temperature,
      top_k=top_k,
    )
    out.extend(int(t) for t in np.asarray(tokens)[0, len(context) :])
  return tokenizer.decode(out[:length])


def final_report(ctx):
  tokenizer = lm.char_tokenizer(ctx.dataset)
  prompts = lm.SAMPLE_PROMPTS
  samples = [
    generate_text(
      ctx.model,
      ctx.variables["params"],
      tokenizer,
      p,
      ctx.config.sample_length,
      jax.random.fold_in(ctx.rng, i),
    )
    for i, p in enumerate(prompts)
  ]
  return {"samples": lm.write_text_samples(ctx.workdir, "samples", prompts, samples)}


OUTPUTS = lm.OUTPUTS
TARGETS = {"validation.loss": ("<=", 1.85)}  # measured: the family README
