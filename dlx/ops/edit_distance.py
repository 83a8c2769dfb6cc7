"""Word error rate (docs/curriculum.md#f23): the Levenshtein edit distance between a
reference transcript and a recognised one, counted in words.

edit_distance(ref, hyp) is the fewest substitutions, deletions (a reference word
missing from the hypothesis) and insertions (a hypothesis word not in the reference)
that turn `ref` into `hyp`, by the dynamic programme of Wagner and Fischer (1974):

  D[i, 0] = i,  D[0, j] = j,
  D[i, j] = min(D[i-1, j] + 1, D[i, j-1] + 1, D[i-1, j-1] + [ref[i-1] != hyp[j-1]]).

word_error_rate(refs, hyps) = sum of the edit distances / sum of the reference lengths,
over a whole test set (the corpus WER of NIST's sclite and of jiwer; not a mean of
per-sentence rates). It can exceed 1 when the hypotheses insert many words.
Sequences are lists of any comparable items (words, token ids). Pure Python: the
transcripts here are a few words long.
"""

from typing import Sequence


def _table(ref: Sequence, hyp: Sequence) -> list[list[int]]:
  table = [list(range(len(hyp) + 1))]
  for i, word in enumerate(ref, start=1):
    row = [i]
    for j, other in enumerate(hyp, start=1):
      row.append(min(table[i - 1][j] + 1, row[j - 1] + 1, table[i - 1][j - 1] + (word != other)))
    table.append(row)
  return table


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
  """The word-level Levenshtein distance (substitutions + deletions + insertions)."""
  return _table(ref, hyp)[-1][-1]


def edit_operations(ref: Sequence, hyp: Sequence) -> dict:
  """{'substitutions', 'deletions', 'insertions'} of one minimal alignment (they sum to
  edit_distance; ties prefer a match or substitution, then a deletion)."""
  table = _table(ref, hyp)
  counts = {"substitutions": 0, "deletions": 0, "insertions": 0}
  i, j = len(ref), len(hyp)
  while i or j:
    if i and j and table[i][j] == table[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
      counts["substitutions"] += ref[i - 1] != hyp[j - 1]
      i, j = i - 1, j - 1
    elif i and table[i][j] == table[i - 1][j] + 1:
      counts["deletions"] += 1
      i -= 1
    else:
      counts["insertions"] += 1
      j -= 1
  return counts


def word_error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
  """Corpus WER: total edit distance over the pairs / total reference words."""
  if len(refs) != len(hyps):
    raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
  words = sum(len(r) for r in refs)
  if not words:
    raise ValueError("the references hold no words: the word error rate is undefined")
  return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / words
