"""Which implementation dlx's convolutions trace to: 'onednn' (the extension) or 'xla'.

The choice is a process-wide setting read when a convolution is traced, not an argument:
Flax layers deep inside a model cannot be handed it, and the trainer knows it (from
`--config.cpu_kernels` and the devices) before it traces anything. Outside `use(...)`
the route is 'xla', so code that never asks keeps XLA's convolution.
"""

import contextlib

from dlx import errors
from dlx.kernels import onednn

SETTINGS = ("auto", "onednn", "xla")

_route = "xla"


def current() -> str:
  return _route


def resolve(setting: str, backend: str, device_count: int) -> str:
  """'onednn' or 'xla' for `--config.cpu_kernels=setting`. auto: oneDNN when the extension
  loads, the backend is the CPU and the step runs on one device (XLA keeps meshes of
  several devices, GPUs and TPUs); onednn: oneDNN or a one-line error saying why not."""
  if setting not in SETTINGS:
    raise errors.ConfigError(
      f"--config.cpu_kernels={setting!r}: choose one of {', '.join(SETTINGS)}"
    )
  if setting == "xla":
    return "xla"
  if setting == "onednn":
    if backend != "cpu":
      raise errors.ConfigError(
        f"--config.cpu_kernels=onednn runs on the CPU only; this backend is {backend}"
      )
    if onednn.load() is None:
      raise errors.ConfigError(
        f"--config.cpu_kernels=onednn: dlx's oneDNN extension is {onednn.missing()}; "
        f"build it with `{onednn.BUILD_HINT}` (or ./launch.sh)"
      )
    return "onednn"
  if backend != "cpu" or device_count != 1:
    return "xla"
  return "onednn" if onednn.load() is not None else "xla"


@contextlib.contextmanager
def use(route: str):
  """Traces convolutions to `route` ('onednn' or 'xla') inside the block. Jitted functions
  keep what they were traced with: set the route before the first call."""
  global _route
  if route not in ("onednn", "xla"):
    raise ValueError(f"route must be 'onednn' or 'xla', got {route!r}")
  if route == "onednn" and onednn.load() is None:
    raise RuntimeError(
      f"dlx's oneDNN extension is {onednn.missing()}; build it with `{onednn.BUILD_HINT}`"
    )
  previous, _route = _route, route
  try:
    yield route
  finally:
    _route = previous
