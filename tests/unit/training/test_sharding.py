"""Where the state's arrays live (dlx/training/sharding.py): the mesh's sizes, the FSDP
and tensor-parallel rules, user rules, and the bytes a device holds. Decided on abstract
meshes (no devices needed); tests/system/test_sharding.py runs them on 8 devices."""

import jax
from jax.sharding import AbstractMesh
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax
import pytest

from dlx import config as config_lib
from dlx import errors
from dlx.models import gpt
from dlx.models import resnet
from dlx.models import vit
from dlx.training import relaunch
from dlx.training import runner
from dlx.training import sharding


def _config(data=-1, fsdp=1, tensor=1, rules=""):
  config = config_lib.base_config()
  config.mesh = ml_collections.ConfigDict({"data": data, "fsdp": fsdp, "tensor": tensor})
  config.sharding_rules = rules
  return config


def _mesh(data, fsdp, tensor):
  return AbstractMesh((data, fsdp, tensor), sharding.AXES, axis_types=(AxisType.Auto,) * 3)


@pytest.mark.parametrize(
  "sizes, devices, want",
  [
    ((-1, 1, 1), 8, (8, 1, 1)),  # the default: data parallelism
    ((1, -1, 1), 8, (1, 8, 1)),
    ((2, 2, -1), 8, (2, 2, 2)),
    ((1, 8, 1), 8, (1, 8, 1)),
  ],
)
def test_mesh_sizes_fill_the_devices(sizes, devices, want):
  got = sharding.mesh_sizes(_config(*sizes), devices)
  assert tuple(got[a] for a in sharding.AXES) == want


@pytest.mark.parametrize(
  "sizes, match",
  [
    ((-1, -1, 1), "at most one -1"),
    ((0, 1, 1), "positive"),
    ((3, 1, 1), "multiply to 3, but there are 8 devices"),
    ((-1, 3, 1), "do not divide"),
  ],
)
def test_mesh_sizes_that_cannot_work_are_one_line(sizes, match):
  with pytest.raises(errors.ConfigError, match=match) as e:
    sharding.mesh_sizes(_config(*sizes), 8)
  assert "--config.mesh.data=" in str(e.value) and "\n" not in str(e.value)


def test_fsdp_splits_the_largest_dimension_it_divides():
  sizes = {"data": 1, "fsdp": 4, "tensor": 1}
  spec = lambda shape: sharding.leaf_spec("params/w", ("w",), shape, sizes, {}, [])
  assert spec((64, 256)) == P(None, "fsdp")
  assert spec((256, 64)) == P("fsdp", None)
  assert spec((3, 3, 6, 1024)) == P(None, None, None, "fsdp")
  assert spec((1023, 7)) == P(None, None)  # nothing divides: whole
  assert spec((64,)) == P(None)  # small: whole on every device
  assert spec(()) == P()


def test_tensor_parallelism_follows_the_layers_logical_axes():
  sizes = {"data": 1, "fsdp": 1, "tensor": 2}
  logical = {("block", "attn", "query", "kernel"): ("embed", "heads")}
  keys = ("block", "attn", "query", "kernel")
  assert sharding.leaf_spec("x", keys, (64, 64), sizes, logical, []) == P(None, "tensor")
  # Adam's copy of the parameter (under its own containers) gets the same split.
  mu = ("opt_state", "0", "mu", *keys)
  assert sharding.leaf_spec("x", mu, (64, 64), sizes, logical, []) == P(None, "tensor")
  # With fsdp too, FSDP takes the other dimension.
  both = {"data": 1, "fsdp": 2, "tensor": 2}
  assert sharding.leaf_spec("x", keys, (64, 64), both, logical, []) == P("fsdp", "tensor")


def test_rules_override_by_path():
  rules = sharding.parse_rules(".*embedding=replicated; .*head/kernel=-,fsdp+tensor")
  sizes = {"data": 1, "fsdp": 2, "tensor": 2}
  spec = lambda path, shape: sharding.leaf_spec(path, (), shape, sizes, {}, rules)
  assert spec("params/embedding", (1024, 64)) == P()
  assert spec("params/head/kernel", (64, 128)) == P(None, ("fsdp", "tensor"))
  assert spec("params/other", (64, 128)) == P(None, "fsdp")
  with pytest.raises(errors.ConfigError, match="does not split over fsdp"):
    spec("params/head/kernel", (64, 6))


@pytest.mark.parametrize(
  "text, match",
  [
    ("no-equals-sign", "is not REGEX=SPEC"),
    ("(=fsdp", "bad regex"),
    (".*=model", "names 'model'; mesh axes are data, fsdp, tensor"),
  ],
)
def test_bad_rules_are_one_line(text, match):
  with pytest.raises(errors.ConfigError, match=match):
    sharding.parse_rules(text)


def _gpt_state(features=64):
  model = gpt.GPT(vocab_size=32, max_length=16, num_layers=2, num_heads=4, features=features)
  tokens = np.zeros((2, 16), np.int32)
  init = runner.create_init_fn(model, optax.adam(1e-3), tokens, 0)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  config = _config(1, 2, 2)
  config.parallel = "mesh"
  rngs = {"params": jax.random.PRNGKey(0)}
  logical = sharding.logical_axes(model, rngs, tokens, train=False)
  return abstract, config, logical


