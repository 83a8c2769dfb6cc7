"""The CLIP model (dlx/models/clip.py): unit-norm embeddings of both towers, the learned
temperature's initial value and clipping, and an end-token readout that padding does not
change."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import clip

TINY = dict(
  vocab_size=12,
  max_length=8,
  embed_dim=6,
  image_widths=(3,),
  image_hidden=8,
  text_layers=1,
  text_heads=2,
  text_features=8,
  text_hidden=8,
)


def _inputs(batch=3, length=6):
  rng = np.random.default_rng(0)
  tokens = np.zeros((batch, length), np.int32)
  for i in range(batch):  # <bos>=1, words 4..11, <eos>=2, then padding
    n = 2 + i
    tokens[i, : n + 2] = [1, *rng.integers(4, 12, n), 2]
  images = rng.uniform(0, 1, (batch, 28, 28, 1)).astype(np.float32)
  return {"image": jnp.asarray(images), "text": jnp.asarray(tokens)}


@pytest.fixture(scope="module")
def runs():
  """The variables and outputs of both towers, and of the text tower alone with the log
  scale set to 10, computed in one compiled function (each compilation costs seconds on
  the CPU)."""
  inputs = _inputs()

  def run(rng):
    model = clip.CLIP(**TINY)
    variables = model.init(rng, inputs)
    scaled = {"params": {**variables["params"], "log_logit_scale": jnp.float32(10.0)}}
    return {
      "variables": variables,
      "both": model.apply(variables, inputs),
      "scaled_text": model.apply(scaled, {"text": inputs["text"]}),
    }

  return jax.jit(run)(jax.random.PRNGKey(0))


def test_embeddings_are_unit_vectors_and_scale_starts_at_one_over_0_07(runs):
  out = runs["both"]
  assert out["image"].shape == out["text"].shape == (3, 6)
  np.testing.assert_allclose(np.linalg.norm(out["image"], axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(out["text"], axis=1), 1.0, rtol=1e-5)
  log_scale = runs["variables"]["params"]["log_logit_scale"]
  np.testing.assert_allclose(log_scale, math.log(1 / 0.07), rtol=1e-6)
  np.testing.assert_allclose(out["logit_scale"], 1 / 0.07, rtol=1e-5)


@pytest.mark.parametrize(
  "log_scale,expected", [(10.0, 100.0), (math.log(100.0), 100.0), (-1.0, 1.0), (0.5, math.e**0.5)]
)
def test_logit_scale_is_clipped_to_one_and_a_hundred(log_scale, expected):
  np.testing.assert_allclose(clip.clipped_logit_scale(log_scale, 100.0), expected, rtol=1e-6)


def test_the_text_tower_alone_gives_the_same_embeddings_and_a_clipped_scale(runs):
  both, scaled = runs["both"], runs["scaled_text"]
  assert "image" not in scaled
  np.testing.assert_allclose(scaled["text"], both["text"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(scaled["logit_scale"], 100.0, rtol=1e-5)


def test_no_gradient_pushes_the_scale_past_its_clip():
  grad = jax.jit(jax.vmap(jax.grad(lambda s: clip.clipped_logit_scale(s, 100.0))))
  np.testing.assert_allclose(grad(jnp.array([5.0, -0.5, 1.0])), [0.0, 0.0, math.e], rtol=1e-6)


@pytest.mark.slow  # two more forward passes to compile
@pytest.mark.parametrize("pool", clip.POOLS)
def test_padding_does_not_change_the_text_embedding(pool):
  inputs = _inputs()
  padded = jnp.pad(inputs["text"], ((0, 0), (0, 2)))  # two more <pad> columns
  model = clip.CLIP(**TINY, pool=pool)

  def run(rng):
    variables = model.init(rng, inputs)
    return [model.apply(variables, {"text": t})["text"] for t in (inputs["text"], padded)]

  short, long = jax.jit(run)(jax.random.PRNGKey(0))
  np.testing.assert_allclose(long, short, atol=1e-5)


def test_bad_pool_and_inputs_are_clear_errors(runs):
  variables, inputs = runs["variables"], _inputs()
  with pytest.raises(ValueError, match="pool must be one of"):
    jax.eval_shape(lambda v: clip.CLIP(**{**TINY, "pool": "cls"}).apply(v, inputs), variables)
  with pytest.raises(ValueError, match="'image' and/or a 'text'"):
    jax.eval_shape(lambda v: clip.CLIP(**TINY).apply(v, inputs["image"]), variables)
