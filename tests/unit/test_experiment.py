"""The typed protocol (dlx/experiment.py): loading, defaults, and loud typos."""

import dataclasses

import numpy as np
import pytest

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx import experiment
from dlx.tasks import classification

_VALID = """
from dlx import config as config_lib
from dlx import data
from dlx.models import mlp
from dlx.tasks import classification

def get_config(arg=None):
  config = config_lib.base_config()
  config.model = config_lib.model_config(hidden=(4,), num_outputs=2)
  return config

def get_model(config):
  return mlp.MLP(**config_lib.model_kwargs(config))

def get_dataset(config, data_dir):
  return data.load("xor")

loss = classification.classification
"""


def _write(tmp_path, extra="", name="exp.py", base=_VALID):
  path = tmp_path / name
  path.write_text(base + extra)
  return str(path)


def test_every_experiment_loads_as_a_frozen_experiment():
  for name in experiment.available():
    exp = experiment.load(name)
    assert isinstance(exp, experiment.Experiment) and exp.name == name
    assert all(isinstance(o, str) for o in exp.outputs)
    config = exp.config()
    assert config.experiment == name
    assert isinstance(config.model, type(config)), f"{name}: config.model is not a ConfigDict"
  with pytest.raises(dataclasses.FrozenInstanceError):
    exp.get_model = None


def test_defaults_are_filled_in(tmp_path):
  exp = experiment.load(_write(tmp_path))
  assert exp.make_optimizer is experiment.default_make_optimizer
  assert exp.get_augment is experiment.default_get_augment
  assert exp.make_train_step is None and exp.evaluate is None and exp.final_report is None
  assert exp.get_loss(exp.config()) is classification.classification
  assert exp.outputs == () and exp.targets == {} and not exp.custom_optimizer


@pytest.mark.parametrize(
  "extra,closest",
  [
    ("def final_reprot(ctx):\n  return {}\n", "final_report"),
    ("def visualise(ctx, batch):\n  return {}\n", "visualize"),
    ("def evaluat(ctx, split):\n  return {}\n", "evaluate"),
    ("OUTPUT = ('a.png',)\n", "OUTPUTS"),
    ("def make_optimiser(config, steps):\n  return None\n", "make_optimizer"),
  ],
)
def test_misspelled_hook_names_the_closest_valid_one(tmp_path, extra, closest):
  with pytest.raises(errors.UserError, match=f"did you mean '{closest}'"):
    experiment.load(_write(tmp_path, extra))


def test_unknown_get_or_make_name_is_an_error(tmp_path):
  with pytest.raises(errors.UserError, match="'get_schedule'.*valid hooks: get_config"):
    experiment.load(_write(tmp_path, "def get_schedule(config):\n  return None\n"))


def test_private_helpers_and_modules_are_allowed(tmp_path):
  extra = "import functools\ndef _make_thing():\n  return 1\nDEPTHS = {18: 1}\n"
  experiment.load(_write(tmp_path, extra))


def test_missing_and_doubled_hooks(tmp_path):
  no_model = _VALID.replace("def get_model(config):", "def _model(config):")
  with pytest.raises(errors.UserError, match="does not define get_model"):
    experiment.load(_write(tmp_path, base=no_model, name="a.py"))
  with pytest.raises(errors.UserError, match="only one of loss and get_loss"):
    experiment.load(_write(tmp_path, "def get_loss(config):\n  return loss\n", name="b.py"))
  with pytest.raises(errors.UserError, match="final_report must be a function"):
    experiment.load(_write(tmp_path, "final_report = 3\n", name="c.py"))


@pytest.mark.parametrize(
  "extra,message",
  [
    ("OUTPUTS = 'a.png'\n", "OUTPUTS must be a tuple"),
    ("TARGETS = {'test.accuracy': 0.9}\n", "TARGETS"),
    ("TARGETS = {'test.accuracy': ('=>', 0.9)}\n", "op one of"),
  ],
)
def test_bad_declarations(tmp_path, extra, message):
  with pytest.raises(errors.UserError, match=message):
    experiment.load(_write(tmp_path, extra))


def test_build_checks_like_load():
  hooks = dict(
    get_config=config_lib.base_config,
    get_model=lambda c: None,
    get_dataset=lambda c, d: None,
    loss=classification.classification,
  )
  assert experiment.build("inline", **hooks).name == "inline"
  with pytest.raises(errors.UserError, match="did you mean 'final_report'"):
    experiment.build("inline", final_reports=lambda ctx: {}, **hooks)


def test_unknown_experiment_suggests_a_close_name():
  with pytest.raises(errors.UserError, match="did you mean 'mlp_xor'"):
    experiment.load("mlp_xr")


