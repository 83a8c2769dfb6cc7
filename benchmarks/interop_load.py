"""How long `dlx.interop.from_hf_gpt2` takes to load a GPT-2 and how much host memory it needs
(and, with --model=resnet50, `dlx.interop.from_torchvision` a ResNet-50).

  python benchmarks/interop_load.py [--dir=/tmp/dlx_gpt2_124m] [--repeats=3] [--tiny]
  python benchmarks/interop_load.py --model=resnet50 [--resnet50_dir=/tmp/dlx_resnet50]

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

--model=resnet50: torchvision's ResNet-50 (25.6M parameters) with random float32 weights
(and BatchNorm statistics), written once as `resnet50.pth` (torch.save of the state dict;
writing and reading it needs torch) and `resnet50.safetensors` (the same tensors, no
torch) into `--resnet50_dir`; each repeat times from_torchvision("resnet50", file) for
both files in fresh processes. For the .pth file `import torch` is timed on its own
("import torch") before the load, as from_torchvision would import it on first use.

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


def write_resnet50(directory: pathlib.Path, seed: int = 0) -> dict:
  """Random ResNet-50 weights under torchvision's names, as .pth and .safetensors files
  (each skipped when already there); returns {suffix: path}."""
  files = {".pth": directory / "resnet50.pth", ".safetensors": directory / "resnet50.safetensors"}
  if all(path.is_file() for path in files.values()):
    return files
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from dlx import interop  # pylint: disable=g-import-not-at-top
  from dlx.models import resnet  # pylint: disable=g-import-not-at-top

  image = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  model = resnet.resnet50()
  abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), image)
  rng = np.random.default_rng(seed)
  # Positive values everywhere keep BatchNorm's variances valid; the numbers mean nothing.
  variables = jax.tree_util.tree_map(
    lambda s: (0.5 + 0.05 * rng.random(s.shape)).astype(np.float32), abstract
  )
  state = interop.to_torchvision("resnet50", variables)
  directory.mkdir(parents=True, exist_ok=True)
  torch.save({key: torch.from_numpy(value) for key, value in state.items()}, files[".pth"])
  safetensors_numpy.save_file(state, str(files[".safetensors"]))
  return files


def measure_resnet50(path: str) -> dict:
  """One from_torchvision('resnet50', path) in this process (call it in a fresh one)."""
  start = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top

  from dlx import interop  # pylint: disable=g-import-not-at-top

  jax.devices()
  imported = time.perf_counter()
  torch_import = 0.0
  if path.endswith(".pth"):
    import torch  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401

    torch_import = time.perf_counter() - imported
    imported = time.perf_counter()
  rss_before = _max_rss_mib()
  _, variables = interop.from_torchvision("resnet50", path)
  jax.block_until_ready(variables)
  loaded = time.perf_counter()
  count = sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))
  return {
    "import_s": imported - start - torch_import,
    "torch_import_s": torch_import,
    "load_s": loaded - imported,
    "rss_before_mib": rss_before,
    "peak_rss_mib": _max_rss_mib(),
    "params_millions": count / 1e6,
    "backend": jax.default_backend(),
  }


def _children(args: list, repeats: int) -> list:
  """`repeats` fresh processes running this file with `args`; their JSON results."""
  env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
  runs = []
  for _ in range(repeats):
    done = subprocess.run(
      [sys.executable, __file__, "--child", *args],
      env=env,
      capture_output=True,
      text=True,
      check=False,
    )
    if done.returncode:
      sys.exit(f"interop_load.py: the measuring process failed:\n{done.stderr[-3000:]}")
    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
  return runs


def main_resnet50(args):
  directory = pathlib.Path(args.resnet50_dir)
  # Written by a child: Linux carries a process's peak RSS over to the processes it
  # starts, so writing here would inflate every measured peak.
  _children(["--model=resnet50", "--write", f"--resnet50_dir={directory}"], 1)
  files = write_resnet50(directory)  # Only names the files now.
  results = {}
  for suffix, path in files.items():
    runs = _children(["--model=resnet50", f"--file={path}"], args.repeats)
    median = lambda key, runs=runs: statistics.median(r[key] for r in runs)
    size_mib = path.stat().st_size / 2**20
    print(
      f"from_torchvision('resnet50', {path}) ({runs[0]['params_millions']:.1f}M params, "
      f"{size_mib:.0f} MiB, {runs[0]['backend']}), median of {len(runs)} fresh processes:"
    )
    print(f"  import jax + dlx.interop  {median('import_s'):6.2f} s")
    if suffix == ".pth":
      print(f"  import torch              {median('torch_import_s'):6.2f} s")
    print(f"  load                      {median('load_s'):6.2f} s")
    print(f"  peak rss after imports    {median('rss_before_mib'):6.0f} MiB")
    print(f"  peak rss after load       {median('peak_rss_mib'):6.0f} MiB")
    print("  loads (s): " + ", ".join(f"{r['load_s']:.2f}" for r in runs))
    results[suffix] = {"size_mib": size_mib, "runs": runs}
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


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
  parser.add_argument("--model", default="gpt2", choices=("gpt2", "resnet50"))
  parser.add_argument(
    "--resnet50_dir", default="/tmp/dlx_resnet50", help="--model=resnet50's files"
  )
  parser.add_argument("--file", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child and args.write:
    write_resnet50(pathlib.Path(args.resnet50_dir))
    print(json.dumps({}))
    return
  if args.child:
    result = measure_resnet50(args.file) if args.model == "resnet50" else measure(args.dir)
    print(json.dumps(result))
    return
  if args.model == "resnet50":
    main_resnet50(args)
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
