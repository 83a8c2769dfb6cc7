"""Softmax (logistic) regression beside scikit-learn (docs/curriculum.md#f1): the L2
penalty scikit-learn puts on its coefficients as an optimizer, the C that gives
scikit-learn the same objective, and the report comparing the two fits.
"""

import numpy as np
import optax

from dlx import losses
from dlx.tasks.classic import common
from dlx.training import optim


def make_optimizer(config, total_steps):
  """The config's optimizer after an L2 penalty of strength config.l2 on the kernels, not
  the biases: as if (l2 / 2) ||W||^2 were added to the mean loss, the penalty
  scikit-learn's LogisticRegression puts on its coefficients."""
  return optax.chain(
    losses.penalty_transform("l2", config.l2, mask=losses.exclude_biases),
    optim.create_optimizer(config.optimizer, total_steps),
  )


def sklearn_c(l2: float, num_examples: int, num_classes: int) -> float:
  """scikit-learn's C for the same objective as mean cross-entropy + (l2/2) ||W||^2 of a
  softmax layer. Multinomial: C sum CE + ||W||^2 / 2, so C = 1 / (l2 n). Two classes:
  scikit-learn fits one weight vector w = w_1 - w_0, and the smallest (l2/2) (|w_0|^2 +
  |w_1|^2) with that difference is (l2/4) |w|^2, so C = 2 / (l2 n)."""
  return (2.0 if num_classes == 2 else 1.0) / (l2 * num_examples)


def final_report(ctx):
  """Test accuracy of the trained softmax layer beside scikit-learn's LogisticRegression
  (lbfgs) fitted to the same train split with the same L2 penalty, and how often the two
  predict the same class."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top

  train, test = ctx.dataset.train, ctx.dataset.test
  x = np.asarray(train["inputs"], np.float64).reshape(len(train["inputs"]), -1)
  num_classes = int(ctx.dataset.info.get("num_classes", np.max(train["targets"]) + 1))
  l2 = ctx.config.l2
  options = {"C": sklearn_c(l2, len(x), num_classes)} if l2 > 0 else {"penalty": None}
  reference = linear_model.LogisticRegression(max_iter=10_000, tol=1e-8, **options)
  reference.fit(x, train["targets"])
  logits = common.split_outputs(ctx, test)
  ours = logits.argmax(1)
  theirs = reference.predict(np.asarray(test["inputs"], np.float64).reshape(len(ours), -1))
  labels = np.asarray(test["targets"])
  return {
    "test_accuracy": float(np.mean(ours == labels)),
    "sklearn_test_accuracy": float(np.mean(theirs == labels)),
    "accuracy_difference": float(np.mean(ours == labels) - np.mean(theirs == labels)),
    "prediction_agreement": float(np.mean(ours == theirs)),
    "sklearn_C": options.get("C"),
  }
