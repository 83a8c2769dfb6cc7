"""Will a run fit a TPU? Compiles an experiment's train step ahead of time for a TPU
topology on this machine's CPU (no TPU, no data) and prints each chip's memory.

  python -m dlx.tools.aot_check NAME[:ARG] --topology=v5e:4x4 [--config.FIELD=VALUE ...]

The topology is libtpu's CHIP:SHAPE: v4:2x2x2, v5e:4x4, v5p:2x2x2, v6e:2x4 (one JAX device
per chip, as on a Cloud TPU VM). The step is dlx.train.lower_train_step's: the config's
mesh (--config.mesh.data/fsdp/tensor) and sharding rules over the topology's chips, with
abstract state and batch. XLA's TPU compiler (libtpu) gives each chip's arguments,
outputs, temporaries and code; the verdict compares their sum with the HBM the compiler
lets a program use (docs/scaling.md#fit-checks-from-a-laptop-aot).

libtpu stays out of the virtual environment, where it would make every JAX start look for
a TPU: `./launch.sh tpu-tools` installs it in $DLX_LIBTPU_DIR (default <repo>/.libtpu),
which this tool alone puts on sys.path. Exit status: 0 fits, 1 does not fit, 2 bad input
or no libtpu (one line on stderr).
"""

import argparse
import importlib.metadata
import importlib.util
import os
import re
import sys
import time

from dlx.tools import cli

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 1 << 30
# The HBM a program may use per chip (device_kind -> bytes), as libtpu 0.0.42's compiler
# states it in its out-of-memory error: the chip's 16, 32 or 96 GiB less what the
# runtime reserves. Used when probing the compiler itself (_probe_hbm) gives nothing.
HBM_BYTES = {
  "TPU v4": int(30.75 * GIB),
  "TPU v5 lite": int(15.75 * GIB),  # v5e
  "TPU v5": int(95.74 * GIB),  # v5p
  "TPU v6 lite": int(31.25 * GIB),  # v6e
}
# libtpu's chip configs: v4's two TensorCores as one device per chip (megacore), as a
# Cloud TPU VM shows them; the others have one device per chip by default.
CHIP_CONFIGS = {"v4": "megacore"}
_TOPOLOGY = re.compile(r"^(v\d+[a-z]*):(\d+(?:x\d+){1,2})$")
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# XLA:TPU's out-of-memory error names the available HBM ("... exceeds available HBM
# (15.75G)"; older libtpu: "Used 22.5G of 15.75G hbm") and what the program needed.
_OOM_LIMIT = re.compile(r"available HBM \(([\d.]+)([KMGT]?)\)|of ([\d.]+)([KMGT]?) hbm")
_OOM_NEEDED = re.compile(r"HLO temporaries \(([\d.]+)([KMGT]?)\)|Used ([\d.]+)([KMGT]?) of")


def libtpu_dir(environ=os.environ) -> str:
  return environ.get("DLX_LIBTPU_DIR") or os.path.join(_REPO, ".libtpu")


def use_libtpu(directory: str) -> str | None:
  """Puts `directory` on sys.path and returns the libtpu version importable then (from
  it, or installed in the environment: the [tpu] extra), else None."""
  if os.path.isfile(os.path.join(directory, "libtpu", "libtpu.so")):
    sys.path.insert(0, directory)
  if importlib.util.find_spec("libtpu") is None:
    return None
  try:
    return importlib.metadata.version("libtpu")
  except importlib.metadata.PackageNotFoundError:
    return "(unknown version)"


