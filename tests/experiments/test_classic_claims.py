"""The claims of the linear-model experiments, each against an independent reference: the
perceptron converges on separable data (step for step as a NumPy perceptron) and not on
XOR; closed-form least squares equals gradient descent and scikit-learn; softmax
regression matches scikit-learn's LogisticRegression. (Bagging and batch sizes:
tests/experiments/test_bagging_and_batch_size.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import linear_model

from dlx import experiment
from dlx import losses
from dlx import train
from dlx.data import pipeline
from dlx.tasks.classic import hessian
from dlx.tasks.classic import logistic


def _train(name, tmp_path, arg=None, **overrides):
  """A run of `name` as configured, compiled fast (XLA level 0) and checkpointed once."""
  exp = experiment.load(name)
  config = exp.config(arg)
  overrides = {"fast_compile": True, "checkpoint_every_steps": 100_000, **overrides}
  for field, value in overrides.items():
    config[field] = value
  return exp, config, train.train_and_evaluate(config, str(tmp_path), experiment=exp)


def _numpy_perceptron(x, y, lr, steps, seed):
  """Rosenblatt's rule in float64, one example per step in the trainer's data order."""
  w, b, updates, last = np.zeros(x.shape[1]), 0.0, 0, -1
  for step in range(steps):
    i = pipeline.epoch_permutation(len(x), seed, step // len(x))[step % len(x)]
    error = y[i] - (1 if x[i] @ w + b >= 0 else 0)
    if error:
      w, b, updates, last = w + lr * error * x[i], b + lr * error, updates + 1, step
  return w, b, updates, last


def test_perceptron_converges_on_separable_iris_like_numpy(tmp_path):
  exp, config, results = _train("perceptron", tmp_path)
  report = results["report"]
  assert report["converged"] and report["train_accuracy"] == 1.0
  train_split = exp.get_dataset(config, None).train
  steps = report["steps"]
  w, b, updates, last = _numpy_perceptron(
    train_split["inputs"].astype(np.float64),
    train_split["targets"],
    config.optimizer.learning_rate,
    steps,
    config.seed,
  )
  assert report["updates"] == updates > 0
  assert report["epochs_to_convergence"] == last // report["steps_per_epoch"] + 1
  assert report["epochs_to_convergence"] < report["epochs_run"]
  np.testing.assert_allclose(report["weights"], w, atol=1e-4)
  assert report["bias"] == pytest.approx(b, abs=1e-4)


def test_perceptron_cannot_learn_xor(tmp_path):
  _, _, results = _train("perceptron", tmp_path, "xor", num_epochs=5.0)
  report = results["report"]
  assert not report["converged"] and report["epochs_to_convergence"] is None
  # No line gets more than three of XOR's four corners right.
  assert report["train_accuracy"] <= 0.8 and results["test"]["accuracy"] <= 0.8
  # It keeps making mistakes to the end: updates in the last epoch too.
  assert report["updates"] > report["steps"] / 10


def test_closed_form_equals_gradient_descent_and_sklearn(tmp_path):
  exp, config, results = _train("linear_regression", tmp_path)
  report = results["report"]
  assert report["agree"] and report["max_parameter_difference"] < 1e-3
  train_split = exp.get_dataset(config, None).train
  reference = linear_model.LinearRegression().fit(train_split["inputs"], train_split["targets"])
  np.testing.assert_allclose(report["gradient_descent"]["weights"], reference.coef_[0], atol=1e-3)
  assert report["gradient_descent"]["bias"] == pytest.approx(reference.intercept_[0], abs=1e-3)
  assert report["gradient_descent_test_mse"] == pytest.approx(
    report["closed_form_test_mse"], rel=1e-3
  )
  # The noise is 0.1: the test MSE is about its variance.
  assert report["closed_form_test_mse"] == pytest.approx(0.01, rel=0.3)


@pytest.mark.parametrize("arg,num_classes", [(None, 2), ("iris", 3)])
def test_softmax_regression_matches_sklearn(tmp_path, arg, num_classes):
  exp, config, results = _train("logistic_regression", tmp_path, arg, eval_every_steps=100_000)
  dataset = exp.get_dataset(config, None)
  n = len(dataset.train["inputs"])
  # scikit-learn minimises C sum CE + |w|^2 / 2; ours mean CE + (l2 / 2) |W|^2 (for two
  # classes sklearn's one w is our w_1 - w_0, whose penalty is half as large).
  c = (2.0 if num_classes == 2 else 1.0) / (config.l2 * n)
  reference = linear_model.LogisticRegression(C=c, max_iter=10_000).fit(
    dataset.train["inputs"], dataset.train["targets"]
  )
  sklearn_accuracy = reference.score(dataset.test["inputs"], dataset.test["targets"])
  assert abs(results["test"]["accuracy"] - sklearn_accuracy) <= 0.01
  assert results["report"]["sklearn_test_accuracy"] == pytest.approx(sklearn_accuracy, abs=0.01)
  if num_classes == 2:  # a line cannot follow the moons
    assert 0.8 < results["test"]["accuracy"] < 0.95


@pytest.mark.parametrize("num_classes", [2, 3])
def test_sklearn_c_gives_the_same_optimum(num_classes):
  """At scikit-learn's solution for C = sklearn_c(l2, n, k), the gradient of our objective
  (mean cross-entropy + (l2 / 2) |W|^2, biases free) is zero."""
  rng = np.random.default_rng(0)
  n, l2 = 200, 0.05
  x = rng.standard_normal((n, 3))
  y = rng.integers(0, num_classes, n)
  fit = linear_model.LogisticRegression(
    C=logistic.sklearn_c(l2, n, num_classes), tol=1e-10, max_iter=10_000
  ).fit(x, y)
  if num_classes == 2:  # one vector: split it as the softmax's optimum does
    kernel = np.stack([-fit.coef_[0], fit.coef_[0]], 1) / 2
    bias = np.array([-fit.intercept_[0], fit.intercept_[0]]) / 2
  else:
    kernel, bias = fit.coef_.T, fit.intercept_

  def objective(params):
    logits = jnp.asarray(x) @ params["kernel"] + params["bias"]
    ce = jnp.mean(losses.softmax_cross_entropy(logits, jnp.asarray(y)))
    return ce + 0.5 * l2 * jnp.sum(params["kernel"] ** 2)

  params = {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}
  grads = jax.jit(jax.grad(objective))(params)
  # A C off by the binary case's factor 2 leaves a gradient of about l2 / 2 |W| ~ 1e-2.
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) < 1e-4


def test_fresh_init_is_the_trainers_init():
  exp = experiment.load("mlp_xor")
  config = exp.config()
  model = exp.get_model(config)
  sample = np.zeros((2, 2), np.float32)
  init = train.create_init_fn(model, exp.make_optimizer(config, 1), sample, config.seed)
  expected = jax.jit(init)(jax.random.PRNGKey(config.seed))
  ours = hessian.fresh_init(model, sample, config.seed)
  for a, b in zip(jax.tree.leaves(ours["params"]), jax.tree.leaves(expected.params)):
    np.testing.assert_array_equal(a, b)
