"""Which XLA:CPU flags make dlx's train steps faster: reruns side_by_side.py benchmarks
in a fresh process per flag set (XLA reads XLA_FLAGS once, at backend start) and prints
dlx's median step and the ratio to the PyTorch reference for each.

The flag sets are the CPU backend's library choices in this jaxlib: oneDNN for matmuls
and convolutions (`xla_cpu_use_onednn`, and its custom-call rewrite), and XNNPACK
(`xla_cpu_use_xnnpack`, with its graph fusion). A flag this jaxlib does not know makes
XLA abort at start; that set is reported as failed, not skipped silently.

  .venv/bin/python benchmarks/xla_cpu_flags.py [--only lenet5,mlp] [--repeats 30]
      [--flags 'NAME=--xla_a=true --xla_b=false' ...] [--json FILE] [--tiny]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_SETS = {
  "default": "",
  "onednn": "--xla_cpu_use_onednn=true",
  "onednn_custom_call": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
  "xnnpack": "--xla_cpu_use_xnnpack=true",
  "no_xnnpack": "--xla_cpu_use_xnnpack=false",
}


def run_set(name: str, flags: str, only: str, repeats: int, tiny: bool = False) -> list[dict]:
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "rows.json")
    command = [
      sys.executable,
      os.path.join(HERE, "side_by_side.py"),
      "--only",
      only,
      "--repeats",
      str(repeats),
      "--json",
      out,
    ] + (["--tiny", "--threads=1"] if tiny else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      last = (done.stderr.strip().splitlines() or ["no output"])[-1]
      return [{"flags": name, "xla_flags": flags, "failed": last[:200]}]
    with open(out) as f:
      rows = json.load(f)
  return [{"flags": name, "xla_flags": flags, **row} for row in rows]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="lenet5,mlp", help="side_by_side.py benchmark names")
  parser.add_argument("--repeats", type=int, default=30)
  parser.add_argument("--flags", nargs="*", help="NAME=FLAGS sets instead of the defaults")
  parser.add_argument("--json", help="write every row here")
  parser.add_argument("--tiny", action="store_true", help="side_by_side.py's tiny sizes (tests)")
  args = parser.parse_args(argv)
  sets = DEFAULT_SETS
  if args.flags:
    sets = dict(item.split("=", 1) for item in args.flags)
  rows = []
  print(f"{'flags':<20} {'benchmark':<18} {'dlx ms':>8} {'ref ms':>8} {'ratio':>6}")
  for name, flags in sets.items():
    for row in run_set(name, flags, args.only, args.repeats, args.tiny):
      rows.append(row)
      if "failed" in row:
        print(f"{name:<20} failed: {row['failed']}")
      else:
        print(
          f"{name:<20} {row['benchmark']:<18} {row['dlx_ms']:>8.2f} "
          f"{row['reference_ms']:>8.2f} {row['ratio']:>6.2f}"
        )
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
