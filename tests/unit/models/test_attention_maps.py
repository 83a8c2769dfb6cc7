"""Attention maps read out of the GPT and the ViT (dlx/models/attention_maps.py): the
first layer's weights against a NumPy computation from the parameters, causality,
rows that sum to one, and the rollout against a hand-multiplied product."""

import jax
import jax.numpy as jnp
import numpy as np

from dlx.models import attention_maps
from dlx.models import gpt
from dlx.models import mlp
from dlx.models import vit


def _layer_norm(x, p, eps=1e-5):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _numpy_weights(x, layer, heads, mask=None):
  """softmax(Q K^T / sqrt(d)) of a pre-norm layer's self-attention on tokens x (T, F)."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), layer)
  norm = next(v for k, v in p.items() if k.endswith("attention_norm"))
  h = _layer_norm(x, norm)
  attention = p["self_attention"]
  q, k = (h @ attention[n]["kernel"] + attention[n]["bias"] for n in ("query", "key"))
  q, k = (a.reshape(a.shape[0], heads, -1).transpose(1, 0, 2) for a in (q, k))
  scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
  if mask is not None:
    scores = np.where(mask, scores, -np.inf)
  scores -= scores.max(-1, keepdims=True)
  weights = np.exp(scores)
  return weights / weights.sum(-1, keepdims=True)


def test_gpt_first_layer_matches_numpy_and_is_causal():
  model = gpt.GPT(vocab_size=13, max_length=12, num_layers=2, num_heads=2, features=8)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 13, (1, 10)), jnp.int32)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), tokens)
  maps = attention_maps.attention_weights(model, variables, tokens)
  assert list(maps) == ["decoder/layer_0/self_attention", "decoder/layer_1/self_attention"]
  params = jax.tree.map(np.asarray, variables["params"])
  x = (
    params["token_embedding"]["embed"]["embedding"][np.asarray(tokens[0])]
    + params["position_embedding"]["embedding"][:10]
  ).astype(np.float64)
  causal = np.tril(np.ones((10, 10), bool))
  expected = _numpy_weights(x, params["decoder"]["layer_0"], heads=2, mask=causal)
  np.testing.assert_allclose(maps["decoder/layer_0/self_attention"][0], expected, atol=1e-5)
  for weights in maps.values():
    assert weights.shape == (1, 2, 10, 10)
    np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(weights)[..., ~causal] == 0.0)


def test_vit_first_layer_matches_numpy():
  model = vit.ViT(num_classes=10, patch_size=4, num_layers=2, num_heads=2, features=8, hidden=16)
  images = jnp.asarray(np.random.default_rng(1).random((2, 8, 8, 1)), jnp.float32)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), images)
  maps = attention_maps.attention_weights(model, variables, images)
  assert [w.shape for w in maps.values()] == [(2, 2, 5, 5)] * 2  # 4 patches + class token
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  image = np.asarray(images[1, ..., 0], np.float64)
  # Row-major 4x4 patches, each flattened as the conv kernel (4, 4, 1, F) reads it.
  patches = image.reshape(2, 4, 2, 4).transpose(0, 2, 1, 3).reshape(4, 16)
  conv = p["patch_embedding"]
  tokens = patches @ conv["kernel"].reshape(16, -1) + conv["bias"]
  x = np.concatenate([p["class_token"][0], tokens]) + p["position_embedding"]["embedding"]
  expected = _numpy_weights(x, p["encoder"]["layer_0"], heads=2)
  np.testing.assert_allclose(maps["encoder/layer_0/self_attention"][1], expected, atol=1e-5)


def test_rollout_is_the_product_of_residual_mixed_layers():
  rng = np.random.default_rng(2)
  layers = [jax.nn.softmax(jnp.asarray(rng.standard_normal((1, 3, 4, 4))), -1) for _ in range(3)]
  mixed = [0.5 * np.asarray(w).mean(1)[0] + 0.5 * np.eye(4) for w in layers]
  expected = mixed[2] @ mixed[1] @ mixed[0]
  rollout = np.asarray(attention_maps.attention_rollout(layers))[0]
  np.testing.assert_allclose(rollout, expected, rtol=1e-5)
  np.testing.assert_allclose(rollout.sum(-1), 1.0, rtol=1e-5)


def test_a_model_without_attention_has_no_maps():
  model = mlp.MLP(hidden=(4,), num_outputs=2)
  x = jnp.ones((1, 3))
  assert attention_maps.attention_weights(model, model.init(jax.random.PRNGKey(0), x), x) == {}
