"""Graph tasks (docs/curriculum.md#f25): the losses of graph and node classification and
the report that puts an edge-blind baseline beside the GNN.

  graph_classification  softmax cross-entropy on one label per graph, with accuracy
  node_classification   the same per real node, averaged over each graph's nodes
  final_report          trains `dlx.models.gnn.BagOfNodes` (the GNN's widths, no edges) with
                        the run's optimizer, batch size and steps on the same train split,
                        and reports its test accuracy beside the GNN's: what message
                        passing adds over the node features alone
"""

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import losses
from dlx.data import core
from dlx.data import pipeline
from dlx.models import gnn
from dlx.tasks import classification
from dlx.training import optim

graph_classification = classification.classification


def node_classification(logits, batch):
  """Per-graph means over the real nodes (node_mask) of the cross-entropy and accuracy
  of (B, N, C) logits against (B, N) node labels; padded nodes count for nothing."""
  labels = batch["targets"]
  mask = batch["inputs"]["node_mask"].astype(jnp.float32)
  count = jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
  per_node = losses.softmax_cross_entropy(logits, labels)
  correct = classification.accuracy(logits, labels)
  return {
    "loss": jnp.sum(per_node * mask, axis=-1) / count,
    "accuracy": jnp.sum(correct * mask, axis=-1) / count,
  }


LOSSES = {"graph": graph_classification, "node": node_classification}


def split_accuracy(predict, params, split, loss_fn, batch_size: int) -> float:
  """The mean per-example 'accuracy' of `loss_fn` over a whole split, as the trainer's
  evaluation averages it (`pipeline.apply_in_chunks`: padded rows are dropped)."""
  keys = sorted(split["inputs"])

  def accuracy(params, targets, *inputs):
    batch = {"inputs": dict(zip(keys, inputs)), "targets": targets}
    return loss_fn(predict(params, batch["inputs"]), batch)["accuracy"]

  inputs = [split["inputs"][k] for k in keys]
  values = pipeline.apply_in_chunks(
    accuracy, params, split["targets"], *inputs, batch_size=batch_size
  )
  return float(np.sum(values, dtype=np.float64)) / core.num_examples(split)


def train_model(model, train, loss_fn, *, optimizer_config, num_steps, batch_size, seed):
  """Parameters of `model` (no mutable state, no dropout) after `num_steps` minibatch
  steps on `train` (reshuffled every epoch by `seed`); the trainer's loop without its
  checkpoints and logs, for a baseline that is measured, not kept."""
  n = core.num_examples(train)
  batch_size = min(batch_size, n)
  rng = np.random.default_rng(seed)
  params = model.init(jax.random.PRNGKey(seed), core.take(train, slice(0, 1))["inputs"])["params"]
  optimizer = optim.create_optimizer(optimizer_config, num_steps)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch):
    def objective(p):
      return jnp.mean(loss_fn(model.apply({"params": p}, batch["inputs"]), batch)["loss"])

    grads = jax.grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return jax.tree_util.tree_map(lambda p, u: p + u, params, updates), opt_state

  order, position = rng.permutation(n), 0
  for _ in range(num_steps):
    if position + batch_size > n:
      order, position = rng.permutation(n), 0
    batch = core.take(train, order[position : position + batch_size])
    params, opt_state = step(params, opt_state, batch)
    position += batch_size
  return params


def baseline_model(config, info) -> gnn.BagOfNodes:
  """The bag-of-nodes model with the GNN's widths and the dataset's level."""
  return gnn.BagOfNodes(
    widths=tuple(config_lib.model_kwargs(config)["widths"]),
    num_classes=info["num_classes"],
    level=info["level"],
  )


def final_report(ctx):
  """Test accuracy of the trained GNN beside the bag-of-nodes baseline's, trained with the
  same optimizer, batch size, steps and seed on the same split, and their difference."""
  config, dataset = ctx.config, ctx.dataset
  level = dataset.info["level"]
  loss_fn = LOSSES[level]
  model = baseline_model(config, dataset.info)
  num_steps = config.num_train_steps
  if num_steps < 0:  # epochs: as many steps as the trainer takes
    num_steps = int(np.ceil(config.num_epochs * dataset.size("train") / config.batch_size))
  num_steps = max(num_steps, 1)
  params = train_model(
    model,
    dataset.train,
    loss_fn,
    optimizer_config=config.optimizer,
    num_steps=num_steps,
    batch_size=config.batch_size,
    seed=config.seed,
  )
  predict = jax.jit(lambda p, inputs: model.apply({"params": p}, inputs))
  baseline = {
    split: split_accuracy(predict, params, dataset.split(split), loss_fn, config.eval_batch_size)
    for split in ("validation", "test")
  }
  correct = [
    float(jnp.sum(loss_fn(outputs, batch)["accuracy"]))
    for batch, outputs in ctx.outputs(dataset.test)
  ]
  gnn = sum(correct) / dataset.size("test")
  return {
    "baseline_accuracy": baseline["test"],
    "baseline_validation_accuracy": baseline["validation"],
    "gnn_accuracy": gnn,
    "accuracy_gain": gnn - baseline["test"],
    "baseline_steps": num_steps,
    "level": level,
  }
