"""Test setup and shared helpers: hide accelerators from TensorFlow, keep JAX on the CPU,
keep runs small."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

# torch 2.14.1 (the build torchvision 0.29 needs) imports triton when transformers loads
# torch._dynamo, and triton's native library segfaults in a process that has TensorFlow
# and jaxlib loaded (an xdist worker after a tfds test). The CPU tests never compile with
# triton: a None entry makes `import triton` fail, and torch then runs without it.
sys.modules.setdefault("triton", None)

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import math  # pylint: disable=wrong-import-position
import pathlib  # pylint: disable=wrong-import-position
import re  # pylint: disable=wrong-import-position
import shutil  # pylint: disable=wrong-import-position
import tempfile  # pylint: disable=wrong-import-position
import uuid  # pylint: disable=wrong-import-position

import jax  # pylint: disable=wrong-import-position
import orbax.checkpoint as ocp  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

from dlx import config as config_lib  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = REPO.parent / "shared" / "tfds"
_XLA_CACHE_PREFIX = "dlx-tests-xla-cache-"


# XLA's cheaper code generation (dlx.config.FAST_COMPILE_XLA_FLAGS: LLVM at -O0, its
# expensive passes off) for the fast suite: compiling is most of a small test's time and
# these tests check values, not speed (tests/unit/models: 122 -> 89 s). Numerics are IEEE
# at either level: no fast math. The slow suite (-m slow) trains to targets and keeps
# XLA's defaults; so does DLX_TEST_FULL_OPT=1.
_fast_xla = [False]


def xla_flags(extra=""):
  """XLA_FLAGS for this run or a test's subprocess: `extra` (e.g. a forced device count),
  plus the fast suite's cheaper code generation when the run uses it."""
  return config_lib.with_fast_compile_flags(extra) if _fast_xla[0] else extra.strip()


def _selects_slow_tests(markexpr: str) -> bool:
  """Whether a -m expression picks the slow tests ("slow"), not the fast suite's default
  ("not slow", setup.cfg's addopts)."""
  return re.search(r"(?<!not )\bslow\b", markexpr or "") is not None


def _use_fast_xla(config):
  if os.environ.get("DLX_TEST_FULL_OPT", "0") != "0" or _selects_slow_tests(config.option.markexpr):
    return
  _fast_xla[0] = True
  os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""))


def pytest_configure(config):
  """One XLA compilation cache for the whole run, shared by the xdist workers and the
  subprocesses the tests start: many tests compile the same small train and eval steps
  (the same smoke configs, two processes of one distributed run), and a cache hit skips
  XLA's compiler, most of a small test's time (tests/unit/test_train.py: 110 -> 71 CPU
  seconds). Fresh per run and removed at its end, so no result depends on an earlier
  run; DLX_TEST_XLA_CACHE=0 turns it off, and a JAX_COMPILATION_CACHE_DIR already set
  is used as it is."""
  _use_fast_xla(config)
  if os.environ.get("DLX_TEST_XLA_CACHE", "1") == "0":
    return
  run_id = getattr(config, "workerinput", {}).get("testrunuid") or uuid.uuid4().hex
  default = os.path.join(tempfile.gettempdir(), _XLA_CACHE_PREFIX + run_id)
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", default)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
  """The controller (or a run without workers) removes the run's own cache."""
  cache = os.environ.get("JAX_COMPILATION_CACHE_DIR", "")
  if not hasattr(config, "workerinput") and os.path.basename(cache).startswith(_XLA_CACHE_PREFIX):
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def tfds_dir():
  """The prepared tfds data dir (`../shared/tfds`), or skip when this checkout has none."""
  if not (SHARED_TFDS / "mnist").is_dir():
    pytest.skip(f"no prepared tfds data at {SHARED_TFDS}")
  return str(SHARED_TFDS)


@pytest.fixture
def data_dir(request):
  """The prepared tfds dir when this checkout has one, else None (embedded data)."""
  try:
    return request.getfixturevalue("tfds_dir")
  except pytest.skip.Exception:
    return None


def subprocess_env(**extra):
  """The environment for a dlx subprocess: CPU only, no forced device count unless
  `extra` has XLA_FLAGS (the fast suite's code-generation flags are added to them)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
  env.update(extra)
  env["XLA_FLAGS"] = xla_flags(extra.get("XLA_FLAGS", ""))
  if not env["XLA_FLAGS"]:
    del env["XLA_FLAGS"]
  return env


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def checkpoint_steps(directory):
  return sorted(int(p.name) for p in pathlib.Path(directory).iterdir() if p.name.isdigit())


def restore_checkpoint(directory, step):
  """(state, meta) of one saved step of a run's checkpoint directory, as plain nested
  dicts of NumPy arrays."""
  with ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "meta")) as m:
    restored = m.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    )
  return restored.state, dict(restored.meta)


def assert_finite(metrics):
  assert metrics, "no metrics"
  for key, value in metrics.items():
    assert math.isfinite(value), f"{key} = {value}"


def assert_png(path, min_side=28):
  """`path` is a PNG whose every pixel decodes, with sides in [min_side, 4096]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  assert path.is_file(), (
    f"{path.name} missing; the workdir has {sorted(p.name for p in path.parent.iterdir())}"
  )
  with Image.open(path) as img:
    assert img.format == "PNG"
    width, height = img.size
    img.load()  # decodes every pixel: a truncated file fails here
  assert min_side <= width <= 4096 and min_side <= height <= 4096, img.size


# DLX_TEST_CPU_LOG=FILE appends one JSON line per test with the CPU seconds it used (this
# process and the subprocesses it waited for): unlike wall durations, CPU time does not
# grow when other jobs share the cores, so the suite's budget can be planned on a busy
# machine (the suite's wall time on 2 workers is about the total / 2).
if os.environ.get("DLX_TEST_CPU_LOG"):
  import resource  # pylint: disable=g-import-not-at-top,wrong-import-position
  import time  # pylint: disable=g-import-not-at-top,wrong-import-position

  def _cpu_seconds():
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime

  @pytest.hookimpl(hookwrapper=True)
  def pytest_runtest_protocol(item, nextitem):
    del nextitem
    start = _cpu_seconds()
    yield
    line = json.dumps({"test": item.nodeid, "cpu_s": round(_cpu_seconds() - start, 2)})
    with open(os.environ["DLX_TEST_CPU_LOG"], "a", encoding="utf-8") as f:
      f.write(line + "\n")
