"""One train step of a GPT on several meshes: replicated (data parallel) against FSDP,
tensor parallelism and both (dlx/training/sharding.py).

The step is the trainer's own (`dlx.train.mesh_train_step`: gpt_shakespeare_char's model,
optimizer and batches, jitted with the state donated and placed by the mesh's rules).
Compilation and `--warmup` steps are not timed; the median of `--repeats` is reported,
read after `jax.block_until_ready`, with the bytes of parameters one device holds.

On a CPU the devices are forced (`--cpu_devices 8`, the default there): they share the
same cores, so the times say what sharding costs in gathers and copies, not what it
gains; the gain needs real devices (a GPU or TPU machine with several chips).

  python benchmarks/sharded_step.py [--meshes 8,1,1 1,8,1 1,2,4 2,2,2] [--cpu_devices 8]
      [--layers 4] [--features 256] [--heads 8] [--context 128] [--batch_size 32]
      [--repeats 20] [--warmup 3] [--json FILE]
"""

import argparse
import os
import statistics
import time


def _args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--meshes", nargs="+", default=["8,1,1", "1,8,1", "1,2,4", "2,2,2"])
  parser.add_argument("--cpu_devices", type=int, default=8)
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--features", type=int, default=256)
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--context", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--json", default="")
  return parser.parse_args()


def _config(experiment, args, mesh):
  config = experiment.get_config(None)
  config.experiment = "gpt_shakespeare_char"
  config.model.num_layers, config.model.features = args.layers, args.features
  config.model.num_heads, config.context_length = args.heads, args.context
  config.batch_size = args.batch_size
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = (int(v) for v in mesh.split(","))
  return config


def _time_mesh(experiment, args, mesh):
  import jax  # pylint: disable=g-import-not-at-top

  from dlx import train  # pylint: disable=g-import-not-at-top
  from dlx.training import parallel  # pylint: disable=g-import-not-at-top
  from dlx.training import sharding  # pylint: disable=g-import-not-at-top

  config = _config(experiment, args, mesh)
  size = config.mesh.data * config.mesh.fsdp * config.mesh.tensor
  built = train.mesh_train_step(experiment, config, jax.devices()[:size])
  state = built.init(jax.random.PRNGKey(0))
  batch = parallel.global_batch(next(built.batches), built.mesh)
  start = time.perf_counter()
  state, metrics = built.train(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  for _ in range(args.warmup):
    state, metrics = built.train(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    state, metrics = built.train(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  held = sharding.describe(state, built.mesh)
  return {
    "mesh": mesh,
    "median_ms": 1e3 * statistics.median(times),
    "first_call_s": compile_s,
    "param_bytes_total": held["param_bytes_total"],
    "param_bytes_per_device": held["param_bytes_per_device"],
    "opt_state_bytes_per_device": held["opt_state_bytes_per_device"],
  }


def main():
  args = _args()
  # Forced CPU devices must be set before jax starts (a GPU/TPU machine ignores them).
  flags = os.environ.get("XLA_FLAGS", "")
  if args.cpu_devices and "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.cpu_devices}"
  import jax  # pylint: disable=g-import-not-at-top

  from dlx import experiment as experiment_lib  # pylint: disable=g-import-not-at-top

  experiment = experiment_lib.load("gpt_shakespeare_char")
  print(f"{jax.device_count()} {jax.devices()[0].platform} devices; jax {jax.__version__}")
  rows = [_time_mesh(experiment, args, mesh) for mesh in args.meshes]
  base = rows[0]["median_ms"]
  print(f"{'mesh (data,fsdp,tensor)':24} {'step ms':>9} {'vs first':>9} {'params/device':>14}")
  for row in rows:
    share = row["param_bytes_per_device"] / row["param_bytes_total"]
    print(
      f"{row['mesh']:24} {row['median_ms']:9.2f} {row['median_ms'] / base:8.2f}x "
      f"{row['param_bytes_per_device'] / 2**20:9.2f} MiB ({share:.0%})"
    )
  if args.json:
    import _common  # pylint: disable=g-import-not-at-top

    _common.write_json(args.json, rows)


if __name__ == "__main__":
  main()