def test_logical_axes_are_found_on_the_transformer_layers():
  _, _, logical = _gpt_state()
  heads = [p for p, names in logical.items() if p[-2:] == ("query", "kernel")]
  assert len(heads) == 2 and all(logical[p] == ("embed", "heads") for p in heads)
  hidden = [p for p in logical if p[-2:] == ("hidden", "kernel")]
  assert len(hidden) == 2 and all(logical[p] == ("embed", "mlp") for p in hidden)
  assert all(logical[p] == ("heads", "embed") for p in logical if p[-2:] == ("out", "kernel"))


def test_state_shardings_split_parameters_and_their_optimizer_state_alike():
  abstract, config, logical = _gpt_state()
  placed = sharding.state_shardings(abstract, _mesh(1, 2, 2), config, logical)
  param_specs = jax.tree_util.tree_flatten_with_path(placed.params)[0]
  keystr = jax.tree_util.keystr
  query = [s.spec for path, s in param_specs if "'query']['kernel'" in keystr(path)]
  assert query == [P("fsdp", "tensor")] * 2  # heads over tensor, the rest over fsdp
  bias = [s.spec for path, s in param_specs if "'query']['bias'" in keystr(path)]
  assert bias == [P("tensor")] * 2  # too small for FSDP
  mu, nu = placed.opt_state[0].mu, placed.opt_state[0].nu
  assert jax.tree.map(lambda s: s.spec, mu) == jax.tree.map(lambda s: s.spec, placed.params)
  assert jax.tree.map(lambda s: s.spec, nu) == jax.tree.map(lambda s: s.spec, placed.params)
  assert placed.step.spec == P() and placed.rng.spec == P(None)


def test_abstract_bytes_per_device_divide_by_the_split():
  abstract, config, logical = _gpt_state(features=128)
  placed = sharding.state_shardings(abstract, _mesh(1, 2, 2), config, logical)
  total, per_device = sharding.abstract_bytes_per_device(abstract.params, placed.params)
  assert total == sum(x.size * 4 for x in jax.tree.leaves(abstract.params))
  assert total / 4 <= per_device < total / 2  # most bytes split 4 ways, small leaves whole


def test_batch_must_divide_over_data_and_fsdp_only():
  config = _config(2, 2, 2)
  config.batch_size, config.eval_batch_size = 4, 8
  config_lib.validate(config, 8)  # tensor replicates the batch: 4 ways is enough
  config.batch_size = 6
  with pytest.raises(errors.ConfigError, match=r"mesh.data x mesh.fsdp \(4 devices\)"):
    config_lib.validate(config, 8)


def test_pmap_takes_no_fsdp():
  config = _config(-1, 2, 1)
  config.parallel = "pmap"
  with pytest.raises(errors.ConfigError, match="need mesh"):
    config_lib.validate(config, 2)


def test_a_relaunch_may_change_the_mesh():
  for field in ("mesh.data", "mesh.fsdp", "mesh.tensor", "sharding_rules"):
    assert not relaunch.computing(field)


def _placed(model, inputs, mesh, logical=None):
  init = runner.create_init_fn(model, optax.adam(1e-3), inputs, 0)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  config = _config(*mesh)
  placed = sharding.state_shardings(abstract, _mesh(*mesh), config, logical)
  return abstract, placed


def test_a_resnet_splits_its_convolutions_and_keeps_batch_norm_whole():
  """The plan that tests/system/test_sharding.py trains (slow) on 8 devices."""
  model = resnet.resnet18(num_classes=10, stem="cifar", width=32)
  abstract, placed = _placed(model, np.zeros((2, 28, 28, 1), np.float32), (1, 8, 1))
  leaves = jax.tree_util.tree_flatten_with_path(abstract.params)[0]
  specs = jax.tree.leaves(placed.params, is_leaf=lambda x: hasattr(x, "spec"))
  for (path, leaf), spec in zip(leaves, specs):
    if leaf.ndim == 4 and leaf.size >= sharding.FSDP_MIN_ELEMENTS:
      assert spec.spec == P(None, None, None, "fsdp"), jax.tree_util.keystr(path)
    if leaf.ndim == 1:  # batch-norm scales and biases: small
      assert spec.spec == P(None)
  stats = jax.tree.leaves(placed.model_state, is_leaf=lambda x: hasattr(x, "spec"))
  assert stats and all(s.spec == P(None) for s in stats)
  total, per_device = sharding.abstract_bytes_per_device(abstract.params, placed.params)
  assert per_device < total / 6


def test_a_vit_splits_heads_and_hidden_units_over_tensor():
  model = vit.ViT(num_classes=10, patch_size=7, num_layers=2, num_heads=4, features=64, hidden=128)
  images = np.zeros((2, 28, 28, 1), np.float32)
  logical = sharding.logical_axes(model, {"params": jax.random.PRNGKey(0)}, images, train=False)
  _, placed = _placed(model, images, (1, 1, 4), logical)
  flat = {
    jax.tree_util.keystr(path): s.spec
    for path, s in jax.tree_util.tree_flatten_with_path(placed.params)[0]
  }
  hidden = [spec for key, spec in flat.items() if "['hidden']['kernel']" in key]
  output = [spec for key, spec in flat.items() if "['output']['kernel']" in key]
  assert hidden == [P(None, "tensor")] * 2 and output == [P("tensor", None)] * 2
  head = [spec for key, spec in flat.items() if key.startswith("['head']")]
  assert head and all(spec == P() or all(d is None for d in spec) for spec in head)
