"""The package's layering, read from the imports of every file (lazy ones included):

dlx/kernels/         imports nothing else of dlx (dlx.errors excepted): compiled kernels
dlx/nn/              imports only kernels/ (its convolutions route there), and dlx.errors
dlx/ops/             imports nothing else of dlx (dlx.errors excepted)
dlx/envs/            imports only envs/ (and dlx.errors)
dlx/models/          imports only nn/ and ops/ (and other models)
dlx/interop/         imports only models/, nn/, ops/ (and dlx.errors, dlx.optional_deps):
                     checkpoint formats sit on the models, below the trainer and the tasks
dlx/data/            imports only data/ (and dlx.errors, dlx.optional_deps)
dlx/viz/             imports only viz/ and ops/ (figures know no trainer)
dlx/tasks/           may import models, losses, data, envs, viz and the library, never the loop
the trainer          (dlx/train.py, dlx/training/, dlx/tools/, dlx/main.py) imports no task
dlx/ top level       at most 8 modules: what a newcomer reads first
"""

import ast
import pathlib

import pytest

DLX = pathlib.Path(__file__).resolve().parents[2] / "dlx"
TOP_LEVEL = ("main", "train", "experiment", "config", "losses", "errors", "optional_deps")
TRAINER = ["train", "main", "experiment", "config"] + [
  f"{package}/{p.stem}" for package in ("training", "tools") for p in (DLX / package).glob("*.py")
]
# The tools that run the loop (model_stats is a library of counts a task may use).
LOOP_TOOLS = ("dlx.tools.sweep", "dlx.tools.crossval")
RULES = {  # package -> the dlx packages / modules its files may import
  "kernels": ("dlx.kernels", "dlx.errors"),
  "nn": ("dlx.nn", "dlx.kernels", "dlx.errors"),
  "ops": ("dlx.ops", "dlx.errors"),
  "models": ("dlx.models", "dlx.nn", "dlx.ops", "dlx.errors"),
  "data": ("dlx.data", "dlx.errors", "dlx.optional_deps"),
  "interop": (
    "dlx.interop",
    "dlx.models",
    "dlx.nn",
    "dlx.ops",
    "dlx.errors",
    "dlx.optional_deps",
  ),
}


def _dlx_imports(path):
  """Every dlx module the file imports ('dlx.nn.blocks', 'dlx.errors', ...)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names if alias.name.startswith("dlx"))
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlx"):
      if node.module == "dlx":  # from dlx import losses -> dlx.losses
        found.update(f"dlx.{alias.name}" for alias in node.names)
      else:
        found.add(node.module)
  return found


def _within(module, allowed):
  return any(module == a or module.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("package", sorted(RULES))
def test_lower_layers_import_only_what_they_may(package):
  for path in sorted((DLX / package).rglob("*.py")):
    bad = sorted(m for m in _dlx_imports(path) if not _within(m, RULES[package]))
    assert not bad, f"dlx/{package}/{path.name} imports {bad}; allowed: {RULES[package]}"


def test_tasks_never_import_the_loop():
  for path in sorted((DLX / "tasks").rglob("*.py")):
    bad = sorted(
      m for m in _dlx_imports(path) if _within(m, ("dlx.train", "dlx.main", *LOOP_TOOLS))
    )
    assert not bad, f"{path.relative_to(DLX)} imports {bad}"


def test_the_trainer_imports_no_task():
  for name in TRAINER:
    bad = sorted(m for m in _dlx_imports(DLX / f"{name}.py") if _within(m, ("dlx.tasks",)))
    assert not bad, f"dlx/{name}.py imports {bad}"


def test_the_top_level_is_what_a_newcomer_reads_first():
  modules = sorted(p.stem for p in DLX.glob("*.py") if p.stem != "__init__")
  assert len(modules) <= 8, f"dlx/ has {len(modules)} top-level modules: {modules}"
  assert set(modules) == set(TOP_LEVEL), "update TOP_LEVEL and the README's layout map"
  packages = {p.name for p in DLX.iterdir() if (p / "__init__.py").is_file()}
  wanted = {"training", "tools", "viz", "envs", "tasks", "data", "nn", "models", "ops", "interop"}
  assert wanted <= packages


def test_the_modules_the_tasks_package_replaced_are_gone():
  for old in (
    "tasks.py",
    "image_classification.py",
    "sequence_tasks.py",
    "adversarial.py",
    "augment.py",
    "text",
  ):
    assert not (DLX / old).exists(), f"dlx/{old} should have moved (see dlx/tasks/)"
  assert (DLX / "tasks" / "__init__.py").is_file()


def test_the_rules_see_lazy_imports(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("def f():\n  from dlx import train\n  import dlx.tasks.seq2seq\n")
  assert _dlx_imports(path) == {"dlx.train", "dlx.tasks.seq2seq"}
