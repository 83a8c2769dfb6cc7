"""Transformer encoder-decoder on the notes' word-reordering task: restore a Shakespeare
sentence from its shuffled words ("The mat cat sat the on." -> "The cat sat on the mat.").

  ./launch.sh transformer_reorder

Sentences of 3-8 words from the plays, split by play (dlx/data/text.py), so test
sentences come from plays never seen in training; the word vocabulary is capped at the
2,000 most frequent training words (sentences with rarer words are dropped). Reports
exact-match accuracy (every word in place) and token accuracy; attention.png shows which
shuffled word each output position reads.
"""

from dlx import sequence_tasks


def get_config():
  config = sequence_tasks.seq2seq_config("reorder")
  config.max_words = 8
  config.max_vocab = 2000
  config.vocab_size = 2000
  config.num_layers = 3
  config.num_heads = 4
  config.features = 128
  config.hidden = 256
  config.dropout_rate = 0.1
  config.norm = "post"
  config.max_positions = 32
  config.num_train_steps = 3000
  config.eval_every_steps = 500
  return config


get_model = sequence_tasks.transformer_model
get_dataset = sequence_tasks.seq2seq_dataset
loss = sequence_tasks.sequence_loss
final_report = sequence_tasks.transformer_report
