"""Recurrent encoder-decoder with attention (CURRICULUM F12) reversing symbol strings.

  ./launch.sh seq2seq_reverse

A bidirectional GRU encoder and a GRU decoder with Bahdanau (additive) attention,
trained with teacher forcing on strings of 1-10 symbols (10 symbols); held-out strings
never appear in training. The report gives exact-sequence accuracy by length, on longer
strings (11-20, never trained on), and attention.png, which should show the
anti-diagonal of a reversal. `--config.attention=luong`, `--config.cell_type=lstm`.
"""

from dlx import sequence_tasks
from dlx.models import seq2seq


def get_config():
  config = sequence_tasks.seq2seq_config("reverse")
  config.vocab_size = config.num_symbols + 3  # + PAD, BOS, EOS
  config.features = 128
  config.cell_type = "gru"
  config.attention = "bahdanau"
  config.num_train_steps = 3000
  config.eval_every_steps = 500
  return config


def get_model(config):
  return seq2seq.Seq2Seq(config.vocab_size, config.vocab_size, config.features,
                         cell_type=config.cell_type, attention=config.attention)


def _attention(model, variables, inputs):
  _, weights = model.apply(variables, inputs, return_attention=True)
  return weights


get_dataset = sequence_tasks.seq2seq_dataset
loss = sequence_tasks.sequence_loss


def final_report(model, variables, dataset, config, workdir, rng):
  del rng
  return sequence_tasks.seq2seq_report(model, variables, dataset, config, workdir, _attention)
