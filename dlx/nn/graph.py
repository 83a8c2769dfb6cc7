"""Message passing over padded graph batches (docs/curriculum.md#f25).

A batch of graphs is dense and padded to a fixed size, so every shape is static and jit
compiles once: node features `h` (B, N, F), adjacency `adjacency` (B, N, N) (entry [b, i, j]
is the weight of the edge j -> i; symmetric for undirected graphs, no self-loops) and
`node_mask` (B, N) (1 on real nodes, 0 on padding). Padded nodes never send messages and
every layer returns zeros on them, so padding changes nothing. Dense adjacency costs
O(N^2) per graph, which is nothing for the small graphs here and keeps the code plain
matrix products (a sparse edge-list form pays off only for large, sparse graphs).

  normalized_adjacency   D^-1/2 (A + I) D^-1/2 on the real nodes (Kipf & Welling, 2017)
  GCNLayer               h' = A_hat h W + b
  GINLayer               h' = MLP((1 + eps) h_v + sum of the neighbours' h) (Xu et al., 2019)
  readout                sum / mean / max of the real nodes' features, per graph
  GNN                    a stack of GCN or GIN layers with ReLU between them

The classifiers built on them (and the edge-blind baseline) are in dlx/models/gnn.py.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx import errors
from dlx.nn.dense import Dense

LAYERS = ("gcn", "gin")
READOUTS = ("sum", "mean", "max")


def _check(h, adjacency, node_mask):
  b, n = h.shape[:2]
  if h.ndim != 3 or adjacency.shape != (b, n, n) or node_mask.shape != (b, n):
    raise ValueError(
      "graph batches are nodes (B, N, F), adjacency (B, N, N), node_mask (B, N); got "
      f"{h.shape}, {adjacency.shape}, {node_mask.shape}"
    )


def masked_adjacency(adjacency, node_mask):
  """The adjacency with every edge that touches a padded node removed."""
  mask = node_mask.astype(adjacency.dtype)
  return adjacency * mask[:, :, None] * mask[:, None, :]


def normalized_adjacency(adjacency, node_mask):
  """D^-1/2 (A + I) D^-1/2 with D the degree of A + I: self-loops keep a node's own
  features, and the symmetric scaling keeps repeated products from growing with degree.
  Rows and columns of padded nodes are zero."""
  mask = node_mask.astype(adjacency.dtype)
  n = adjacency.shape[-1]
  a = masked_adjacency(adjacency, node_mask) + jnp.eye(n, dtype=adjacency.dtype) * mask[:, :, None]
  degree = jnp.sum(a, axis=-1)
  scale = jnp.where(degree > 0, 1.0 / jnp.sqrt(jnp.maximum(degree, 1e-12)), 0.0)
  scale = scale.astype(adjacency.dtype)
  return a * scale[:, :, None] * scale[:, None, :]


class GCNLayer(nn.Module):
  """Kipf & Welling's graph convolution, A_hat h W + b (activation left to the caller):
  each node averages its neighbours' and its own transformed features, weighted by
  1 / sqrt(deg_i deg_j)."""

  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, h, adjacency, node_mask):
    _check(h, adjacency, node_mask)
    h = Dense(self.features, use_bias=False)(h)
    h = jnp.einsum("bij,bjf->bif", normalized_adjacency(adjacency, node_mask).astype(h.dtype), h)
    if self.use_bias:
      h = h + self.param("bias", nn.initializers.zeros, (self.features,)).astype(h.dtype)
    return h * node_mask[..., None].astype(h.dtype)


class GINLayer(nn.Module):
  """Xu et al.'s graph isomorphism layer, MLP((1 + eps) h_v + sum_{u in N(v)} h_u): a sum
  (not a mean) keeps the neighbourhood's size, and an injective update makes the layer as
  discriminative as the Weisfeiler-Lehman test. `learn_epsilon` trains eps (GIN-eps);
  otherwise it stays `epsilon` (GIN-0 with the default)."""

  features: int
  hidden: int = 0  # the MLP's hidden width; 0 = features
  epsilon: float = 0.0
  learn_epsilon: bool = False

  @nn.compact
  def __call__(self, h, adjacency, node_mask):
    _check(h, adjacency, node_mask)
    eps = (
      self.param("epsilon", nn.initializers.constant(self.epsilon), ())
      if self.learn_epsilon
      else self.epsilon
    )
    mask = node_mask[..., None].astype(h.dtype)
    h = h * mask
    neighbours = jnp.einsum(
      "bij,bjf->bif", masked_adjacency(adjacency, node_mask).astype(h.dtype), h
    )
    h = (1.0 + jnp.asarray(eps, h.dtype)) * h + neighbours
    h = nn.relu(Dense(self.hidden or self.features)(h))
    return Dense(self.features)(h) * mask


def readout(h, node_mask, kind: str = "sum"):
  """(B, F) per-graph features from (B, N, F) node features, padded nodes left out.
  A sum counts (it tells a 6-cycle from a 3-cycle), a mean or max does not."""
  mask = node_mask[..., None].astype(h.dtype)
  if kind == "sum":
    return jnp.sum(h * mask, axis=1)
  if kind == "mean":
    return jnp.sum(h * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
  if kind == "max":
    pooled = jnp.max(jnp.where(mask > 0, h, -jnp.inf), axis=1)
    return jnp.where(jnp.isfinite(pooled), pooled, 0.0).astype(h.dtype)
  raise errors.ConfigError(f"unknown readout {kind!r}; choose one of {', '.join(READOUTS)}")


class GNN(nn.Module):
  """A stack of message-passing layers (`layer`: 'gcn' or 'gin'), one per width, with ReLU
  between them; returns every layer's node features (k layers reach k edges away)."""

  widths: Sequence[int]
  layer: str = "gin"
  learn_epsilon: bool = False

  @nn.compact
  def __call__(self, h, adjacency, node_mask):
    if self.layer not in LAYERS:
      raise errors.ConfigError(
        f"unknown graph layer {self.layer!r}; choose one of {', '.join(LAYERS)}"
      )
    states = []
    for i, width in enumerate(self.widths):
      if self.layer == "gcn":
        h = GCNLayer(width, name=f"gcn_{i}")(h, adjacency, node_mask)
      else:
        h = GINLayer(width, learn_epsilon=self.learn_epsilon, name=f"gin_{i}")(
          h, adjacency, node_mask
        )
      h = nn.relu(h)
      states.append(h)
    return states
