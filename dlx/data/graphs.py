"""Synthetic graph datasets (docs/curriculum.md#f25), generated from a seed, no download.

Every split holds padded dense graph batches, the form `dlx.nn.graph` reads:

  inputs['nodes']      (G, N, F) float32  node features, zero on padding
  inputs['adjacency']  (G, N, N) float32  symmetric 0/1, no self-loops, zero on padding
  inputs['node_mask']  (G, N)    float32  1 on real nodes
  targets              (G,) int32 graph classes, or (G, N) int32 node classes

  graph_shapes  graph classification: cycle, tree or wheel. Every node's feature is the
                constant 1 and each class draws its size from the same range, so the
                multiset of node features is the same for every class: only the edges
                tell the classes apart, and an edge-blind model stays at chance.
  sbm_nodes     node classification on contextual stochastic block models: a node's
                features are its block's mean plus noise too strong to classify it
                alone, and edges fall mostly within blocks, so averaging over neighbours
                recovers the block.

Nodes are listed in a random order (real nodes first, then padding), so the position of a
node says nothing. No graph (as an array) occurs twice in a dataset, so the splits are
disjoint; small cycles and wheels of one size are still isomorphic across splits (the
class is the shape), while trees and block models are new graphs.
"""

import numpy as np

from dlx import errors
from dlx.data import core

SHAPES = ("cycle", "tree", "wheel")


def _positive(**values):
  for name, value in values.items():
    if value <= 0:
      raise errors.ConfigError(f"{name}={value!r}: must be positive")


def _edges_to_adjacency(edges, n, order):
  """(n, n) 0/1 adjacency of undirected `edges`, node k renamed order[k]."""
  adjacency = np.zeros((n, n), np.float32)
  edges = np.asarray(edges)
  i, j = order[edges[:, 0]], order[edges[:, 1]]
  adjacency[i, j] = adjacency[j, i] = 1.0
  return adjacency


def shape_graph(rng: np.random.Generator, shape: str, n: int) -> np.ndarray:
  """The (n, n) adjacency of a random labelling of a `shape` on n nodes: a cycle, a
  random recursive tree (node k joins a uniformly drawn earlier node) or a wheel (a
  cycle of n - 1 nodes and a hub joined to all of them)."""
  if shape == "cycle":
    edges = [(k, (k + 1) % n) for k in range(n)]
  elif shape == "tree":
    edges = [(k, int(rng.integers(0, k))) for k in range(1, n)]
  elif shape == "wheel":
    edges = [(k, (k + 1) % (n - 1)) for k in range(n - 1)] + [(k, n - 1) for k in range(n - 1)]
  else:
    raise errors.ConfigError(f"unknown graph shape {shape!r}; choose one of {', '.join(SHAPES)}")
  return _edges_to_adjacency(edges, n, rng.permutation(n))


def _pad(adjacencies, features, max_nodes):
  g = len(adjacencies)
  num_features = features[0].shape[-1]
  nodes = np.zeros((g, max_nodes, num_features), np.float32)
  adjacency = np.zeros((g, max_nodes, max_nodes), np.float32)
  mask = np.zeros((g, max_nodes), np.float32)
  for k, (a, x) in enumerate(zip(adjacencies, features)):
    n = len(a)
    adjacency[k, :n, :n] = a
    nodes[k, :n] = x
    mask[k, :n] = 1.0
  return {"nodes": nodes, "adjacency": adjacency, "node_mask": mask}


def _split(inputs, targets, sizes):
  bounds = np.cumsum(sizes)[:-1]
  return [
    {"inputs": core.take(inputs, rows), "targets": targets[rows]}
    for rows in np.split(np.arange(len(targets)), bounds)
  ]


