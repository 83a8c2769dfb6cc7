"""Transformer encoder-decoder on the course's word-reordering task
(docs/curriculum.md#f13): restore a Shakespeare sentence from its shuffled words
("The mat cat sat the on." -> "The cat sat on the mat.").

  ./launch.sh transformer_reorder

Sentences of 3-8 words from the plays, split by play (dlx/data/text.py), so test
sentences come from plays never seen in training; the word vocabulary is capped at the
2,000 most frequent training words (sentences with rarer words are dropped). Reports
exact-match accuracy (every word in place) and token accuracy; attention.png shows which
shuffled word each output position reads.
"""

from dlx import config as config_lib
from dlx.tasks.seq2seq import common
from dlx.tasks.seq2seq import transformer


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.seq2seq_config("reorder")
  config.max_words = 8
  config.max_vocab = 2000
  config.vocab_size = 2000
  transformer.model_config(
    config,
    max_length=32,
    num_layers=3,
    num_heads=4,
    features=128,
    hidden=256,
    dropout_rate=0.1,
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
TARGETS = {"test.sequence_accuracy": (">=", 0.45)}  # measured: the family README
