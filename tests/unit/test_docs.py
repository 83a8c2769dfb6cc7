"""The Markdown docs cite only what exists.

* In README.md, docs/*.md, benchmarks/README.md and experiments/**/README.md, every
  relative Markdown link `[text](target)` must point at a file or folder (relative to the
  Markdown file; `#anchor` stripped; http(s) and mailto links skipped), and every path
  written out that starts with dlx/, experiments/, tests/, benchmarks/ or docs/ and ends
  in .py, .md, .png or / must exist relative to the repository root (an upper-case
  name such as experiments/FAMILY/NAME.py is a placeholder and is skipped).
* Everywhere (docs, docstrings, comments), an anchor of docs/curriculum.md that is cited
  (`docs/curriculum.md#f2`, and the `#b9` that follow it in `docs/curriculum.md#f19, #b9`)
  must be an item id of that page (`<a id="f2"></a>`) or one of its headings.

Plain text search, no imports of dlx: fast, and it catches a renamed or moved file that
the docs still name. Each failure lists every broken reference as file:line.
"""

import ast
import os
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CURRICULUM = REPO / "docs" / "curriculum.md"

DOCS = ("README.md", "docs/*.md", "benchmarks/README.md", "experiments/**/README.md")
# Files whose text may cite curriculum anchors (source, docs, scripts, configuration).
CITING_SUFFIXES = {".py", ".md", ".sh", ".cfg", ".toml", ".txt"}
SKIPPED_DIRS = {"runs", "workdirs", "build", "dist", "node_modules", "__pycache__"}