def graph_shapes(
  *,
  num_train=1200,
  num_validation=300,
  num_test=300,
  min_nodes=8,
  max_nodes=16,
  seed=0,
) -> core.Dataset:
  """Graphs of `min_nodes`-`max_nodes` nodes (the same range for every class), each a
  cycle, a tree or a wheel (its class; every split balanced), with constant node features."""
  _positive(num_train=num_train, num_validation=num_validation, num_test=num_test)
  if not 4 <= min_nodes <= max_nodes:
    raise errors.ConfigError(
      f"min_nodes={min_nodes}, max_nodes={max_nodes}: need 4 <= min_nodes <= max_nodes"
    )
  rng = np.random.default_rng(seed)
  total = num_train + num_validation + num_test
  sizes = [num_train, num_validation, num_test]  # each split balanced
  targets = np.concatenate([rng.permutation(np.arange(k) % len(SHAPES)) for k in sizes])
  targets = targets.astype(np.int32)
  seen, adjacencies = set(), []
  for label in targets:
    for _ in range(1000):
      n = int(rng.integers(min_nodes, max_nodes + 1))
      a = shape_graph(rng, SHAPES[label], n)
      if a.tobytes() not in seen:
        break
    else:
      raise errors.ConfigError(
        f"graph_shapes: cannot draw {total} distinct graphs of {min_nodes}-{max_nodes} "
        "nodes; allow more nodes or ask for fewer graphs"
      )
    seen.add(a.tobytes())
    adjacencies.append(a)
  features = [np.ones((len(a), 1), np.float32) for a in adjacencies]
  inputs = _pad(adjacencies, features, max_nodes)
  train, validation, test = _split(inputs, targets, sizes)
  info = dict(
    name="graph_shapes",
    level="graph",
    num_classes=len(SHAPES),
    class_names=SHAPES,
    num_features=1,
    max_nodes=max_nodes,
  )
  return core.Dataset(train, validation, test, info)


def sbm_graph(rng, num_nodes, num_blocks, p_in, p_out, signal, num_features):
  """(adjacency (N, N), features (N, F), blocks (N,)) of one contextual stochastic block
  model: blocks drawn uniformly, an edge within a block with probability p_in and across
  with p_out, features N(signal * e_block, I) (e_k the k-th unit vector)."""
  blocks = rng.integers(0, num_blocks, size=num_nodes)
  same = blocks[:, None] == blocks[None, :]
  draws = rng.random((num_nodes, num_nodes)) < np.where(same, p_in, p_out)
  upper = np.triu(draws, 1)
  adjacency = (upper | upper.T).astype(np.float32)
  features = rng.standard_normal((num_nodes, num_features)).astype(np.float32)
  features[np.arange(num_nodes), blocks] += signal
  return adjacency, features, blocks.astype(np.int32)


def sbm_nodes(
  *,
  num_train=400,
  num_validation=100,
  num_test=100,
  num_nodes=48,
  num_blocks=3,
  p_in=0.3,
  p_out=0.02,
  signal=1.0,
  num_features=8,
  seed=0,
) -> core.Dataset:
  """Node classification: every example is one block-model graph of `num_nodes` nodes
  whose node labels are their blocks. With the defaults a node's own features give about
  62% (the best rule on them alone), and about 88% of a node's ~5 neighbours share its
  block. Every graph has the same size, so the mean of per-graph accuracies is the
  accuracy over all nodes."""
  _positive(
    num_train=num_train, num_validation=num_validation, num_test=num_test, num_nodes=num_nodes
  )
  if num_features < num_blocks or num_blocks < 2:
    raise errors.ConfigError(
      f"num_blocks={num_blocks}, num_features={num_features}: need 2 <= num_blocks <= "
      "num_features (each block's mean is a unit vector)"
    )
  if not (0 <= p_out <= 1 and 0 <= p_in <= 1):
    raise errors.ConfigError(f"p_in={p_in}, p_out={p_out}: must be probabilities")
  rng = np.random.default_rng(seed)
  total = num_train + num_validation + num_test
  graphs = [
    sbm_graph(rng, num_nodes, num_blocks, p_in, p_out, signal, num_features) for _ in range(total)
  ]
  inputs = _pad([a for a, _, _ in graphs], [x for _, x, _ in graphs], num_nodes)
  targets = np.stack([y for _, _, y in graphs])
  train, validation, test = _split(inputs, targets, [num_train, num_validation, num_test])
  info = dict(
    name="sbm_nodes",
    level="node",
    num_classes=num_blocks,
    num_features=num_features,
    max_nodes=num_nodes,
  )
  return core.Dataset(train, validation, test, info)


LOADERS = {
  "graph_shapes": graph_shapes,
  "sbm_nodes": sbm_nodes,
}
