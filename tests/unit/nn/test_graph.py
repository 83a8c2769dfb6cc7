"""Message passing over padded graph batches (dlx/nn/graph.py): layers against updates
worked out by hand, padding that changes nothing, and permutation symmetry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.models import gnn
from dlx.nn import graph

S6 = np.sqrt(6.0)


def _adjacency(n, edges):
  a = np.zeros((n, n), np.float32)
  for i, j in edges:
    a[i, j] = a[j, i] = 1.0
  return a


# The path 0 - 1 - 2; and a triangle 0 1 2 with a pendant node 3 on node 2.
PATH = _adjacency(3, [(0, 1), (1, 2)])
TRIANGLE_TAIL = _adjacency(4, [(0, 1), (1, 2), (2, 0), (2, 3)])


def _batch(a, h):
  """One graph as a batch of one: (h (1, N, F), A (1, N, N), mask (1, N))."""
  h = np.asarray(h, np.float32)
  return h[None], a[None], np.ones((1, len(a)), np.float32)


def _pad(h, a, mask, extra, rng):
  """The batch with `extra` padded nodes holding garbage features and edges: what
  padding must not change."""
  b, n, f = h.shape
  hp = rng.standard_normal((b, n + extra, f)).astype(np.float32) * 10
  ap = (rng.random((b, n + extra, n + extra)) < 0.5).astype(np.float32)
  hp[:, :n], ap[:, :n, :n] = h, a
  mp = np.zeros((b, n + extra), np.float32)
  mp[:, :n] = mask
  return hp, ap, mp


def _random_graphs(rng, b=3, n=7, f=4):
  upper = np.triu(rng.random((b, n, n)) < 0.4, 1)
  a = (upper | upper.transpose(0, 2, 1)).astype(np.float32)
  return rng.standard_normal((b, n, f)).astype(np.float32), a, np.ones((b, n), np.float32)


def test_normalized_adjacency_of_a_path_by_hand():
  # Degrees with self-loops 2, 3, 2: entry (i, j) = 1 / sqrt(d_i d_j) on edges and loops.
  expected = np.array([[1 / 2, 1 / S6, 0], [1 / S6, 1 / 3, 1 / S6], [0, 1 / S6, 1 / 2]])
  got = graph.normalized_adjacency(PATH[None], np.ones((1, 3), np.float32))[0]
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_gcn_layer_on_a_path_by_hand():
  h, a, mask = _batch(PATH, [[1.0], [2.0], [3.0]])
  layer = graph.GCNLayer(1)
  params = {"Dense_0": {"kernel": jnp.array([[2.0]])}, "bias": jnp.array([0.5])}
  out = layer.apply({"params": params}, h, a, mask)[0, :, 0]
  # h' = A_hat (2 h) + 0.5 with A_hat as above.
  expected = 2 * np.array([1 / 2 + 2 / S6, 1 / S6 + 2 / 3 + 3 / S6, 2 / S6 + 3 / 2]) + 0.5
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def _identity_gin_params(f):
  eye = jnp.eye(f)
  return {
    "Dense_0": {"kernel": eye, "bias": jnp.zeros(f)},
    "Dense_1": {"kernel": eye, "bias": jnp.zeros(f)},
  }


def test_gin_layer_sums_neighbours_by_hand():
  # With identity MLP weights and positive features the layer is (1 + eps) h_v + sum N(v).
  h, a, mask = _batch(TRIANGLE_TAIL, [[1.0], [2.0], [3.0], [4.0]])
  layer = graph.GINLayer(1, epsilon=0.5)
  out = layer.apply({"params": _identity_gin_params(1)}, h, a, mask)[0, :, 0]
  expected = [1.5 * 1 + 2 + 3, 1.5 * 2 + 1 + 3, 1.5 * 3 + 1 + 2 + 4, 1.5 * 4 + 3]
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_gin_learns_epsilon_when_asked():
  h, a, mask = _batch(TRIANGLE_TAIL, np.ones((4, 2)))
  variables = graph.GINLayer(2, learn_epsilon=True, epsilon=0.1).init(
    jax.random.PRNGKey(0), h, a, mask
  )
  np.testing.assert_allclose(variables["params"]["epsilon"], 0.1)
  assert "epsilon" not in graph.GINLayer(2).init(jax.random.PRNGKey(0), h, a, mask)["params"]


def test_sum_aggregation_tells_degrees_apart_where_gcn_normalisation_does_not():
  # Constant features on two regular graphs of different degree (a 4-cycle and K4): GCN's
  # symmetric normalisation gives every node the same value, GIN's sum counts neighbours.
  cycle, clique = _adjacency(4, [(0, 1), (1, 2), (2, 3), (3, 0)]), 1 - np.eye(4, dtype=np.float32)
  h = np.ones((2, 4, 1), np.float32)
  a, mask = np.stack([cycle, clique]), np.ones((2, 4), np.float32)
  ones = {"params": {"Dense_0": {"kernel": jnp.ones((1, 1))}}}
  gcn = graph.GCNLayer(1, use_bias=False).apply(ones, h, a, mask)
  np.testing.assert_allclose(gcn[0], gcn[1], rtol=1e-6)
  gin = graph.GINLayer(1).apply({"params": _identity_gin_params(1)}, h, a, mask)
  np.testing.assert_allclose(gin[:, :, 0], [[3.0] * 4, [4.0] * 4])


def test_readouts_leave_padded_nodes_out():
  h = jnp.array([[[1.0], [3.0], [100.0]], [[-2.0], [-7.0], [-50.0]]])
  mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(graph.readout(h, mask, "sum"), [[4.0], [-2.0]])
  np.testing.assert_allclose(graph.readout(h, mask, "mean"), [[2.0], [-2.0]])
  np.testing.assert_allclose(graph.readout(h, mask, "max"), [[3.0], [-2.0]])
  empty = graph.readout(h, jnp.zeros_like(mask), "max")
  np.testing.assert_allclose(empty, 0.0)
  with pytest.raises(errors.ConfigError, match="unknown readout 'median'"):
    graph.readout(h, mask, "median")


@pytest.mark.parametrize("layer", [graph.GCNLayer(5), graph.GINLayer(5, learn_epsilon=True)])
def test_padded_nodes_change_nothing_in_a_layer(layer):
  rng = np.random.default_rng(0)
  h, a, mask = _random_graphs(rng)
  variables = layer.init(jax.random.PRNGKey(1), h, a, mask)
  plain = layer.apply(variables, h, a, mask)
  hp, ap, mp = _pad(h, a, mask, 3, rng)
  padded = layer.apply(variables, hp, ap, mp)
  np.testing.assert_allclose(padded[:, :7], plain, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(padded[:, 7:], 0.0)


def _inputs(h, a, mask):
  return {"nodes": jnp.asarray(h), "adjacency": jnp.asarray(a), "node_mask": jnp.asarray(mask)}


MODELS = {
  "gin_graph": gnn.GraphClassifier((6, 6), 3, layer="gin"),
  "gcn_graph_mean": gnn.GraphClassifier((6, 6), 3, layer="gcn", readout="mean"),
  "gin_graph_max": gnn.GraphClassifier((6,), 3, layer="gin", readout="max"),
  "gcn_node": gnn.NodeClassifier((6, 6), 3, layer="gcn"),
  "gin_node": gnn.NodeClassifier((6,), 3, layer="gin"),
  "bag_graph": gnn.BagOfNodes((6,), 3, level="graph"),
  "bag_node": gnn.BagOfNodes((6,), 3, level="node"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padded_nodes_change_nothing_in_a_model(name):
  model, rng = MODELS[name], np.random.default_rng(2)
  h, a, mask = _random_graphs(rng)
  variables = model.init(jax.random.PRNGKey(0), _inputs(h, a, mask))
  plain = model.apply(variables, _inputs(h, a, mask))
  padded = model.apply(variables, _inputs(*_pad(h, a, mask, 4, rng)))
  if "node" in name:
    padded = padded[:, :7]
  np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_permuting_the_nodes_permutes_node_outputs_and_keeps_graph_outputs(name):
  model, rng = MODELS[name], np.random.default_rng(3)
  h, a, mask = _random_graphs(rng)
  order = rng.permutation(7)
  variables = model.init(jax.random.PRNGKey(0), _inputs(h, a, mask))
  out = model.apply(variables, _inputs(h, a, mask))
  permuted = model.apply(variables, _inputs(h[:, order], a[:, order][:, :, order], mask[:, order]))
  expected = out[:, order] if "node" in name else out
  np.testing.assert_allclose(permuted, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", [graph.GCNLayer(5), graph.GINLayer(5)])
def test_layers_are_permutation_equivariant(layer):
  rng = np.random.default_rng(4)
  h, a, mask = _random_graphs(rng)
  order = rng.permutation(7)
  variables = layer.init(jax.random.PRNGKey(0), h, a, mask)
  out = layer.apply(variables, h, a, mask)
  permuted = layer.apply(variables, h[:, order], a[:, order][:, :, order], mask[:, order])
  np.testing.assert_allclose(permuted, out[:, order], rtol=1e-5, atol=1e-5)


def test_the_edges_matter_to_the_gnn_and_not_to_the_bag_of_nodes():
  rng = np.random.default_rng(5)
  h, a, mask = _random_graphs(rng)
  upper = np.triu(rng.random(a.shape) < 0.4, 1)
  rewired = (upper | upper.transpose(0, 2, 1)).astype(np.float32)
  for model, same in ((MODELS["gin_graph"], False), (MODELS["bag_graph"], True)):
    variables = model.init(jax.random.PRNGKey(0), _inputs(h, a, mask))
    before = model.apply(variables, _inputs(h, a, mask))
    after = model.apply(variables, _inputs(h, rewired, mask))
    assert np.allclose(before, after) == same


def test_bad_inputs_are_one_line_errors():
  h, a, mask = _random_graphs(np.random.default_rng(6))
  with pytest.raises(ValueError, match=r"adjacency \(B, N, N\)"):
    graph.GCNLayer(2).init(jax.random.PRNGKey(0), h, a[:, :5], mask)
  with pytest.raises(ValueError, match="graph models read inputs"):
    MODELS["gin_graph"].init(jax.random.PRNGKey(0), {"nodes": h, "adjacency": a})
  with pytest.raises(errors.ConfigError, match="unknown graph layer 'gat'"):
    gnn.GraphClassifier((4,), 2, layer="gat").init(jax.random.PRNGKey(0), _inputs(h, a, mask))
  with pytest.raises(errors.ConfigError, match="unknown level"):
    gnn.BagOfNodes((4,), 2, level="edge").init(jax.random.PRNGKey(0), _inputs(h, a, mask))
