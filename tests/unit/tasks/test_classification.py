"""Classification tasks (dlx/tasks/classification.py): soft labels and auxiliary heads."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx.models import googlenet
from dlx.tasks import classification

N = 8
KEY = jax.random.key(0)


def test_soft_classification():
  logits = jax.random.normal(KEY, (N, 5))
  targets = jnp.arange(N) % 5
  hard = {"targets": targets}
  onehot = {"targets": targets, "soft_targets": jax.nn.one_hot(targets, 5)}
  for smoothing in (0.0, 0.1):
    a = classification.soft_classification(logits, onehot, label_smoothing=smoothing)
    b = classification.classification(logits, hard, label_smoothing=smoothing)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_array_equal(a["accuracy"], b["accuracy"])
    assert a["loss"].shape == (N,)
  fallback = classification.soft_classification(logits, hard)
  np.testing.assert_allclose(fallback["loss"], classification.classification(logits, hard)["loss"])
  # A 50/50 soft label: the mean of the two hard losses.
  other = (targets + 1) % 5
  soft = 0.5 * jax.nn.one_hot(targets, 5) + 0.5 * jax.nn.one_hot(other, 5)
  value = classification.soft_classification(logits, {"targets": targets, "soft_targets": soft})
  expected = 0.5 * (
    losses.softmax_cross_entropy(logits, targets) + losses.softmax_cross_entropy(logits, other)
  )
  np.testing.assert_allclose(value["loss"], expected, rtol=1e-5)


def test_auxiliary_heads_loss_weights_aux_heads():
  batch = {"targets": jnp.array([0, 1])}
  log3 = math.log(3.0)
  main = jnp.zeros((2, 2))  # CE = log 2 for both examples.
  aux1 = jnp.array([[0.0, log3], [0.0, log3]])  # p(target): 1/4, 3/4.
  aux2 = jnp.array([[log3, 0.0], [log3, 0.0]])  # p(target): 3/4, 1/4.
  outputs = googlenet.GoogLeNetOutputs(main, aux1, aux2)
  result = classification.auxiliary_heads_loss(outputs, batch, aux_weight=0.3)
  expected = math.log(2) + 0.3 * (math.log(4) + math.log(4 / 3))
  np.testing.assert_allclose(result["loss"], [expected, expected], rtol=1e-6)
  assert result["loss"].shape == result["accuracy"].shape == (2,)
  plain = classification.auxiliary_heads_loss(aux1, batch)
  np.testing.assert_allclose(plain["loss"], [math.log(4), math.log(4 / 3)], rtol=1e-6)
  np.testing.assert_array_equal(plain["accuracy"], [0.0, 1.0])
