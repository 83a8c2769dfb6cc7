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


get_model = sequence_tasks.transformer_model
get_dataset = sequence_tasks.seq2seq_dataset
loss = sequence_tasks.sequence_loss
final_report = sequence_tasks.transformer_report
