"""Builds the HTML API reference into docs/api/ (not committed) and fails on a broken
reference: `./launch.sh docs`.

Two checks make it fail (exit status 1), each printing one line per problem:
  * a docstring names a dlx object that does not exist (a backticked `dlx.x.y`, e.g.
    after a rename) or cites an item anchor docs/curriculum.md lacks (the path, `#` and an
    id that is not there);
  * pdoc warns while rendering (a module it cannot import, a reference it cannot place).

  .venv/bin/python docs/build_api.py [--out docs/api] [--check_only]
"""

import argparse
import importlib
import inspect
import pathlib
import pkgutil
import re
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = (
  "dlx.losses",
  "dlx.nn",
  "dlx.models",
  "dlx.interop",
  "dlx.ops",
  "dlx.data",
  "dlx.experiment",
  "dlx.train",
  "dlx.training",
  "dlx.tools",
  "dlx.viz",
  "dlx.envs",
  "dlx.tasks",
)
# Backticked dotted names rooted at dlx, e.g. `dlx.ops.boxes.nms` or `dlx.losses.mse(...)`.
_DLX_NAME = re.compile(r"`(dlx(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_ANCHOR = re.compile(r"docs/curriculum\.md#([a-z0-9]+)")


def walk_modules(names=MODULES):
  """Every module of the documented packages, imported."""
  seen = {}
  for name in names:
    module = importlib.import_module(name)
    seen[name] = module
    if hasattr(module, "__path__"):
      for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}."):
        seen[info.name] = importlib.import_module(info.name)
  return seen


def _docstrings(module):
  yield module.__name__, inspect.getdoc(module) or ""
  for attr, value in vars(module).items():
    if getattr(value, "__module__", None) != module.__name__:
      continue
    if inspect.isclass(value) or inspect.isfunction(value):
      yield f"{module.__name__}.{attr}", inspect.getdoc(value) or ""
      if inspect.isclass(value):
        for member, function in vars(value).items():
          if inspect.isfunction(function):
            yield f"{module.__name__}.{attr}.{member}", inspect.getdoc(function) or ""


def resolves(dotted: str) -> bool:
  """Whether `dotted` names a dlx module or an attribute reachable from one."""
  parts = dotted.split(".")
  for cut in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    try:
      for part in parts[cut:]:
        obj = getattr(obj, part)
    except AttributeError:
      return False
    return True
  return False


def broken_references(modules) -> list[str]:
  anchors = set(re.findall(r'<a id="([a-z0-9]+)"', (ROOT / "docs/curriculum.md").read_text()))
  problems = []
  for module in modules.values():
    for where, text in _docstrings(module):
      for name in _DLX_NAME.findall(text):
        if not resolves(name):
          problems.append(f"{where}: `{name}` does not exist")
      for anchor in _ANCHOR.findall(text):
        if anchor not in anchors:
          problems.append(f"{where}: docs/curriculum.md#{anchor} is not an anchor there")
  return sorted(set(problems))


def build(out: pathlib.Path) -> list[str]:
  import pdoc  # pylint: disable=g-import-not-at-top

  pdoc.render.configure(docformat="google", footer_text="dlx")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc(*MODULES, output_directory=out)
  # Annotations inside third-party defaults (jax's initializers) are not ours to fix.
  return [
    f"pdoc: {w.message}"
    for w in caught
    if "pdoc" in (w.filename or "")
    and not issubclass(w.category, DeprecationWarning)
    and not str(w.message).startswith("Error parsing type annotation")
  ]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=str(ROOT / "docs" / "api"))
  parser.add_argument("--check_only", action="store_true")
  args = parser.parse_args(argv)
  problems = broken_references(walk_modules())
  if not args.check_only:
    problems += build(pathlib.Path(args.out))
  for problem in problems:
    print(problem, file=sys.stderr)
  if problems:
    print(f"docs: {len(problems)} broken reference(s)", file=sys.stderr)
    return 1
  if not args.check_only:
    print(f"docs: wrote {pathlib.Path(args.out) / 'index.html'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
