"""The recurrent encoder-decoder with attention (docs/curriculum.md#f12;
experiments/sequence/seq2seq_reverse.py, dlx.models.seq2seq.Seq2Seq): the report with
the decoder's attention plotted. The loss, data and exact-match evaluation are
`common`'s.
"""

from dlx.tasks.seq2seq import common


def attention_weights(model, variables, inputs):
  """A dlx.models.seq2seq.Seq2Seq's attention weights over the source: (B, T, S)."""
  _, weights = model.apply(variables, inputs, return_attention=True)
  return weights


def final_report(ctx):
  """`common.seq2seq_report` with the decoder's attention plotted."""
  return common.seq2seq_report(ctx, attention_weights)
