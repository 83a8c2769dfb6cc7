"""Spoken-digit recognition (docs/curriculum.md#f23): the loss with the digit error rate,
and the report that draws log-mel spectrograms and counts the confusions.

  word_classification  softmax cross-entropy, accuracy and digit_error_rate
  final_report         SPECTROGRAM_PLOT: the model's log-mel input for a few test
                       utterances with the word and the prediction; the test error rate
                       of each digit and the most frequent confusions

digit_error_rate = 1 - accuracy: the fraction of utterances, each one spoken digit,
whose digit the model names wrongly. It is a classification error, not an ASR word
error rate (edit distance over a transcript): with exactly one word per utterance and
one label per prediction there are no insertions or deletions to count.
"""

import os

import jax
import numpy as np

from dlx import viz
from dlx.tasks import classification

SPECTROGRAM_PLOT = "spectrograms.png"


def word_classification(logits, batch):
  """classification's loss and accuracy, plus digit_error_rate = 1 - accuracy (per
  utterance: 1 where the spoken digit was named wrongly)."""
  result = classification.classification(logits, batch)
  return {**result, "digit_error_rate": 1.0 - result["accuracy"]}


def plot_spectrograms(features, titles, path, frame_seconds: float | None = None):
  """One panel per utterance: features (N, frames, bands) as time x mel band images."""
  plt = viz.pyplot()

  features = np.asarray(features, np.float32)
  columns = min(5, len(features))
  rows = -(-len(features) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
  extent = None
  if frame_seconds:
    extent = (0.0, features.shape[1] * frame_seconds, 0, features.shape[2])
  for ax, image, title in zip(axes.flat, features, titles):
    ax.imshow(image.T, origin="lower", aspect="auto", cmap="magma", extent=extent)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("seconds" if frame_seconds else "frame", fontsize=8)
    ax.set_ylabel("mel band", fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(features) :]:
    ax.axis("off")
  # Fixed margins: tight_layout measures every tick label and costs seconds.
  fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.93, wspace=0.3, hspace=0.55)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def final_report(ctx, num_confusions: int = 5):
  """Writes SPECTROGRAM_PLOT (the first test utterance of each of up to
  `config.num_spectrograms` words (default 10), as the model's front end sees it) and
  returns the test digit error rate, the error rate of each digit (the fraction of its
  utterances named wrongly) and the `num_confusions` most frequent (word, taken for,
  count)."""
  words = ctx.dataset.info["class_names"]
  num_examples = ctx.config.get("num_spectrograms", 10)
  labels, predictions = [], []
  for batch, logits in ctx.outputs(ctx.dataset.test):
    labels.append(np.asarray(batch["targets"]))
    predictions.append(np.asarray(logits).argmax(-1))
  labels, predictions = np.concatenate(labels), np.concatenate(predictions)
  confusion = np.zeros((len(words), len(words)), np.int64)
  np.add.at(confusion, (labels, predictions), 1)

  shown = [int(np.flatnonzero(labels == c)[0]) for c in range(len(words)) if (labels == c).any()]
  shown = shown[:num_examples]
  waves = ctx.dataset.test["inputs"][np.array(shown)]
  model = getattr(ctx.model, "model", ctx.model)  # the module under a precision wrapper
  features = jax.jit(lambda x: model.apply({}, x, method=model.log_mel))(waves)
  titles = [f"{words[labels[i]]} -> {words[predictions[i]]}" for i in shown]
  frame_seconds = model.hop_length / model.sample_rate
  plot_spectrograms(features, titles, os.path.join(ctx.workdir, SPECTROGRAM_PLOT), frame_seconds)

  off_diagonal = [
    (confusion[i, j], words[i], words[j])
    for i in range(len(words))
    for j in range(len(words))
    if i != j and confusion[i, j]
  ]
  top = sorted(off_diagonal, key=lambda c: (-c[0], c[1], c[2]))[:num_confusions]
  wrong = confusion.sum(1) - np.diag(confusion)
  totals = np.maximum(confusion.sum(1), 1)
  return {
    "plot": SPECTROGRAM_PLOT,
    "digit_error_rate": float(np.mean(labels != predictions)),
    "per_digit_error_rate": {w: float(wrong[i] / totals[i]) for i, w in enumerate(words)},
    "top_confusions": [[w, p, int(n)] for n, w, p in top],
  }
