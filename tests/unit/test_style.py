"""The code is formatted and linted by ruff, as configured in pyproject.toml, and keeps
standard-library imports at the top of files (lazy imports are for heavy optional
libraries only)."""

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests import conftest

RUFF = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e .[test])")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command):
  done = subprocess.run(
    [RUFF, *command, "."], cwd=conftest.REPO, capture_output=True, text=True, timeout=120
  )
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_standard_library_imports_are_at_the_top():
  late = []
  for path in sorted(conftest.REPO.glob("*/**/*.py")):
    if path.parts[len(conftest.REPO.parts)] not in ("dlx", "experiments", "tests", "benchmarks"):
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      for inner in ast.walk(node):
        names = (
          [a.name for a in inner.names]
          if isinstance(inner, ast.Import)
          else [inner.module or ""]
          if isinstance(inner, ast.ImportFrom)
          else []
        )
        for name in names:
          if name.split(".")[0] in sys.stdlib_module_names:
            late.append(f"{path.relative_to(conftest.REPO)}:{inner.lineno} imports {name}")
  assert not late, late
