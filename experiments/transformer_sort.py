"""Transformer encoder-decoder (CURRICULUM F13) sorting symbol strings.

  ./launch.sh transformer_sort

The 2017 architecture (post-norm, sinusoidal positions, masked decoder self-attention,
cross-attention) at a small size, trained with teacher forcing on strings of 1-10
symbols (10 symbols); held-out strings never appear in training. The report gives
exact-sequence accuracy by length, on longer strings (11-20, never trained on), and
attention.png (last layer's cross-attention, averaged over heads): each output symbol
attends to the input positions holding that symbol.
"""

from dlx import sequence_tasks
from dlx.models import transformer


def get_config():
  config = sequence_tasks.seq2seq_config("sort")
  config.vocab_size = config.num_symbols + 3  # + PAD, BOS, EOS
  config.num_layers = 2
  config.num_heads = 4
  config.features = 128
  config.hidden = 256
  config.dropout_rate = 0.0
  config.norm = "post"
  config.max_positions = 32   # longest sequence the model accepts (for the longer tests)
  config.num_train_steps = 3000
  config.eval_every_steps = 500
  return config


def get_model(config):
  return transformer.Transformer(config.vocab_size, config.max_positions, config.num_layers,
                                 config.num_heads, config.features, config.hidden,
                                 config.dropout_rate, config.norm)


get_dataset = sequence_tasks.seq2seq_dataset
loss = sequence_tasks.sequence_loss


def final_report(model, variables, dataset, config, workdir, rng):
  del rng
  return sequence_tasks.seq2seq_report(model, variables, dataset, config, workdir,
                                       sequence_tasks.transformer_cross_attention)
