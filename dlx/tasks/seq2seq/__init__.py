"""Sequence-to-sequence tasks (docs/curriculum.md#f12, #f13), one module per concern:

common       the masked sequence loss, the model-input layout, the shared config and
             datasets (reverse, sort, copy, reorder), exact match (overall, by length)
             and the attention report
recurrent    the GRU / LSTM encoder-decoder with attention: its final_report
             (experiments/sequence/seq2seq_reverse.py)
transformer  the Transformer encoder-decoder: model config, get_model, final_report
             (experiments/sequence/transformer_sort.py, transformer_reorder.py)
"""