def quiet_tpu_start(environ=os.environ):
  """libtpu starts as if on a TPU VM: without these it looks up the VM's metadata and
  prints errors about TPU_WORKER_HOSTNAMES and TPU_ACCELERATOR_TYPE. None of them
  changes what the compiler targets (that is --topology). JAX computes on the CPU."""
  environ["JAX_PLATFORMS"] = "cpu"  # no attempt to open a TPU backend
  environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
  environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  environ.setdefault("TPU_ACCELERATOR_TYPE", "v5litepod-4")  # only read at start-up
  environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # several checks at once
  environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_topology(text: str) -> tuple[str, dict]:
  """'v4:2x2x2' -> ('v4:2x2x2', {'chip_config_name': 'megacore'}), libtpu's name and
  options; ValueError for a name of another form (libtpu judges the chip and shape)."""
  match = _TOPOLOGY.match(text.strip().lower())
  if not match:
    raise ValueError(
      f"--topology={text!r}: give CHIP:SHAPE as libtpu names it, e.g. v5e:4x4, v4:2x2x2, "
      "v5p:2x2x2, v6e:2x4"
    )
  options = {}
  # Hosts hold 2x2x1 chips; a smaller slice (v5e:1x1) is one host with fewer.
  shape = [int(n) for n in match.group(2).split("x")] + [1]
  if any(n < d for n, d in zip(shape, (2, 2, 1))):
    options["chips_per_host_bounds"] = tuple(min(n, d) for n, d in zip(shape, (2, 2, 1)))
  if match.group(1) in CHIP_CONFIGS:
    options["chip_config_name"] = CHIP_CONFIGS[match.group(1)]
  return match.group(0), options


def human_bytes(n: int) -> str:
  return f"{n / GIB:.2f} GiB" if abs(n) >= GIB else f"{n / (1 << 20):.1f} MiB"


def verdict(total: int, hbm: int, *, at_least: bool = False) -> str:
  used = f"{'at least ' if at_least else ''}{human_bytes(total)}"
  word = "fits" if total <= hbm and not at_least else "does not fit"
  return f"verdict: {word} ({used} of {human_bytes(hbm)} HBM per chip)"


def oom_numbers(message: str) -> tuple[int | None, int | None]:
  """(needed, available) bytes from XLA:TPU's out-of-memory error, None where absent."""
  found = []
  for pattern in (_OOM_NEEDED, _OOM_LIMIT):
    match = pattern.search(message)
    number, unit = [g for g in match.groups() if g is not None] if match else (None, "")
    found.append(int(float(number) * _UNITS[unit]) if number else None)
  return tuple(found)


def memory_rows(stats) -> list[tuple[str, int]]:
  """(label, bytes) per chip from compiled.memory_analysis(), the total last: donated
  arguments that outputs reuse (aliased) are counted once."""
  get = lambda name: int(getattr(stats, f"{name}_size_in_bytes", 0) or 0)
  rows = [
    ("arguments", get("argument")),
    ("outputs", get("output")),
    ("aliased (outputs in donated arguments)", -get("alias")),
    ("temporaries", get("temp")),
    ("generated code", get("generated_code")),
  ]
  return rows + [("total", sum(n for _, n in rows))]


