"""Real weights in and out of dlx runs: `python -m dlx.tools.export` and the external
sources of `--config.init_from` (dlx/interop/formats.py, dlx/training/warm_start.py).

One `gpt_shakespeare_char:gpt2,smoke` run (GPT-2's exact architecture, smoke size) is
exported to a Hugging Face GPT-2 directory that transformers loads with dlx's logits and
greedy text, and to dlx's flat safetensors file, from which a new run starts with the
same parameters; a nanoGPT-style GPT takes everything but its output bias from the GPT-2
directory. The torch half skips without torch and transformers.
"""

import dataclasses
import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx import experiment as experiment_lib
from dlx import train
from dlx.interop import formats
from dlx.models import gpt as gpt_lib
from dlx.tasks import language_model as lm
from dlx.tools import export
from dlx.training import relaunch
from dlx.training import warm_start
from tests import conftest

pytestmark = pytest.mark.skipif(
  importlib.util.find_spec("safetensors") is None,
  reason="dlx.interop needs safetensors (pip install 'dlx[interop]')",
)

PROMPT, NEW_TOKENS = "ROMEO.\n", 20
# The experiment without its samples.txt report (seconds of compiling per run); its
# config.json still names gpt_shakespeare_char, whose model the export builds.
GPT = dataclasses.replace(
  experiment_lib.load("gpt_shakespeare_char"), final_report=None, outputs=()
)


def _train(config, workdir):
  return train.train_and_evaluate(config, str(workdir), experiment=GPT)


def _config(arg, **fields):
  config = GPT.config(arg)
  for name, value in fields.items():
    *parents, leaf = name.split(".")
    target = config
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def _lr_zero(arg, **fields):
  """One step at learning rate 0: the run's checkpoint holds its initial parameters."""
  zero = {"optimizer.learning_rate": 0.0, "optimizer.warmup_steps": 0}
  return _config(arg, num_train_steps=1, **zero, **fields)


def _params(workdir, directory="checkpoints"):
  steps = conftest.checkpoint_steps(workdir / directory)
  return conftest.restore_checkpoint(workdir / directory, steps[-1])[0]["params"]


