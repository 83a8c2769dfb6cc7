"""Classification: per-example loss and metrics in the protocol's form
`loss(outputs, batch) -> {'loss': (B,), metric: (B,), ...}` (dlx/experiment.py).

  classification        softmax cross-entropy on integer `targets`, with accuracy
  soft_classification   the same against `soft_targets` when mixup / cutmix made them
  auxiliary_heads_loss  a main head plus weighted auxiliary heads (GoogLeNet's training)
"""

import jax.numpy as jnp

from dlx import losses


def accuracy(logits, labels):
  return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def classification(logits, batch, label_smoothing: float = 0.0):
  """Softmax cross-entropy on integer `targets`, with accuracy."""
  labels = batch["targets"]
  return {
    "loss": losses.softmax_cross_entropy(logits, labels, label_smoothing=label_smoothing),
    "accuracy": accuracy(logits, labels),
  }


def soft_classification(logits, batch, label_smoothing: float = 0.0):
  """Cross-entropy -sum_c t_c log softmax(logits)_c against batch['soft_targets'] when
  present (mixup / cutmix, dlx/data/augment.py; optionally smoothed), accuracy against
  the integer batch['targets']; otherwise `classification`."""
  if "soft_targets" not in batch:
    return classification(logits, batch, label_smoothing=label_smoothing)
  return {
    "loss": losses.softmax_cross_entropy(
      logits, batch["soft_targets"], label_smoothing=label_smoothing
    ),
    "accuracy": accuracy(logits, batch["targets"]),
  }


def auxiliary_heads_loss(outputs, batch, aux_weight: float = 0.3, base_loss=classification):
  """A model with auxiliary classifiers (GoogLeNet, docs/curriculum.md#f5).

  With training outputs (logits, aux1, aux2, ...) the loss is
  L(logits) + aux_weight * (L(aux1) + L(aux2) + ...) (the paper's weight is 0.3) and the
  other metrics are the main head's; with plain logits (evaluation) it is L alone.
  `base_loss` is L, a per-example loss of (logits, batch)."""
  if not isinstance(outputs, tuple):
    return base_loss(outputs, batch)
  logits, *aux_outputs = outputs
  result = base_loss(logits, batch)
  loss = result["loss"]
  for aux_logits in aux_outputs:
    loss = loss + aux_weight * base_loss(aux_logits, batch)["loss"]
  return {**result, "loss": loss}