def _probe_hbm(device) -> int | None:
  """The HBM the compiler lets a program use on `device`'s chip: a program that needs
  1 TiB fails to compile (in milliseconds) with an error that states it."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  huge = lambda x: jnp.sort(jnp.broadcast_to(x, (1 << 18, x.shape[0])) * 2.0, axis=0)[0]
  one = jax.sharding.SingleDeviceSharding(device)
  try:
    jax.jit(huge).lower(jax.ShapeDtypeStruct((1 << 20,), jnp.float32, sharding=one)).compile()
  except Exception as e:  # pylint: disable=broad-except
    return oom_numbers(str(e))[1]
  return None


def topology_devices(name: str, options: dict):
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

  try:
    return topologies.get_topology_desc(topology_name=name, platform="tpu", **options).devices
  except Exception as e:  # pylint: disable=broad-except
    cli.fail(f"--topology={name}: libtpu cannot make it: {' '.join(str(e).split())[:300]}")


def _print_plan(spec, name, devices, info, hbm, hbm_source, libtpu_version):
  kind = devices[0].device_kind
  chips = f"{len(devices)} chip{'s' if len(devices) > 1 else ''}"
  print(f"{spec} on {name}: {chips} ({kind}), libtpu {libtpu_version}")
  if info.get("mesh"):
    print("mesh: " + " ".join(f"{k}={v}" for k, v in info["mesh"].items()))
  if "num_parameters" in info:
    print(
      f"parameters: {info['num_parameters']:,} ({human_bytes(info['param_bytes_total'])}), "
      f"{human_bytes(info['param_bytes_per_device'])} per chip; optimizer state "
      f"{human_bytes(info['opt_state_bytes_per_device'])} per chip"
    )
  print(f"HBM per chip: {human_bytes(hbm)} ({hbm_source})")


def check(spec: str, topology: str, config, *, libtpu: str, data_dir=None):
  """Lowers and compiles the step, prints the report; returns the exit status."""
  import jax  # pylint: disable=g-import-not-at-top

  from dlx import errors  # pylint: disable=g-import-not-at-top
  from dlx import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from dlx import train  # pylint: disable=g-import-not-at-top

  # JAX's persistent cache writes compile-only programs but cannot read them back.
  jax.config.update("jax_enable_compilation_cache", False)
  name, options = parse_topology(topology)
  devices = topology_devices(name, options)
  kind = devices[0].device_kind
  hbm, source = _probe_hbm(devices[0]), f"what libtpu's compiler allows a {kind} program"
  if hbm is None:
    hbm, source = HBM_BYTES.get(kind), f"dlx's table for {kind}"
  if hbm is None:
    cli.fail(f"no HBM size known for {kind}; add it to HBM_BYTES in {__name__}")
  try:
    experiment = experiment_lib.load(spec.partition(":")[0])
    lowered, info = train.lower_train_step(experiment, config, devices, data_dir=data_dir)
  except errors.UserError as e:
    cli.fail(str(e))
  _print_plan(spec, name, devices, info, hbm, source, libtpu)
  sys.stderr.write("compiling the train step with XLA's TPU compiler (minutes when large)\n")
  start = time.time()
  try:
    stats = lowered.compile().memory_analysis()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      cli.fail(f"XLA's TPU compiler failed: {' '.join(str(e).split())[:400]}")
    return _report_oom(str(e), info, hbm, time.time() - start)
  rows = memory_rows(stats)
  print(f"per-chip memory (XLA's TPU compiler, {time.time() - start:.0f} s):")
  for label, n in rows:
    print(f"  {label:40s} {human_bytes(n):>12s}")
  print(verdict(rows[-1][1], hbm))
  return 0 if rows[-1][1] <= hbm else 1


def _report_oom(message: str, info: dict, hbm: int, seconds: float) -> int:
  """The compiler gave up: its temporaries alone exceed the HBM. The state's shards
  (arguments) come on top."""
  needed, limit = oom_numbers(message)
  hbm = limit or hbm
  state = info.get("param_bytes_per_device", 0) + info.get("opt_state_bytes_per_device", 0)
  print(f"per-chip memory (XLA's TPU compiler gave up after {seconds:.0f} s: out of HBM):")
  print(f"  {'parameters and optimizer state':40s} {human_bytes(state):>12s}")
  if needed:
    print(f"  {'temporaries':40s} {human_bytes(needed):>12s}")
  print(f"  compiler: {' '.join(message.split())[:300]}")
  print(verdict(state + (needed or 0), hbm, at_least=True))
  return 1


def main(argv=None):
  parser = cli.Parser(
    prog="python -m dlx.tools.aot_check",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,
  )
  parser.add_argument("experiment", metavar="NAME[:ARG]", help="an experiment, as for dlx.main")
  parser.add_argument("--topology", required=True, help="CHIP:SHAPE, e.g. v5e:4x4 or v4:2x2x2")
  args, passthrough = parser.parse_known_args(argv)
  try:
    parse_topology(args.topology)
  except ValueError as e:
    cli.fail(str(e))
  directory = libtpu_dir()
  version = use_libtpu(directory)
  if version is None:
    cli.fail(
      f"libtpu (XLA's TPU compiler) is not in {directory}; ./launch.sh tpu-tools installs it"
    )
  quiet_tpu_start()
  from dlx import main as main_lib  # pylint: disable=g-import-not-at-top

  # dlx.main's own flag parsing: the same config overrides and one-line errors (the
  # workdir is required there and never written here).
  rest = main_lib.parse_flags(
    ["dlx.tools.aot_check", f"--config={args.experiment}", f"--workdir={os.devnull}"] + passthrough
  )
  if len(rest) > 1:
    cli.fail(f"unexpected arguments {' '.join(rest[1:])!r}; flags look like --name=value")
  return check(
    args.experiment,
    args.topology,
    main_lib.FLAGS.config,
    libtpu=version,
    data_dir=main_lib.FLAGS.data_dir,
  )


if __name__ == "__main__":
  sys.exit(main())
