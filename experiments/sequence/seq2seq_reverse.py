"""Recurrent encoder-decoder with attention (docs/curriculum.md#f12) reversing symbol
strings.

  ./launch.sh seq2seq_reverse

A bidirectional GRU encoder and a GRU decoder with Bahdanau (additive) attention,
trained with teacher forcing on strings of 1-10 symbols (10 symbols); held-out strings
never appear in training. The report gives exact-sequence accuracy by length, on longer
strings (11-20, never trained on), and attention.png, which should show the
anti-diagonal of a reversal. `--config.model.attention=luong`,
`--config.model.cell_type=lstm`.
"""

from dlx import config as config_lib
from dlx.models import seq2seq as seq2seq_models
from dlx.tasks.seq2seq import common
from dlx.tasks.seq2seq import recurrent


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.seq2seq_config("reverse")
  config.vocab_size = config.num_symbols + 3  # + PAD, BOS, EOS
  config.model = config_lib.model_config(
    source_vocab=config.get_ref("vocab_size"),
    target_vocab=config.get_ref("vocab_size"),
    features=128,
    cell_type="gru",
    attention="bahdanau",
  )
  config.num_train_steps = 3000
  config.eval_every_steps = 500
  if config_lib.SMOKE in args:
    common.smoke(config)
  return config


def get_model(config):
  return seq2seq_models.Seq2Seq(**config_lib.model_kwargs(config))


get_dataset = common.seq2seq_dataset
loss = common.sequence_loss
final_report = recurrent.final_report
OUTPUTS = common.OUTPUTS
# Held-out strings of the training lengths, exact match (= greedy decoding's).
TARGETS = {"test.sequence_accuracy": (">=", 0.99), "report.test.sequence_accuracy": (">=", 0.99)}