def test_parse_arg():
  assert config_lib.parse_arg(None) == frozenset()
  assert config_lib.parse_arg("full,smoke", ("full",)) == {"full", "smoke"}
  with pytest.raises(errors.ConfigError, match="unknown config argument 'fast'.*:full or :smoke"):
    config_lib.parse_arg("fast", ("full",))


def test_smoke_overrides_reach_nested_fields_and_refuse_unknown_ones():
  config = config_lib.base_config()
  config.model = config_lib.model_config(features=128)
  config_lib.smoke(config, **{"model.features": 8})
  assert config.model.features == 8 and config.num_train_steps == 3
  with pytest.raises(errors.ConfigError, match="model.width"):
    config_lib.smoke(config, **{"model.width": 8})


def test_targets_are_checked_against_results():
  exp = experiment.load("seq2seq_reverse")
  results = {"test": {"sequence_accuracy": 0.995}, "report": {"test": {}}}
  missed = experiment.missed_targets(exp, results)
  assert missed == ["report.test.sequence_accuracy: not in results.json"]
  results["report"]["test"]["sequence_accuracy"] = 0.5
  assert "bar >= 0.99" in experiment.missed_targets(exp, results)[0]


def test_eval_split_spreads_a_limited_split_over_the_whole_split():
  ordered = {"inputs": np.arange(100)[:, None], "targets": np.arange(100)}
  ds = data.Dataset(train=ordered, validation=ordered, test=ordered)
  cfg = config_lib.base_config()
  cfg.eval_examples, cfg.train_eval_examples = 5, 0
  np.testing.assert_array_equal(
    experiment.eval_split(ds, "test", cfg)["targets"], [0, 25, 50, 74, 99]
  )
  assert len(experiment.eval_split(ds, "train", cfg)["targets"]) == 100  # 0: the whole split
  for total in (1, 7, 100, 1001):
    for count in {1, max(total - 1, 1), total}:
      picked = experiment.spread(total, count)
      assert len(np.unique(picked)) == count and picked.min() >= 0 and picked.max() < total


def test_run_context_outputs_pad_to_one_shape_and_drop_the_padding():
  """RunContext.outputs runs the model on padded batches of one size (one compiled
  program) and yields only the real rows, in order."""
  shapes = []

  def predict(variables, inputs):
    shapes.append(inputs.shape)
    return {"double": inputs * variables, "first": inputs[:, 0]}

  data_split = {"inputs": np.arange(14, dtype=np.float32).reshape(7, 2), "targets": np.arange(7)}
  ctx = experiment.RunContext(
    experiment=None,
    config=config_lib.base_config(),
    workdir="",
    model=None,
    variables=2.0,
    dataset=None,
    rng=None,
    step=0,
    predict=predict,
  )
  pairs = list(ctx.outputs(data_split, batch_size=3))
  assert shapes == [(3, 2)] * 3
  assert [len(batch["targets"]) for batch, _ in pairs] == [3, 3, 1]
  np.testing.assert_array_equal(np.concatenate([b["targets"] for b, _ in pairs]), np.arange(7))
  doubled = np.concatenate([np.asarray(o["double"]) for _, o in pairs])
  np.testing.assert_array_equal(doubled, data_split["inputs"] * 2)
  assert [len(o["first"]) for _, o in pairs] == [3, 3, 1]
  # A split smaller than the batch runs as one batch of its own size.
  shapes.clear()
  assert len(list(ctx.outputs(data_split, batch_size=100))) == 1 and shapes == [(7, 2)]


def test_names_resolve_in_any_family_and_the_flat_path_still_works():
  path = experiment.resolve("vae_mnist")
  assert path.parent.name == "generative" and path.parent.parent == experiment.EXPERIMENTS_DIR
  assert experiment.family("mlp_xor") == "classic"
  assert experiment.resolve("experiments/vae_mnist.py") == path  # the layout before families
  assert experiment.resolve(str(path)) == path
  assert not list(experiment.EXPERIMENTS_DIR.glob("*.py")), "experiments/ root holds no experiment"
  for family in {p.parent for p in experiment.EXPERIMENTS_DIR.glob("*/*.py")}:
    assert (family / "README.md").is_file(), f"{family.name}/ has no README.md"


def test_one_name_in_two_families_is_an_error(tmp_path):
  for family in ("vision", "generative"):
    (tmp_path / family).mkdir()
    (tmp_path / family / "twin.py").write_text("")
  (tmp_path / "vision" / "_helper.py").write_text("")
  with pytest.raises(errors.UserError, match="two experiments are named 'twin'"):
    experiment._experiment_files(tmp_path)
  (tmp_path / "generative" / "twin.py").unlink()
  assert list(experiment._experiment_files(tmp_path)) == ["twin"]
