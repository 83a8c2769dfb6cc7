"""The core install and its extras (dlx/optional_deps.py): the library packages need only JAX,
Flax, Optax and NumPy; the trainer and the data loaders say which extra is missing."""

import subprocess
import sys

import pytest

from dlx import optional_deps
from tests import conftest

# absl and orbax come with the core anyway (optax and flax depend on them).
WITH_THE_CORE = ("absl", "orbax")
TRAIN_AND_DATA = sorted(
  name
  for name, (_, extra) in optional_deps.PROVIDERS.items()
  if extra in ("train", "data", "ray") and name not in WITH_THE_CORE
)


def _python(code, blocked=()):
  """Runs `code` in a fresh interpreter in which the `blocked` packages cannot import, as
  if they were not installed."""
  prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
  return subprocess.run(
    [sys.executable, "-c", prelude + code],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    capture_output=True,
    text=True,
    timeout=180,
  )


def test_the_library_packages_work_without_any_extra():
  done = _python(
    "import jax, jax.numpy as jnp\n"
    "from dlx import losses, nn, models, ops\n"
    "from dlx.nn import attention\n"
    "from dlx.models import lenet\n"
    "from dlx.ops import boxes\n"
    "logits = jnp.array([[2.0, -1.0, 0.5]])\n"
    "print(float(jax.jit(losses.softmax_cross_entropy)(logits, jnp.array([0]))[0]))\n"
    "model = lenet.LeNet5()\n"
    "x = jnp.zeros((1, 32, 32, 1))\n"
    "print(jax.jit(model.apply)(model.init(jax.random.key(0), x), x).shape)\n"
    "print(boxes.box_iou(jnp.array([[0., 0, 2, 2]]), jnp.array([[1., 1, 3, 3]]))[0, 0])\n"
    "print(sorted(m for m, mod in sys.modules.items() if mod is not None and "
    f"m.split('.')[0] in {TRAIN_AND_DATA!r}))\n",
    blocked=TRAIN_AND_DATA,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  loss, shape, iou, loaded = done.stdout.strip().splitlines()
  assert float(loss) == pytest.approx(0.2413, abs=1e-4)  # -log softmax([2, -1, .5])[0]
  assert shape == "(1, 10)" and float(iou) == pytest.approx(1 / 7)
  assert loaded == "[]"


@pytest.mark.parametrize(
  "code, blocked, extra",
  [
    ("import dlx.train", ("ml_collections",), "train"),
    ("import dlx.train", ("matplotlib",), "train"),
    ("import dlx.main", ("ml_collections",), "train"),
    ("from dlx import data; data.load('digits')", ("sklearn",), "data"),
  ],
)
def test_a_missing_extra_is_one_line_naming_it(code, blocked, extra):
  done = _python(code, blocked)
  assert done.returncode != 0
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("ImportError: ") and f"pip install 'dlx[{extra}]'" in last, last


def test_reading_tfds_data_without_the_data_extra_names_it(tmp_path):
  done = _python(
    "from dlx.data import tfds_data\n"
    f"tfds_data.load_split('mnist', 'test', data_dir={str(tmp_path)!r})",
    ("tensorflow", "tensorflow_datasets"),
  )
  assert "pip install 'dlx[data]'" in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]


def test_version_and_typing_marker():
  import dlx  # pylint: disable=g-import-not-at-top

  assert dlx.__version__ == "0.1.0"
  assert (conftest.REPO / "dlx" / "py.typed").is_file()


def test_docstring_references_resolve():
  """What `./launch.sh docs` checks before it renders: every backticked `dlx.x.y` in a
  docstring exists and every docs/curriculum.md anchor cited is there."""
  done = subprocess.run(
    [sys.executable, "docs/build_api.py", "--check_only"],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