def _assert_same(a, b):
  flat_a, flat_b = formats.flat_tensors(a), formats.flat_tensors(b)
  assert sorted(flat_a) == sorted(flat_b)
  for name, x in flat_a.items():
    np.testing.assert_array_equal(x, flat_b[name], err_msg=name)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A finished gpt_shakespeare_char:gpt2,smoke run (3 steps; best checkpoint kept)."""
  workdir = tmp_path_factory.mktemp("gpt2_run")
  _train(_config("gpt2,smoke"), workdir)
  return workdir


@pytest.fixture(scope="module")
def hf_dir(run, tmp_path_factory):
  """The run exported by `python -m dlx.tools.export` (its main, in this process)."""
  out = tmp_path_factory.mktemp("hf") / "gpt2"
  assert export.main([str(run), "--format=hf-gpt2", f"--out={out}"]) == 0
  return out


@pytest.mark.torch
def test_transformers_computes_the_exported_run(run, hf_dir):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  _, config, model = export.run_model(run)
  assert isinstance(model, gpt_lib.GPT) and not model.output_bias
  params = _params(run, "best_checkpoint")
  hf, info = transformers.GPT2LMHeadModel.from_pretrained(hf_dir, output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
  hf.eval()

  tokenizer = lm.char_tokenizer(lm.shakespeare_char(config))
  text = "First Citizen.\nBefore we proceed any further, hear me speak.\n"
  tokens = np.array([tokenizer.encode(text)[: model.max_length]], np.int32)
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(tokens)))
  with torch.no_grad():
    theirs = hf(torch.from_numpy(tokens).long()).logits.numpy()
  assert ours.shape == theirs.shape == (1, model.max_length, lm.SHAKESPEARE_CHARS)
  relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
  assert relative < 1e-4, relative

  prompt = np.array([tokenizer.encode(PROMPT)], np.int32)
  greedy = gpt_lib.generate(model, params, prompt, NEW_TOKENS, jax.random.key(0), temperature=0)
  with torch.no_grad():
    hf_greedy = hf.generate(
      torch.from_numpy(prompt).long(),
      attention_mask=torch.ones(prompt.shape, dtype=torch.long),
      do_sample=False,
      max_new_tokens=NEW_TOKENS,
    )
  ours_text = tokenizer.decode(np.asarray(greedy)[0, prompt.shape[1] :].tolist())
  theirs_text = tokenizer.decode(hf_greedy.numpy()[0, prompt.shape[1] :].tolist())
  assert len(ours_text) == NEW_TOKENS and ours_text == theirs_text


def test_a_run_starts_from_its_safetensors_export_with_the_same_parameters(run, tmp_path):
  path = tmp_path / "weights.safetensors"
  assert export.main([f"{run}:latest", "--format=safetensors", f"--out={path}"]) == 0
  source = _params(run, "checkpoints")
  _assert_same(formats.read_flat(path)["params"], source)
  started = tmp_path / "started"
  _train(_lr_zero("gpt2,smoke", init_from=f"safetensors:{path}"), started)
  _assert_same(_params(started), source)
  # init_from still computes: a relaunch naming other weights is refused.
  config = json.loads((started / relaunch.CONFIG_FILE).read_text())
  config["init_from"] = f"hf-gpt2:{tmp_path}"
  with pytest.raises(errors.ConfigChangedError, match="init_from 'safetensors:"):
    relaunch.check(started, json.dumps(config))


def test_a_gpt_with_a_head_of_its_own_takes_the_rest_from_gpt2(run, hf_dir, tmp_path):
  # The default (nanoGPT) model has an output bias GPT-2 lacks: it starts at zero.
  keys = "token_embedding,position_embedding,decoder"
  config = _lr_zero("smoke", init_from=f"hf-gpt2:{hf_dir}", init_from_keys=keys)
  _train(config, tmp_path)
  params = _params(tmp_path)
  np.testing.assert_array_equal(params.pop("output_bias"), np.zeros(lm.SHAKESPEARE_CHARS))
  _assert_same(params, _params(run, "best_checkpoint"))
  # Without init_from_keys the missing bias is one line naming it and the way out.
  theirs = warm_start.load_external(f"hf-gpt2:{hf_dir}")["params"]
  with pytest.raises(errors.ConfigError, match="'output_bias' of this model is not in .*keys"):
    warm_start.graft({**params, "output_bias": np.zeros(3)}, theirs, what=f"hf-gpt2:{hf_dir}")


def test_a_shape_mismatch_names_the_key_and_both_shapes(hf_dir, tmp_path):
  config = _config("gpt2,smoke", init_from=f"hf-gpt2:{hf_dir}", **{"model.features": 16})
  with pytest.raises(errors.ConfigError) as error:
    _train(config, tmp_path)
  message = str(error.value)
  assert "\n" not in message
  assert f"this model has shape (16,), hf-gpt2:{hf_dir} has (32,)" in message, message


def test_init_from_sources_and_their_errors(tmp_path):
  assert warm_start.external("hf-gpt2:/a/b") == ("hf-gpt2", "/a/b")
  assert warm_start.external("safetensors:w.safetensors") == ("safetensors", "w.safetensors")
  for workdir in ("/runs/a", "runs/a:best", "/a:b/c"):
    assert warm_start.external(workdir) is None, workdir
  (tmp_path / "odd:name").mkdir()  # An existing directory is a workdir, colon or not.
  assert warm_start.external(str(tmp_path / "odd:name")) is None
  with pytest.raises(errors.ConfigError) as error:
    warm_start.external("hf:/a/b")
  assert str(error.value) == (
    "--config.init_from='hf:/a/b': unknown source 'hf:'; "
    "give WORKDIR[:best|latest], hf-clip:DIR, hf-gpt2:DIR, safetensors:FILE, "
    "torchvision:ARCH:FILE"
  )
  with pytest.raises(errors.ConfigError, match="safetensors:.*no such safetensors file"):
    warm_start.load_external(f"safetensors:{tmp_path}/none.safetensors")
  assert "init_from" not in relaunch.EXTENDS_OR_OBSERVES  # a computing field


def _export_error(capsys, *argv) -> str:
  with pytest.raises(SystemExit) as exit_:
    export.main(list(map(str, argv)))
  assert exit_.value.code == 2
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("dlx: error: "), lines
  return lines[0]


def test_export_errors_are_one_line(run, tmp_path, capsys):
  empty = tmp_path / "untrained"
  empty.mkdir()
  (empty / "config.json").write_text((run / "config.json").read_text())
  assert "has no checkpoint to export" in _export_error(
    capsys, empty, "--format=safetensors", f"--out={tmp_path}/w"
  )
  assert "no such run directory" in _export_error(
    capsys, tmp_path / "nowhere", "--format=hf-gpt2", f"--out={tmp_path}/d"
  )
  assert "invalid choice: 'onnx'" in _export_error(capsys, run, "--format=onnx", "--out=x")
  # hf-gpt2 holds dlx's GPT without an output bias only.
  nanogpt = gpt_lib.GPT(83, 16, num_layers=1, num_heads=2, features=8)
  with pytest.raises(errors.UserError, match=r"output_bias=True\), which GPT-2 lacks"):
    formats.EXPORTS["hf-gpt2"].write(nanogpt, {}, tmp_path / "d", {})
  mlp = experiment_lib.load("mlp_xor")
  with pytest.raises(errors.UserError, match="exports dlx's GPT .* this run's model is MLP"):
    formats.EXPORTS["hf-gpt2"].write(mlp.get_model(mlp.config()), {}, tmp_path / "d", {})