# `](target)` of inline links and images; `[label]: target` of reference definitions.
_LINK = re.compile(r"\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
# A repository path written out: starts at a word boundary that is not part of a longer
# path (so `../experiments/x.md` and `/abs/dlx/x.py` are left to the link check).
_PATH = re.compile(
  r"(?<![\w./~$-])((?:dlx|experiments|tests|benchmarks|docs)/[\w./*-]*?(?:\.py|\.md|\.png|/))"
  r"(?![\w*-])"
)
# `experiments/FAMILY/NAME.py` is a pattern, not a path: an upper-case stem stands for a name.
_PLACEHOLDER = re.compile(r"(?:^|/)(?!README\b)[A-Z][A-Z_]*[A-Z](?:[/.]|$)")
_ANCHOR = re.compile(r"curriculum\.md#([\w-]+)")
# `#b9` in `docs/curriculum.md#f19, #b9` or `#f10 and #f11`: item ids have a letter a-h and
# a number from 1 (hex colours such as #f00 or #a1b2c3 do not match).
_ITEM = re.compile(r"(?<![\w&/#])#([a-h][1-9][0-9]?)\b")
_ITEM_ID = re.compile(r'<a id="([\w-]+)"></a>')
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _line(text: str, offset: int) -> int:
  return text.count("\n", 0, offset) + 1


def _rel(path: pathlib.Path) -> str:
  return path.relative_to(REPO).as_posix()


def _markdown_files():
  files = set()
  for pattern in DOCS:
    files.update(p for p in REPO.glob(pattern) if p.is_file())
  return sorted(files)


def _citing_files():
  for root, dirs, files in os.walk(REPO):
    here = pathlib.Path(root)
    dirs[:] = sorted(
      d
      for d in dirs
      if not (d.startswith(".") or d in SKIPPED_DIRS or d.endswith(".egg-info"))
      and here / d != REPO / "docs" / "api"  # the generated API reference
    )
    for name in sorted(files):
      if pathlib.Path(name).suffix in CITING_SUFFIXES:
        yield here / name


def _slug(heading: str) -> str:
  """GitHub's anchor of a Markdown heading."""
  text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
  return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def curriculum_anchors() -> set[str]:
  text = CURRICULUM.read_text(encoding="utf-8")
  return set(_ITEM_ID.findall(text)) | {_slug(h) for h in _HEADING.findall(text)}


def _exists(base: pathlib.Path, target: str) -> bool:
  """Whether `target` (a path relative to `base`, maybe a glob) names something there."""
  if "*" in target:
    return any(base.glob(target))
  path = base / target
  return path.is_dir() if target.endswith("/") else path.exists()


def broken_paths() -> list[str]:
  problems = set()
  for doc in _markdown_files():
    text = doc.read_text(encoding="utf-8")
    where = _rel(doc)
    targets = [(m.start(), m.group(1)) for m in _LINK.finditer(text)]
    targets += [(m.start(), m.group(1)) for m in _REFERENCE.finditer(text)]
    for offset, target in targets:
      if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
        continue  # http:, https:, mailto: and other schemes
      path_part = target.split("#", 1)[0]
      if not path_part:
        continue  # an anchor in the same file
      base = REPO if path_part.startswith("/") else doc.parent
      if not _exists(base, path_part.lstrip("/")):
        problems.add((where, _line(text, offset), f"link target {target!r} does not exist"))
    for m in _PATH.finditer(text):
      cited = m.group(1)
      if _PLACEHOLDER.search(cited):
        continue
      if not _exists(REPO, cited):
        problems.add((where, _line(text, m.start()), f"path {cited!r} does not exist"))
  return [f"{f}:{n}: {what}" for f, n, what in sorted(problems)]


def broken_anchors() -> list[str]:
  anchors = curriculum_anchors()
  problems = set()
  for path in _citing_files():
    try:
      text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
      continue
    cites = list(_ANCHOR.finditer(text))
    if path == CURRICULUM:
      # The page's own links: [B7](#b7).
      cites += list(re.finditer(r"\]\(#([\w-]+)\)", text))
    if not cites:
      continue
    found = [(m.start(), m.group(1)) for m in cites]
    found += [(m.start(), m.group(1)) for m in _ITEM.finditer(text)]
    for offset, anchor in found:
      if anchor not in anchors:
        problems.add((_rel(path), _line(text, offset), anchor))
  return [
    f"{f}:{n}: docs/curriculum.md#{a} is not an item of docs/curriculum.md"
    for f, n, a in sorted(problems)
  ]


def test_the_curriculum_has_item_anchors():
  ids = set(_ITEM_ID.findall(CURRICULUM.read_text(encoding="utf-8")))
  assert {"a1", "b1", "f2", "h4"} <= ids, sorted(ids)


def test_cited_paths_exist():
  problems = broken_paths()
  assert not problems, f"{len(problems)} broken path reference(s):\n" + "\n".join(problems)


def test_cited_curriculum_anchors_exist():
  problems = broken_anchors()
  assert not problems, f"{len(problems)} broken curriculum anchor(s):\n" + "\n".join(problems)


def test_the_checks_catch_what_they_should():
  # The patterns on a made-up text: which paths and anchors they pick out.
  text = (
    "See `dlx/models/lenet.py`, dlx/nn/ and ../experiments/x.md; [F2](docs/curriculum.md#f2),"
    " docs/curriculum.md#f19, #b9 and #f10. Not: dlx/models/lenet, #f00, https://x/dlx/a.py."
  )
  assert [m.group(1) for m in _PATH.finditer(text)] == [
    "dlx/models/lenet.py",
    "dlx/nn/",
    "docs/curriculum.md",
    "docs/curriculum.md",
  ]
  assert [m.group(1) for m in _LINK.finditer(text)] == ["docs/curriculum.md#f2"]
  assert [m.group(1) for m in _ANCHOR.finditer(text)] == ["f2", "f19"]
  assert [m.group(1) for m in _ITEM.finditer(text)] == ["b9", "f10"]
  assert _PLACEHOLDER.search("experiments/FAMILY/NAME.py")
  assert not _PLACEHOLDER.search("experiments/vision/README.md")
  assert _slug("## A. The training system".lstrip("# ")) == "a-the-training-system"


@pytest.mark.parametrize("package", ["tasks", "training", "tools", "envs", "viz", "interop"])
def test_each_package_docstring_names_its_modules(package):
  """A package's docstring is its table of contents: every module and sub-package in it."""
  directory = REPO / "dlx" / package
  doc = ast.get_docstring(ast.parse((directory / "__init__.py").read_text())) or ""
  names = {p.stem for p in directory.glob("*.py") if p.stem != "__init__"}
  names |= {p.name for p in directory.iterdir() if (p / "__init__.py").is_file()}
  missing = sorted(n for n in names if not re.search(rf"\b{n}\b", doc))
  assert not missing, f"dlx/{package}/__init__.py's docstring does not name {missing}"
