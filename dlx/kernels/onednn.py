"""Builds and loads dlx's oneDNN extension (cpu/onednn_conv.cc: convolutions,
cpu/onednn_matmul.cc: matrix products, cpu/onednn_gelu.cc: GELU, cpu/onednn_layer_norm.cc:
layer normalization, cpu/onednn_softmax.cc: softmax; docs/cpu_kernels.md).

oneDNN comes from Debian's `libdnnl-dev` (2.6.3, a plain CPU build on OpenMP); `./launch.sh`
installs it when it runs as root, then builds. By hand:

  apt-get install libdnnl-dev && python -m dlx.kernels.onednn

The shared library goes to dlx/kernels/_build/ (ignored by git; $DLX_KERNELS_DIR
overrides it), named by a hash of the source and of jaxlib's version, so it is rebuilt
only when either changes. DLX_NO_ONEDNN=1 hides it (the XLA route runs everywhere).
"""

import ctypes
import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

SOURCES = tuple(
  pathlib.Path(__file__).parent / "cpu" / name
  for name in (
    "onednn_conv.cc",
    "onednn_matmul.cc",
    "onednn_gelu.cc",
    "onednn_layer_norm.cc",
    "onednn_softmax.cc",
  )
)
HEADERS = (pathlib.Path(__file__).parent / "cpu" / "pieces.h",)  # included by the sources
FILES = SOURCES + HEADERS
HEADER = "oneapi/dnnl/dnnl.hpp"
INCLUDE_DIRS = ("/usr/include", "/usr/local/include")
BUILD_HINT = "apt-get install libdnnl-dev && python -m dlx.kernels.onednn"
# FFI target name -> exported handler symbol.
TARGETS = {
  "dlx_onednn_conv_forward": "DlxOnednnConvForward",
  "dlx_onednn_conv_backward_data": "DlxOnednnConvBackwardData",
  "dlx_onednn_conv_backward_weights": "DlxOnednnConvBackwardWeights",
  "dlx_onednn_matmul": "DlxOnednnMatmul",
  "dlx_onednn_gelu_forward": "DlxOnednnGeluForward",
  "dlx_onednn_gelu_backward": "DlxOnednnGeluBackward",
  "dlx_onednn_layer_norm_forward": "DlxOnednnLayerNormForward",
  "dlx_onednn_layer_norm_backward": "DlxOnednnLayerNormBackward",
  "dlx_onednn_softmax_forward": "DlxOnednnSoftmaxForward",
  "dlx_onednn_softmax_backward": "DlxOnednnSoftmaxBackward",
}
_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w")

_loaded = None  # the ctypes library once its targets are registered
_load_error = None  # why it could not be loaded (kept: one attempt per process)
_bf16 = None  # supports_bfloat16(), asked once


def build_dir() -> pathlib.Path:
  default = pathlib.Path(__file__).parent / "_build"
  return pathlib.Path(os.environ.get("DLX_KERNELS_DIR") or default)


def library_path() -> pathlib.Path:
  """Where the build for this source and this jaxlib lives (it may not exist yet)."""
  digest = hashlib.sha256(b"".join(source.read_bytes() for source in FILES))
  digest.update(importlib.metadata.version("jaxlib").encode())
  digest.update(" ".join(_FLAGS).encode())
  return build_dir() / f"onednn_conv-{digest.hexdigest()[:16]}.so"


def source_missing() -> str | None:
  """Why the extension cannot be built here (no compiler, no oneDNN), or None."""
  absent = [str(source) for source in FILES if not source.is_file()]
  if absent:
    return f"the extension's source {', '.join(absent)} is not installed"
  compiler = os.environ.get("CXX", "g++")
  if shutil.which(compiler) is None:
    return f"no C++ compiler ({compiler}) on PATH"
  if not any(os.path.exists(os.path.join(d, HEADER)) for d in INCLUDE_DIRS):
    return f"oneDNN's headers ({HEADER}) are not installed (apt-get install libdnnl-dev)"
  return None


