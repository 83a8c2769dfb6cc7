"""Self-supervised contrastive pre-training (SimCLR, docs/curriculum.md#f26): the loss on
two views' projections, the config, and the evaluation of the frozen representation
(a linear probe and k-nearest neighbours on the encoder's features, beside the same
encoder at its random initialisation).

  NT-Xent (Chen et al., 2020, eq. 1): the 2N views z_k = g(f(view)) / ||.||, for the
  view k with positive p(k) (the other view of its image):
    l_k = -log exp(z_k . z_p(k) / T) / sum_{j != k} exp(z_k . z_j / T)
  with 2N - 2 negatives; per image, the mean of its two views' l_k.
  'clip' uses dlx.losses.clip_contrastive instead (only the other view's N - 1
  images are negatives, symmetric InfoNCE).

experiments/self_supervised/simclr_fashion_mnist.py pre-trains; simclr_probe_fashion_mnist.py
trains a linear head on the frozen encoder through the trainer (`init_from`), and
simclr_supervised_fashion_mnist.py trains the same encoder with labels.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dlx import config as config_lib
from dlx import errors
from dlx import losses
from dlx.data import images as images_lib
from dlx.data import pipeline
from dlx.data import views as views_lib
from dlx.models import simclr
from dlx.training import optim

LOSSES = ("nt_xent", "clip")
VIEWS_IMAGE = "views"  # visualize writes views_<step>.png
ENCODER_KEYS = ("widths", "convs_per_stage")


def _normalise(x):
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-12))


def nt_xent(z1, z2, temperature, valid=None):
  """NT-Xent per image (see the module docstring): (N, D), (N, D) -> (N,).

  valid: optional (N,) bool; the views of invalid rows (an evaluation batch's padding)
  are no candidates for any view (their own losses are still returned)."""
  z1, z2 = jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)
  n = z1.shape[0]
  z = _normalise(jnp.concatenate([z1, z2]))
  logits = z @ z.T / temperature
  candidate = ~jnp.eye(2 * n, dtype=bool)
  if valid is not None:
    valid = jnp.asarray(valid, bool)
    candidate = candidate & jnp.concatenate([valid, valid])[None, :]
  logits = jnp.where(candidate, logits, -jnp.inf)
  positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  per_view = jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(2 * n), positive]
  per_image = 0.5 * (per_view[:n] + per_view[n:])
  return per_image if valid is None else jnp.where(valid, per_image, 0.0)


def positive_top1(z1, z2, valid=None):
  """(N,): the fraction of the image's two views whose most similar other view (among
  the 2N - 1) is its positive."""
  n = z1.shape[0]
  z = _normalise(jnp.concatenate([jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)]))
  sim = z @ z.T
  candidate = ~jnp.eye(2 * n, dtype=bool)
  if valid is not None:
    valid = jnp.asarray(valid, bool)
    candidate = candidate & jnp.concatenate([valid, valid])[None, :]
  best = jnp.argmax(jnp.where(candidate, sim, -jnp.inf), axis=1)
  hit = (best == jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])).astype(jnp.float32)
  return 0.5 * (hit[:n] + hit[n:])


def get_loss(config):
  """loss(outputs, batch) on the model's {'z1', 'z2'}: the contrastive loss, the
  positive's top-1 rate and the positive pairs' cosine similarity, per image."""
  if config.contrastive_loss not in LOSSES:
    raise errors.ConfigError(
      f"--config.contrastive_loss={config.contrastive_loss!r}; choose one of {', '.join(LOSSES)}"
    )
  temperature, kind = config.temperature, config.contrastive_loss
  if not temperature > 0:
    raise errors.ConfigError(f"--config.temperature must be > 0, got {temperature}")

  def loss(outputs, batch):
    z1, z2 = outputs["z1"], outputs["z2"]
    valid = batch["mask"] > 0 if "mask" in batch else None
    if kind == "nt_xent":
      value = nt_xent(z1, z2, temperature, valid)
    else:
      value = losses.clip_contrastive(z1, z2, temperature)
    cosine = jnp.sum(_normalise(z1) * _normalise(z2), axis=-1)
    return {"loss": value, "positive_top1": positive_top1(z1, z2, valid), "positive_cosine": cosine}

  return loss


# ------------------------------------------------------------------ config, model, data


def probe_defaults():
  """config.probe: the linear probe and k-NN the final report runs on frozen features."""
  return ml_collections.ConfigDict(
    dict(
      train_examples=0,  # train-split examples the probe fits (0 = all)
      steps=1000,  # full-batch Adam steps of the linear classifier
      learning_rate=0.05,
      weight_decay=1e-4,  # L2 on the classifier's weights
      knn_k=20,
    )
  )


def fashion_mnist_config(epochs: float = 10.0):
  """SimCLR on standardised Fashion-MNIST with the small ConvEncoder."""
  config = config_lib.base_config()
  config.dataset = "fashion_mnist"
  config.num_classes = 10
  config.model = config_lib.model_config(
    widths=(16, 32, 64), convs_per_stage=1, projection_hidden=128, projection_dim=64
  )
  config.views = ml_collections.ConfigDict(
    dict(min_scale=0.3, max_scale=1.0, flip=True, brightness=0.4, contrast=0.4, jitter_p=0.8)
  )
  config.contrastive_loss = "nt_xent"
  config.temperature = 0.2
  config.batch_size = 128
  config.eval_batch_size = 500  # divides validation (6,000) and test (10,000): no padding
  config.num_epochs = epochs
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 100
  config.train_eval_examples = 5000
  config.probe = probe_defaults()
  return config


def smoke(config):
  config_lib.smoke(config, **{"model.widths": (4, 8), "model.projection_hidden": 8})
  config.probe.steps = 20
  config.probe.knn_k = 3
  # Crops only: each random draw (flip, jitter) adds compile time, most of a smoke run.
  config.views.flip = False
  config.views.brightness = config.views.contrast = 0.0
  return config


def get_dataset(config, data_dir):
  return images_lib.load_images(config.dataset, data_dir=data_dir)


def get_model(config):
  return simclr.SimCLR(
    **config_lib.model_kwargs(config), views=views_lib.make_views(config.views.to_dict())
  )


def visualize(ctx, batch):
  """views: 8 test images, then their first random views, then their second (in the
  grid's reading order)."""
  images = jnp.asarray(batch["inputs"][:8])
  make = jax.jit(
    views_lib.make_views(ctx.config.views.to_dict()),
    compiler_options=config_lib.compiler_options(ctx.config),
  )
  first, second = make(ctx.rng, images)
  grid = np.concatenate([np.asarray(x) for x in (images, first, second)])
  low, high = grid.min(), grid.max()
  return {VIEWS_IMAGE: (grid - low) / max(high - low, 1e-6)}


# ------------------------------------------------------------------ frozen features


def feature_fn(model, config):
  """A jitted (variables, images) -> the encoder's features f(x), evaluation mode."""
  return jax.jit(
    lambda v, x: model.apply(v, x, train=False, method="features"),
    compiler_options=config_lib.compiler_options(config),
  )


def features(encode, variables, images, batch_size: int = 1000):
  """`encode(variables, chunk)` over `images` in fixed-size chunks, as one float32 NumPy
  array. Kept for existing callers; the generic helper is dlx.data.pipeline.apply_in_chunks."""
  return pipeline.apply_in_chunks(encode, variables, images, batch_size=batch_size).astype(
    np.float32
  )


def initial_encoder(model, sample_inputs, seed: int, config=None):
  """The encoder's variables at the trainer's initialisation for this seed (the keys of
  dlx.train.create_init_fn; Flax draws each module's from its path, so initialising the
  encoder alone gives the same values)."""
  params_rng, dropout_rng, sample_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
  rngs = {"params": params_rng, "dropout": dropout_rng, "sample": sample_rng}
  init = lambda x: model.init(rngs, x, train=False, method="features")
  options = config_lib.compiler_options(config) if config is not None else None
  return jax.jit(init, compiler_options=options)(sample_inputs)


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit_linear(x, y, *, num_classes, steps, learning_rate, weight_decay):
  params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))

  def objective(p):
    logits = x @ p["w"] + p["b"]
    return jnp.mean(losses.softmax_cross_entropy(logits, y)) + 0.5 * weight_decay * jnp.sum(
      jnp.square(p["w"])
    )

  def step(carry, _):
    p, opt_state = carry
    grads = jax.grad(objective)(p)
    updates, opt_state = tx.update(grads, opt_state, p)
    return (optax.apply_updates(p, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return params


def linear_probe(
  train_x,
  train_y,
  test_x,
  test_y,
  num_classes: int,
  *,
  steps: int = 1000,
  learning_rate: float = 0.05,
  weight_decay: float = 1e-4,
):
  """(train accuracy, test accuracy) of a multinomial logistic regression fitted by
  full-batch Adam on the train features (standardised with their mean and std)."""
  train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
  mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
  train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
  params = _fit_linear(
    jnp.asarray(train_x),
    jnp.asarray(train_y, jnp.int32),
    num_classes=num_classes,
    steps=steps,
    learning_rate=learning_rate,
    weight_decay=weight_decay,
  )

  def accuracy(x, y):
    predicted = np.argmax(np.asarray(x @ params["w"] + params["b"]), axis=1)
    return float(np.mean(predicted == np.asarray(y)))

  return accuracy(train_x, train_y), accuracy(test_x, test_y)


@functools.partial(jax.jit, static_argnames=("num_classes", "k"))
def _knn_vote(bank, labels, queries, *, num_classes, k):
  _, nearest = jax.lax.top_k(_normalise(queries) @ _normalise(bank).T, k)
  counts = jax.nn.one_hot(labels[nearest], num_classes).sum(axis=1)
  return jnp.argmax(counts, axis=1)


def knn_predict(train_x, train_y, test_x, num_classes: int, k: int = 20, chunk: int = 1000):
  """Majority vote of the k train points of highest cosine similarity (ties: the lower
  class id), for each test point."""
  if not 1 <= k <= len(train_x):
    raise errors.ConfigError(f"k-NN needs 1 <= k <= {len(train_x)} train points, got k={k}")
  bank, labels = np.asarray(train_x, np.float32), np.asarray(train_y, np.int32)
  vote = lambda _, queries: _knn_vote(bank, labels, queries, num_classes=num_classes, k=k)
  return pipeline.apply_in_chunks(vote, None, np.asarray(test_x, np.float32), batch_size=chunk)


def knn_accuracy(train_x, train_y, test_x, test_y, num_classes: int, k: int = 20) -> float:
  return float(np.mean(knn_predict(train_x, train_y, test_x, num_classes, k) == np.asarray(test_y)))


def evaluate_representation(train_x, train_y, test_x, test_y, num_classes, probe) -> dict:
  """Linear-probe (train, test) accuracy and k-NN test accuracy of frozen features."""
  probe_train, probe_test = linear_probe(
    train_x,
    train_y,
    test_x,
    test_y,
    num_classes,
    steps=probe.steps,
    learning_rate=probe.learning_rate,
    weight_decay=probe.weight_decay,
  )
  knn = knn_accuracy(train_x, train_y, test_x, test_y, num_classes, min(probe.knn_k, len(train_x)))
  return {"probe_train": probe_train, "probe_test": probe_test, "knn": knn}


def final_report(ctx):
  """Freezes the encoder (features before the projection head) and scores them on the
  labels: a linear probe fitted on the train split and k-NN (cosine), both on the test
  split, beside the same encoder at the run's random initialisation."""
  config, probe = ctx.config, ctx.config.probe
  train, test = ctx.dataset.train, ctx.dataset.test
  n_train = probe.train_examples or len(train["targets"])
  train_images, train_y = train["inputs"][:n_train], train["targets"][:n_train]
  test_images, test_y = test["inputs"], test["targets"]
  start = initial_encoder(ctx.model, train_images[:2], config.seed, config)
  encode = feature_fn(ctx.model, config)
  report = {"probe_train_examples": int(n_train), "feature_dim": 0}
  for name, variables in (("", ctx.variables), ("random_init_", start)):
    train_x = features(encode, variables, train_images)
    test_x = features(encode, variables, test_images)
    report["feature_dim"] = int(train_x.shape[1])
    scores = evaluate_representation(train_x, train_y, test_x, test_y, config.num_classes, probe)
    report[f"{name}linear_probe_accuracy"] = scores["probe_test"]
    report[f"{name}linear_probe_train_accuracy"] = scores["probe_train"]
    report[f"{name}knn_accuracy"] = scores["knn"]
  report["probe_gain_over_random_init"] = (
    report["linear_probe_accuracy"] - report["random_init_linear_probe_accuracy"]
  )
  report["random_init_probe_accuracy"] = report.pop("random_init_linear_probe_accuracy")
  return report


# ------------------------------------------------------------------ the probe run


def probe_config(frozen: bool = True, epochs: float = 5.0):
  """A LinearProbe on Fashion-MNIST (classification loss): frozen=True trains the head
  only (start it from a SimCLR run with init_from_keys='encoder'), frozen=False trains
  encoder and head with labels (the supervised reference)."""
  config = config_lib.base_config()
  config.dataset = "fashion_mnist"
  config.num_classes = 10
  config.model = ml_collections.ConfigDict(
    {"num_classes": config.get_ref("num_classes"), "widths": (16, 32, 64), "convs_per_stage": 1}
  )
  config.frozen = frozen
  config.init_from_keys = "encoder" if frozen else ""
  config.batch_size = 128
  config.eval_batch_size = 500
  config.num_epochs = epochs
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-2 if frozen else 2e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine"
  config.best_metric = "accuracy"
  config.best_mode = "max"
  config.train_eval_examples = 5000
  return config


def probe_model(config):
  return simclr.LinearProbe(**config_lib.model_kwargs(config), frozen=config.frozen)


def probe_optimizer(config, total_steps):
  """The configured optimizer on the head; with a frozen encoder, a zero update on the
  encoder (so weight decay does not shrink it either)."""
  tx = optim.create_optimizer(config.optimizer, total_steps)
  if not config.frozen:
    return tx

  def labels(params):
    return {
      k: jax.tree.map(lambda _: "frozen" if k == "encoder" else "train", v)
      for k, v in params.items()
    }

  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
