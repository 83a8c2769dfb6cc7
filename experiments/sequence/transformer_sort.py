"""Transformer encoder-decoder (docs/curriculum.md#f13) sorting symbol strings.

  ./launch.sh transformer_sort

The 2017 architecture (post-norm, sinusoidal positions, masked decoder self-attention,
cross-attention) at a small size, trained with teacher forcing on strings of 1-10
symbols (10 symbols); held-out strings never appear in training. The report gives
exact-sequence accuracy by length, on longer strings (11-20, never trained on), and
attention.png (last layer's cross-attention, averaged over heads): each output symbol
attends to the input positions holding that symbol.
"""

from dlx import config as config_lib
from dlx.tasks.seq2seq import common
from dlx.tasks.seq2seq import transformer


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.seq2seq_config("sort")
  config.vocab_size = config.num_symbols + 3  # + PAD, BOS, EOS
  # max_length: the longest sequence the model accepts (for the longer tests).
  transformer.model_config(
    config,
    max_length=32,
    num_layers=2,
    num_heads=4,
    features=128,
    hidden=256,
    dropout_rate=0.0,
    norm="post",
  )
  config.num_train_steps = 3000
  config.eval_every_steps = 500
  if config_lib.SMOKE in args:
    common.smoke(config)
  return config


get_model = transformer.get_model
get_dataset = common.seq2seq_dataset
loss = common.sequence_loss
final_report = transformer.final_report
OUTPUTS = common.OUTPUTS
TARGETS = {"test.sequence_accuracy": (">=", 0.99), "report.test.sequence_accuracy": (">=", 0.99)}
