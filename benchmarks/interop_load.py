"""How long `dlx.interop.from_hf_gpt2` takes to load a GPT-2 and how much host memory it needs.

  python benchmarks/interop_load.py [--dir=/tmp/dlx_gpt2_124m] [--repeats=3] [--tiny]

The checkpoint is GPT-2 small's shape (124M parameters: 12 layers, 12 heads, 768 dims,
context 1024, vocabulary 50257) with random float32 weights, written once into `--dir`
as `GPT2LMHeadModel.save_pretrained` lays it out (config.json + one model.safetensors,
the same tensor names, shapes and dtype; written through dlx's own writer, so no torch
is needed). Each repeat is a fresh Python process, so nothing is cached in memory, that
reports:

  import     seconds to import jax and dlx.interop (what any caller pays once)
  load       seconds of from_hf_gpt2(dir), until every parameter is a ready jax.Array
  rss before peak resident memory (getrusage ru_maxrss) after the imports, MiB
  peak rss   peak resident memory after the load, MiB: the whole process's high-water mark

The medians over the repeats are printed. JAX runs on the CPU (JAX_PLATFORMS=cpu unless
set), so the parameters live in host memory like the file's arrays. `--tiny` (2 layers,
64 dims) runs in seconds for a smoke test; its numbers mean nothing.
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

# jax, NumPy and dlx are imported inside the functions: the measuring process times them.

GPT2_SMALL = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "vocab_size": 50257}
TINY = {"n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 64, "vocab_size": 101}


def write_checkpoint(directory: pathlib.Path, sizes: dict, seed: int = 0):
  """A random GPT-2 of `sizes` in save_pretrained's layout; skipped when already there."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from dlx.interop import hf_gpt2  # pylint: disable=g-import-not-at-top
  from dlx.interop import safetensors_io  # pylint: disable=g-import-not-at-top
  from dlx.models.gpt import GPT  # pylint: disable=g-import-not-at-top

  config_path = directory / hf_gpt2.CONFIG
  if config_path.is_file() and (directory / safetensors_io.WEIGHTS).is_file():
    config = json.loads(config_path.read_text())
    if all(config.get(k) == v for k, v in sizes.items()):
      return
  model = GPT(
    vocab_size=sizes["vocab_size"],
    max_length=sizes["n_positions"],
    num_layers=sizes["n_layer"],
    num_heads=sizes["n_head"],
    features=sizes["n_embd"],
    output_bias=False,
  )
  rng = np.random.default_rng(seed)
  tensors = {
    hf_gpt2.PREFIX + key: (0.02 * rng.standard_normal(shape)).astype(np.float32)
    for key, shape in hf_gpt2.hf_shapes(model).items()
  }
  directory.mkdir(parents=True, exist_ok=True)
  safetensors_io.write(directory / safetensors_io.WEIGHTS, tensors, metadata={"format": "pt"})
  config_path.write_text(json.dumps(hf_gpt2.hf_config(model), indent=2) + "\n")


def _max_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


def measure(directory: str) -> dict:
  """One load in this process (call it in a fresh one): times and peak memory."""
  start = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top

  from dlx import interop  # pylint: disable=g-import-not-at-top

  jax.devices()  # Start the backend before the clock: every caller pays it once.
  imported = time.perf_counter()
  rss_before = _max_rss_mib()
  model, variables = interop.from_hf_gpt2(directory)
  jax.block_until_ready(variables)
  loaded = time.perf_counter()
  count = sum(x.size for x in jax.tree_util.tree_leaves(variables))
  return {
    "import_s": imported - start,
    "load_s": loaded - imported,
    "rss_before_mib": rss_before,
    "peak_rss_mib": _max_rss_mib(),
    "params_millions": count / 1e6,
    "backend": jax.default_backend(),
    "layers": model.num_layers,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dir", default="/tmp/dlx_gpt2_124m", help="checkpoint directory")
  parser.add_argument("--repeats", type=int, default=3, help="fresh processes to time")
  parser.add_argument("--tiny", action="store_true", help="a 2-layer model, for smoke tests")
  parser.add_argument("--json", default=None, help="also write the results here")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(measure(args.dir)))
    return
  directory = pathlib.Path(args.dir)
  sizes = TINY if args.tiny else GPT2_SMALL
  write_checkpoint(directory, sizes)
  size_mib = (directory / "model.safetensors").stat().st_size / 2**20
  env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
  runs = []
  for _ in range(args.repeats):
    done = subprocess.run(
      [sys.executable, __file__, "--child", f"--dir={directory}"],
      env=env,
      capture_output=True,
      text=True,
      check=False,
    )
    if done.returncode:
      sys.exit(f"interop_load.py: the measuring process failed:\n{done.stderr[-3000:]}")
    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
  median = lambda key: statistics.median(r[key] for r in runs)
  print(
    f"from_hf_gpt2 on {directory} ({runs[0]['params_millions']:.1f}M params, "
    f"model.safetensors {size_mib:.0f} MiB, {runs[0]['backend']}), median of {len(runs)} "
    "fresh processes:"
  )
  print(f"  import jax + dlx.interop  {median('import_s'):6.2f} s")
  print(f"  load                      {median('load_s'):6.2f} s")
  print(f"  peak rss after imports    {median('rss_before_mib'):6.0f} MiB")
  print(f"  peak rss after load       {median('peak_rss_mib'):6.0f} MiB")
  print("  loads (s): " + ", ".join(f"{r['load_s']:.2f}" for r in runs))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps({"size_mib": size_mib, "runs": runs}, indent=2))


if __name__ == "__main__":
  main()
