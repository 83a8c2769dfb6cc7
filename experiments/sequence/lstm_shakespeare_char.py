"""Character-level LSTM language model (docs/curriculum.md#f12) on the Shakespeare
plays, the same data, split and budget as gpt_shakespeare_char, for a side-by-side
comparison.

  ./launch.sh lstm_shakespeare_char
  ./launch.sh lstm_shakespeare_char:nanogpt   # the same budget as gpt's :nanogpt
  ./launch.sh lstm_shakespeare_char:rnn       # plain (Elman, tanh) RNN cells instead

Two LSTM layers of 256 units (about 1.1M parameters, near the GPT's 0.8M). Samples are
drawn by carrying the recurrent state, one character at a time.

`:rnn` swaps the LSTM cells for Elman cells, h_t = tanh(W . [h_{t-1}, x_t] + b)
(dlx.nn.recurrent.SimpleRNNCell), and changes nothing else: the same two layers of 256
units, data, optimiser and budget (about 0.3M parameters: one weight matrix per layer
where the LSTM has four). It combines with the others: `:rnn,smoke`.
"""

import jax
import numpy as np

from dlx import config as config_lib
from dlx.models import rnn_lm
from dlx.tasks import language_model as lm

_RNN = "rnn"  # the `:rnn` argument: Elman cells in place of the LSTM's


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (lm.NANOGPT, _RNN))
  cell_type = "rnn" if _RNN in args else "lstm"
  config = lm.language_model_config(
    features=256, num_layers=2, cell_type=cell_type, dropout_rate=0.0
  )
  if config_lib.SMOKE in args:
    lm.smoke(config)
  return config


def get_model(config):
  return rnn_lm.RNNLanguageModel(**config_lib.model_kwargs(config))


get_dataset = lm.shakespeare_char_dataset
loss = lm.language_model_loss


def final_report(ctx):
  tokenizer = lm.char_tokenizer(ctx.dataset)
  prompts = lm.SAMPLE_PROMPTS
  samples = []
  for i, prompt in enumerate(prompts):
    tokens = rnn_lm.generate(
      ctx.model,
      ctx.variables["params"],
      np.array([tokenizer.encode(prompt)], np.int32),
      ctx.config.sample_length,
      jax.random.fold_in(ctx.rng, i),
      temperature=0.8,
      top_k=40,
    )
    samples.append(tokenizer.decode([int(t) for t in np.asarray(tokens)[0, len(prompt) :]]))
  return {"samples": lm.write_text_samples(ctx.workdir, "samples", prompts, samples)}


OUTPUTS = lm.OUTPUTS
TARGETS = {"validation.loss": ("<=", 2.10)}  # measured: the family README
