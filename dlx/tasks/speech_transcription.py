"""Transcribing spoken digit strings (docs/curriculum.md#f23): the teacher-forced loss,
the word error rate of greedy transcripts, and the report.

  sequence_loss  the encoder-decoders' masked cross-entropy (dlx.tasks.seq2seq.common):
                 token_accuracy and sequence_accuracy under teacher forcing
  evaluate       wer (dlx.ops.edit_distance.word_error_rate: word-level edit distance
                 summed over the split / reference words) and sentence_error_rate (the
                 fraction of utterances not transcribed exactly), from greedy decoding
  final_report   the test WER split into substitutions, deletions and insertions, the
                 WER by string length, and decoded examples (also logged)

Greedy decoding here is the model's real output: nothing of the reference reaches the
decoder. (Teacher-forced exact match equals greedy exact match, see
dlx.tasks.seq2seq.common, so 1 - sequence_accuracy equals sentence_error_rate; the WER
needs the transcripts themselves.)
"""

from absl import logging
import numpy as np

from dlx.data import pipeline
from dlx.data import speech_strings
from dlx.models import speech_seq2seq
from dlx.ops import edit_distance
from dlx.tasks.seq2seq import common

sequence_loss = common.sequence_loss


def transcribe(ctx, data, batch_size: int | None = None):
  """(references, hypotheses): lists of word lists for every example of `data` (a split
  in the dlx.data.speech_strings layout), the hypotheses by greedy decoding."""
  info = ctx.dataset.info
  total = len(data["targets"])
  batch_size = min(batch_size or ctx.config.eval_batch_size, max(total, 1))
  decode = dict(max_length=info["max_length"], bos_id=info["bos_id"], eos_id=info["eos_id"])
  refs, hyps = [], []
  for batch, mask in pipeline.padded_batches(data, batch_size):
    audio = batch["inputs"]["audio"]
    tokens = np.asarray(speech_seq2seq.greedy_decode(ctx.model, ctx.variables, audio, **decode))
    for row in np.flatnonzero(mask):
      refs.append(speech_strings.words_of(batch["targets"][row], info))
      hyps.append(speech_strings.words_of(tokens[row], info))
  return refs, hyps


def scores(refs, hyps) -> dict:
  """Corpus WER and the sentence error rate of these transcripts."""
  wrong = [r != h for r, h in zip(refs, hyps)]
  return {
    "wer": edit_distance.word_error_rate(refs, hyps),
    "sentence_error_rate": float(np.mean(wrong)),
  }


def evaluate(ctx, split):
  """WER and sentence error rate of greedy transcripts of the split's examples."""
  return scores(*transcribe(ctx, ctx.examples(split)))


def final_report(ctx, num_examples: int = 8) -> dict:
  """The test split's WER with its substitutions, deletions and insertions, the WER of
  each string length, and `num_examples` transcripts: the first test utterances and
  the first wrong ones (each 'reference -> hypothesis'; logged as well)."""
  refs, hyps = transcribe(ctx, ctx.dataset.test)
  kinds = {"substitutions": 0, "deletions": 0, "insertions": 0}
  for ref, hyp in zip(refs, hyps):
    for kind, count in edit_distance.edit_operations(ref, hyp).items():
      kinds[kind] += count
  lengths = np.array([len(r) for r in refs])
  by_length = {
    int(n): edit_distance.word_error_rate(
      [refs[i] for i in np.flatnonzero(lengths == n)],
      [hyps[i] for i in np.flatnonzero(lengths == n)],
    )
    for n in np.unique(lengths)
  }
  line = lambda i: f"{' '.join(refs[i])} -> {' '.join(hyps[i]) or '(nothing)'}"
  examples = [line(i) for i in range(min(num_examples, len(refs)))]
  errors = [line(i) for i in range(len(refs)) if refs[i] != hyps[i]][:num_examples]
  for title, lines in (("test transcripts", examples), ("test errors", errors)):
    logging.info("%s:\n  %s", title, "\n  ".join(lines) or "(none)")
  return {
    "test": {**scores(refs, hyps), **kinds, "reference_words": int(lengths.sum())},
    "wer_by_num_digits": by_length,
    "examples": examples,
    "errors": errors,
  }
