"""Graph data and tasks (dlx/data/graphs.py, dlx/tasks/graphs.py): generators fixed by the
seed, disjoint splits, node features that do not give the class away, the masked node
loss, the edge-blind baseline, and the contract of the two GNN experiments."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from dlx import data
from dlx import errors
from dlx import experiment
from dlx import train
from dlx.data import core
from dlx.data import graphs as graph_data
from dlx.models import gnn
from dlx.tasks import graphs

SMALL_SHAPES = dict(num_train=90, num_validation=30, num_test=30)
SMALL_SBM = dict(num_train=40, num_validation=10, num_test=10, num_nodes=24)
GENERATORS = [("graph_shapes", SMALL_SHAPES), ("sbm_nodes", SMALL_SBM)]


def _arrays(ds):
  return {
    f"{s}/{k}": v
    for s in core.SPLITS
    for k, v in {**ds.split(s)["inputs"], "targets": ds.split(s)["targets"]}.items()
  }


@pytest.mark.parametrize("name,kwargs", GENERATORS)
def test_the_seed_fixes_the_data(name, kwargs):
  first, again = data.load(name, seed=3, **kwargs), data.load(name, seed=3, **kwargs)
  other = data.load(name, seed=4, **kwargs)
  for key, value in _arrays(first).items():
    np.testing.assert_array_equal(value, _arrays(again)[key], err_msg=key)
  assert not np.array_equal(first.train["inputs"]["adjacency"], other.train["inputs"]["adjacency"])


@pytest.mark.parametrize("name,kwargs", GENERATORS)
def test_splits_are_disjoint_and_sized(name, kwargs):
  ds = data.load(name, **kwargs)
  seen = {}
  for split in core.SPLITS:
    assert ds.size(split) == kwargs[f"num_{split}"]
    for a in ds.split(split)["inputs"]["adjacency"]:
      key = a.tobytes()
      assert seen.setdefault(key, split) == split, f"a graph is in {seen[key]} and {split}"
  assert len(seen) == sum(ds.size(s) for s in core.SPLITS)  # no graph twice in a split either


@pytest.mark.parametrize("name,kwargs", GENERATORS)
def test_graphs_are_undirected_simple_and_padded_with_zeros(name, kwargs):
  ds = data.load(name, **kwargs)
  inputs = ds.test["inputs"]
  a, mask, nodes = inputs["adjacency"], inputs["node_mask"], inputs["nodes"]
  np.testing.assert_array_equal(a, a.transpose(0, 2, 1))
  assert set(np.unique(a)) <= {0.0, 1.0}
  assert not np.any(np.diagonal(a, axis1=1, axis2=2))
  off = mask == 0
  assert not np.any(nodes[off]) and not np.any(a[off]) and not np.any(a.transpose(0, 2, 1)[off])
  # Real nodes come first, then padding.
  np.testing.assert_array_equal(mask, np.sort(mask, axis=1)[:, ::-1])


def test_graph_shapes_are_the_shapes_their_labels_name():
  ds = data.load("graph_shapes", **SMALL_SHAPES)
  for split in core.SPLITS:
    inputs, targets = ds.split(split)["inputs"], ds.split(split)["targets"]
    for a, mask, label in zip(inputs["adjacency"], inputs["node_mask"], targets):
      n = int(mask.sum())
      degree = a.sum(1)[:n]
      edges = int(a.sum()) // 2
      shape = graph_data.SHAPES[label]
      if shape == "cycle":
        assert edges == n and set(degree) == {2.0}
      elif shape == "tree":
        assert edges == n - 1 and degree.min() >= 1  # n - 1 edges, connected: a tree
      else:
        assert edges == 2 * (n - 1) and sorted(degree)[-1] == n - 1
        assert set(sorted(degree)[:-1]) == {3.0}


def test_graph_shapes_node_features_do_not_reveal_the_class():
  ds = data.load("graph_shapes", **SMALL_SHAPES)
  inputs, targets = ds.train["inputs"], ds.train["targets"]
  mask = inputs["node_mask"]
  np.testing.assert_array_equal(inputs["nodes"][..., 0], mask)  # constant 1 on real nodes
  np.testing.assert_array_equal(np.bincount(targets), [30, 30, 30])
  sizes = mask.sum(1)
  for label in range(3):  # every class draws its size from the same range
    assert sizes[targets == label].min() <= 9 and sizes[targets == label].max() >= 15


def test_sbm_edges_fall_mostly_within_blocks():
  ds = data.load("sbm_nodes", **SMALL_SBM)
  a, blocks = ds.train["inputs"]["adjacency"], ds.train["targets"]
  same = blocks[:, :, None] == blocks[:, None, :]
  assert a[same].sum() / a.sum() > 0.75
  assert set(np.unique(blocks)) == {0, 1, 2}


@pytest.mark.parametrize(
  "name,kwargs,message",
  [
    ("graph_shapes", dict(min_nodes=3), "need 4 <= min_nodes"),
    ("graph_shapes", dict(num_train=0), "num_train=0: must be positive"),
    ("graph_shapes", dict(num_train=5000, min_nodes=4, max_nodes=4), "cannot draw"),
    ("sbm_nodes", dict(num_blocks=9), "num_blocks <= num_features"),
    ("sbm_nodes", dict(p_in=1.5), "must be probabilities"),
  ],
)
def test_bad_generator_arguments_are_config_errors(name, kwargs, message):
  with pytest.raises(errors.ConfigError, match=message):
    data.load(name, **kwargs)


def test_node_loss_counts_only_real_nodes():
  # Graph 0: 2 real nodes, one right; graph 1: 3 real nodes, all right. Padded nodes wrong.
  logits = jnp.array(
    [
      [[5.0, 0.0], [5.0, 0.0], [5.0, 0.0]],
      [[0.0, 5.0], [5.0, 0.0], [0.0, 5.0]],
    ]
  )
  batch = {
    "inputs": {"node_mask": jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])},
    "targets": jnp.array([[0, 1, 1], [1, 0, 1]]),
  }
  out = graphs.node_classification(logits, batch)
  np.testing.assert_allclose(out["accuracy"], [0.5, 1.0])
  low, high = np.log1p(np.exp(-5.0)), np.log1p(np.exp(5.0))
  np.testing.assert_allclose(out["loss"], [(low + high) / 2, low], rtol=1e-5)


def _baseline_accuracy(name, kwargs):
  ds = data.load(name, **kwargs)
  exp = experiment.load("gnn_graphs" if ds.info["level"] == "graph" else "gnn_nodes")
  config = exp.config()
  model = gnn.BagOfNodes((16,), ds.info["num_classes"], level=ds.info["level"])
  loss_fn = graphs.LOSSES[ds.info["level"]]
  params = graphs.train_model(
    model,
    ds.train,
    loss_fn,
    optimizer_config=config.optimizer,
    num_steps=150,
    batch_size=32,
    seed=0,
  )
  predict = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
  return graphs.split_accuracy(predict, params, ds.test, loss_fn, 64)


def test_the_bag_of_nodes_baseline_learns_what_node_features_tell():
  # Block-model features carry the block, noisily: the baseline beats chance (1/3) there,
  # and stays near chance on graph shapes, whose node features are all alike.
  assert _baseline_accuracy("sbm_nodes", dict(SMALL_SBM, num_train=80)) > 0.5
  shapes = _baseline_accuracy("graph_shapes", dict(num_train=300, num_validation=30, num_test=90))
  assert shapes < 0.5


@pytest.mark.slow  # the fast suite's smoke tests run both; this checks the report's keys
@pytest.mark.parametrize("name", ["gnn_graphs", "gnn_nodes"])
def test_gnn_experiments_write_the_contract_keys(name, tmp_path):
  exp = experiment.load(name)
  train.train_and_evaluate(exp.config("smoke"), str(tmp_path), experiment=exp)
  results = json.loads((tmp_path / "results.json").read_text())
  for key in ("test.accuracy", "report.baseline_accuracy"):
    assert 0.0 <= experiment.lookup(results, key) <= 1.0, key
  assert results["report"]["gnn_accuracy"] == pytest.approx(results["test"]["accuracy"])
  assert set(exp.targets) == {"test.accuracy", "report.accuracy_gain"}
