"""`python -m dlx.tools.attention_maps`: a GPT's and a ViT's figures (untrained models on
small data, so the test is quick), a finished run end to end (slow), and bad input as one
line with exit status 2."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import experiment
from dlx import train
from dlx.data import core
from dlx.models import gpt
from dlx.models import mlp
from dlx.models import vit
from dlx.tools import attention_maps
from tests import conftest


def _dataset(inputs, **info):
  split = {"inputs": inputs, "targets": np.zeros(len(inputs), np.int32)}
  return core.Dataset(split, split, split, info)


def test_token_figure_has_a_panel_per_layer_and_head(tmp_path):
  model = gpt.GPT(vocab_size=5, max_length=16, num_layers=2, num_heads=3, features=6)
  tokens = np.random.default_rng(0).integers(0, 5, (4, 16)).astype(np.int32)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(tokens[:1]))
  dataset = _dataset(tokens, chars=list("ab \nc"))
  path = tmp_path / "gpt.png"
  about = attention_maps.draw_figure(model, variables, dataset, path, title="t", length=12)
  assert about == {"kind": "tokens", "layers": 2, "heads": 3, "tokens": 12}
  conftest.assert_png(path, min_side=100)


def test_patch_figure_has_a_row_per_image(tmp_path):
  model = vit.ViT(num_classes=3, patch_size=4, num_layers=2, num_heads=2, features=8, hidden=8)
  images = np.random.default_rng(1).random((5, 8, 8, 1)).astype(np.float32)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(images[:1]))
  path = tmp_path / "vit.png"
  about = attention_maps.draw_figure(model, variables, _dataset(images), path, title="t", count=3)
  assert about == {"kind": "patches", "layers": 2, "heads": 2, "images": 3}
  conftest.assert_png(path, min_side=100)


def test_a_model_without_attention_is_a_user_error(tmp_path):
  model = mlp.MLP(hidden=(4,), num_outputs=2)
  x = np.ones((2, 3), np.float32)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  with pytest.raises(attention_maps.errors.UserError, match="no dlx attention layer"):
    attention_maps.draw_figure(model, variables, _dataset(x), tmp_path / "x.png", title="t")


def test_bad_input_is_one_line(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    attention_maps.main([str(tmp_path / "missing")])
  assert exit_info.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("dlx: error:") and "missing" in lines[0]


@pytest.mark.slow
def test_finished_gpt_run(tmp_path, capsys):
  exp = experiment.load("gpt_shakespeare_char")
  run = tmp_path / "gpt"
  train.train_and_evaluate(exp.config("smoke"), str(run), experiment=exp)
  assert attention_maps.main([str(run), "--length=16", "--index=3"]) == 0
  about = json.loads(capsys.readouterr().out)
  assert about["experiment"] == "gpt_shakespeare_char" and about["tokens"] == 16
  conftest.assert_png(run / attention_maps.FIGURE, min_side=100)
