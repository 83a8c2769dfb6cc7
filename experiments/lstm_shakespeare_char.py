"""Character-level LSTM language model (CURRICULUM F12) on the Shakespeare plays, the
same data, split and budget as gpt_shakespeare_char, for a side-by-side comparison.

  ./launch.sh lstm_shakespeare_char
  ./launch.sh lstm_shakespeare_char:nanogpt   # the same budget as gpt's :nanogpt

Two LSTM layers of 256 units (about 0.9M parameters, near the GPT's). Samples are drawn
by carrying the recurrent state, one character at a time.
"""

import jax
import numpy as np

from dlx import sequence_tasks
from dlx.models import rnn_lm


def get_config(arg=None):
  config = sequence_tasks.language_model_config(arg)
  config.cell_type = "lstm"
  config.num_layers = 2
  config.features = 256
  return config


def get_model(config):
  return rnn_lm.RNNLanguageModel(config.vocab_size, config.features, config.num_layers,
                                 config.cell_type, config.dropout_rate)


get_dataset = sequence_tasks.shakespeare_char_dataset
loss = sequence_tasks.language_model_loss


def final_report(model, variables, dataset, config, workdir, rng):
  tokenizer = sequence_tasks.char_tokenizer(dataset)
  prompts = sequence_tasks.SAMPLE_PROMPTS
  samples = []
  for i, prompt in enumerate(prompts):
    tokens = rnn_lm.generate(model, variables["params"],
                             np.array([tokenizer.encode(prompt)], np.int32),
                             config.sample_length, jax.random.fold_in(rng, i),
                             temperature=0.8, top_k=40)
    samples.append(tokenizer.decode([int(t) for t in np.asarray(tokens)[0, len(prompt):]]))
  return {"samples": sequence_tasks.write_text_samples(workdir, "samples", prompts, samples)}