def build(force: bool = False) -> pathlib.Path:
  """Compiles the extension unless this source's build exists; returns its path. Raises
  RuntimeError with the compiler's message when it fails."""
  target = library_path()
  if target.exists() and not force:
    return target
  missing = source_missing()
  if missing:
    raise RuntimeError(f"cannot build dlx's oneDNN extension: {missing}")
  import jax  # only for the FFI headers' location; a load without a build needs no jax here

  target.parent.mkdir(parents=True, exist_ok=True)
  # Compile to a temporary name and rename: a second process never loads half a file.
  with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
    partial = tmp.name
  command = [
    os.environ.get("CXX", "g++"),
    *_FLAGS,
    f"-I{jax.ffi.include_dir()}",
    *map(str, SOURCES),
    "-o",
    partial,
    "-ldnnl",
  ]
  result = subprocess.run(command, capture_output=True, text=True)
  if result.returncode != 0:
    os.unlink(partial)
    raise RuntimeError(f"building dlx's oneDNN extension failed:\n{result.stderr.strip()}")
  os.replace(partial, target)
  for stale in target.parent.glob("onednn_conv-*.so"):  # builds of older sources
    if stale != target:
      stale.unlink(missing_ok=True)
  return target


def load():
  """Loads the built extension and registers its FFI targets (once per process). Returns
  the library, or None when it is hidden, not built or does not load (`missing()` says why)."""
  global _loaded, _load_error
  if _loaded is not None or _load_error is not None:
    return _loaded
  if os.environ.get("DLX_NO_ONEDNN", "") not in ("", "0"):
    _load_error = "hidden by DLX_NO_ONEDNN"
    return None
  path = library_path() if all(source.is_file() for source in FILES) else None
  if path is None or not path.exists():
    reason = source_missing()
    _load_error = f"not built ({reason})" if reason else f"not built (run: {BUILD_HINT})"
    return None
  try:
    library = ctypes.CDLL(str(path))
  except OSError as e:
    _load_error = f"{path.name} does not load ({e})"
    return None
  import jax

  for name, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
  set_threads(default_threads(), library)
  _loaded = library
  return library


def missing() -> str | None:
  """Why the extension is not loaded (after `load()`), or None when it is."""
  load()
  return _load_error


def default_threads() -> int:
  """JAX's CPU client sizes its thread pool by the cores this process may use; oneDNN's
  OpenMP teams take the same number (DLX_ONEDNN_THREADS overrides)."""
  if os.environ.get("DLX_ONEDNN_THREADS"):
    return int(os.environ["DLX_ONEDNN_THREADS"])
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def set_threads(threads: int, library=None):
  library = library or load()
  library.DlxOnednnSetThreads(int(threads))
  library.DlxOnednnSetPoolThreads(int(threads))


def supports_bfloat16() -> bool:
  """Whether oneDNN has bfloat16 convolutions on this CPU (oneDNN 2.6: AVX-512 ones)."""
  global _bf16
  if _bf16 is None:
    library = load()
    _bf16 = bool(library is not None and library.DlxOnednnSupportsBf16())
  return _bf16


def version(library=None) -> str:
  number = (library or load()).DlxOnednnVersion()
  return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def reset_for_tests():
  """Forgets the load attempt, so that a test can load again under another environment.
  Registered FFI targets stay registered (XLA has no unregister)."""
  global _loaded, _load_error, _bf16
  _loaded = _load_error = _bf16 = None


def main(argv):
  force = "--force" in argv
  quiet = "--quiet" in argv
  try:
    path = build(force=force)
  except RuntimeError as e:
    # One line for launch.sh: the run goes on with XLA's convolutions.
    print(f"dlx: oneDNN extension absent ({str(e).splitlines()[-1]}); XLA's kernels are used")
    return 0 if quiet else 1
  if not quiet:
    print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
