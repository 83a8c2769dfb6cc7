"""Graph neural network classifiers (docs/curriculum.md#f25) on dlx/nn/graph.py's layers.

  GraphClassifier   GNN, readout of every layer (Xu et al.'s Eq. 4.2), linear head
  NodeClassifier    GNN, a linear head on every node
  BagOfNodes        the baseline that ignores edges: the same widths as a per-node MLP,
                    pooled for graph labels

Models read `inputs = {'nodes': h, 'adjacency': A, 'node_mask': m}` (padded batches, see
dlx/nn/graph.py).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx import errors
from dlx.nn.dense import Dense
from dlx.nn.graph import GNN
from dlx.nn.graph import readout

INPUT_KEYS = ("nodes", "adjacency", "node_mask")


def _graph_inputs(inputs):
  if not isinstance(inputs, dict) or any(k not in inputs for k in INPUT_KEYS):
    got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
    raise ValueError(f"graph models read inputs {{{', '.join(INPUT_KEYS)}}}, got {got}")
  return tuple(inputs[k] for k in INPUT_KEYS)


class GraphClassifier(nn.Module):
  """(B, num_classes) logits per graph: the readout of the input and of every layer,
  concatenated (Xu et al.'s Eq. 4.2, so shallow structure is not washed out), then a
  linear layer."""

  widths: Sequence[int]
  num_classes: int
  layer: str = "gin"
  readout: str = "sum"
  learn_epsilon: bool = False

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    del train  # no stochastic layers
    h, adjacency, node_mask = _graph_inputs(inputs)
    states = GNN(self.widths, self.layer, self.learn_epsilon)(h, adjacency, node_mask)
    pooled = [readout(s, node_mask, self.readout) for s in (h, *states)]
    return Dense(self.num_classes)(jnp.concatenate(pooled, axis=-1))


class NodeClassifier(nn.Module):
  """(B, N, num_classes) logits per node (padded nodes give zeros before the bias)."""

  widths: Sequence[int]
  num_classes: int
  layer: str = "gcn"
  learn_epsilon: bool = False

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    del train
    h, adjacency, node_mask = _graph_inputs(inputs)
    states = GNN(self.widths, self.layer, self.learn_epsilon)(h, adjacency, node_mask)
    return Dense(self.num_classes)(states[-1])


class BagOfNodes(nn.Module):
  """The edge-blind baseline: a per-node MLP of the same widths; with `level='graph'` its
  pooled output feeds the head (a Deep Sets model), so it sees the multiset of node
  features and nothing of how they connect."""

  widths: Sequence[int]
  num_classes: int
  level: str = "graph"  # graph | node
  readout: str = "sum"

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    del train
    h, _, node_mask = _graph_inputs(inputs)
    mask = node_mask[..., None].astype(h.dtype)
    states = [h]
    for width in self.widths:
      states.append(nn.relu(Dense(width)(states[-1])) * mask)
    if self.level == "node":
      return Dense(self.num_classes)(states[-1])
    if self.level != "graph":
      raise errors.ConfigError(f"unknown level {self.level!r}; choose graph or node")
    pooled = [readout(s, node_mask, self.readout) for s in states]
    return Dense(self.num_classes)(jnp.concatenate(pooled, axis=-1))
