"""The input pipelines side by side: examples/s of the memory and grain pipelines on
Fashion-MNIST with random flips and crops, and whether a small CNN's train step waits on its
input (docs/curriculum.md#a6).

Data: the first --examples rows of Fashion-MNIST's train split in ArrayRecord form (converted
from the prepared --data_dir once, into --array_record_dir), scaled to [0, 1] and zero-padded
to 32x32 (the experiments' per-example transforms). The pipelines:

  memory          the rows decoded once into NumPy arrays; batches sliced on the prefetch
                  thread (dlx.data.pipeline, the default)
  grain/memory    the same arrays as grain's source (dlx.data.grain_pipeline), in-process
  grain/stream    nothing held: each batch read from the files, decoded and transformed when
                  needed, by W worker processes (0 = the training process)
  grain/examples  for reference, grain's own idiom: one record per example (IndexSampler with
                  shuffling, then Batch), in-process: why dlx's grain records are batches

The first three give the same batches. Each is timed twice:

  input   batches through `pipeline.prefetch` onto the device, then random flips and crops
          (`dlx.data.augment`, jitted, as the train step applies them): examples/s from the
          median time per batch
  fed     LeNet-5's real train step (`dlx.training.steps.make_train_step`, same augmentation,
          Adam) taking its batches from the pipeline: median ms per step, beside the step alone
          on one batch already on the device; fed / alone near 1 = the step does not wait

Compilation is excluded (--warmup untimed batches first, which also covers starting grain's
workers); every timed batch or step ends in `jax.block_until_ready`.

  .venv/bin/python benchmarks/input_pipeline.py --data_dir=../shared/tfds [--examples 60000]
      [--batch_size 128] [--steps 100] [--warmup 10] [--workers 0,2] [--out results.json]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import grain.python as grain
import jax
import jax.numpy as jnp

from dlx import train
from dlx.data import augment as augment_lib
from dlx.data import convert
from dlx.data import core
from dlx.data import grain_pipeline
from dlx.data import pipeline
from dlx.data import tfds_data
from dlx.data import transforms
from dlx.models import lenet
from dlx.tasks import classification
from dlx.training import optim
from dlx.training import steps

NAME = "fashion_mnist"
SEED = 0
AUGMENT = {"flip": True, "crop_padding": 2}


def _to_32x32(split):
  return transforms.pad_images(transforms.scale_images(split), 2)


def _data(args):
  """(in-memory arrays, streamed LazySplit) of the same rows, transformed alike."""
  root = args.array_record_dir or tempfile.mkdtemp(prefix="dlx_array_record_")
  if not os.path.isdir(os.path.join(root, NAME)):
    print(f"converting {NAME} from {args.data_dir} to ArrayRecord in {root} ...", flush=True)
    convert.convert(NAME, args.data_dir, root)
  split = f"train[:{args.examples}]"
  lazy = core.LazySplit(tfds_data.TfdsSource(NAME, split, root)).map(_to_32x32)
  arrays = _to_32x32(tfds_data.load_split(NAME, split, data_dir=root))
  return arrays, lazy


class _ApplyTransforms(grain.MapTransform):
  def __init__(self, split):
    self.split = split

  def map(self, element):
    return self.split.apply(element)


def _per_example_loader(lazy, batch_size):
  """grain's idiom, for reference: a record per example, shuffled by IndexSampler."""
  shard = grain.ShardOptions(0, 1, drop_remainder=True)
  sampler = grain.IndexSampler(len(lazy), shard, shuffle=True, num_epochs=None, seed=SEED)
  return grain.DataLoader(
    data_source=lazy.source,
    sampler=sampler,
    operations=[grain.Batch(batch_size, drop_remainder=True), _ApplyTransforms(lazy)],
    worker_count=0,
    shard_options=shard,
  )


def _pipelines(arrays, lazy, args):
  """name -> a function making a fresh iterator of host batches."""
  b = args.batch_size
  grain_batches = lambda split, w: (
    batch for batch, _ in grain_pipeline.train_batches(split, b, seed=SEED, worker_count=w)
  )
  made = {
    "memory": lambda: pipeline.train_batches(arrays, b, seed=SEED),
    "grain/memory": lambda: grain_batches(arrays, 0),
  }
  for w in args.workers:
    made[f"grain/stream, {w} workers"] = lambda w=w: grain_batches(lazy, w)
  made["grain/examples"] = lambda: iter(_per_example_loader(lazy, b))
  return made


def _median_ms(run_one, warmup, repeats):
  for _ in range(warmup):
    run_one()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run_one()
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def _time_input(make, augment, args):
  batches = pipeline.prefetch(make(), jax.device_put)
  key = jax.random.PRNGKey(SEED)
  try:
    return _median_ms(
      lambda: jax.block_until_ready(augment(key, next(batches))), args.warmup, args.steps
    )
  finally:
    batches.close()


def _train_step(args):
  """LeNet-5's jitted train step with the augmentation, and a function making a fresh
  state (the step donates it)."""
  model = lenet.LeNet5(num_classes=10)
  config = optim.default_config()
  config.name, config.learning_rate = "adam", 1e-3
  optimizer = optim.create_optimizer(config, total_steps=10 * (args.warmup + args.steps))
  step = steps.make_train_step(
    model, optimizer, classification.classification, augment=augment_lib.make_augment(AUGMENT)
  )
  init = jax.jit(train.create_init_fn(model, optimizer, jnp.zeros((2, 32, 32, 1)), SEED))
  return jax.jit(step, donate_argnums=0), lambda: init(jax.random.PRNGKey(SEED))


def _time_steps(step, state, next_batch, args):
  holder = {"state": state}

  def one():
    holder["state"], metrics = step(holder["state"], next_batch())
    jax.block_until_ready(metrics)

  return _median_ms(one, args.warmup, args.steps)


def run(args):
  arrays, lazy = _data(args)
  augment = jax.jit(augment_lib.make_augment(AUGMENT))
  step, new_state = _train_step(args)
  fixed = jax.device_put(core.take(arrays, slice(0, args.batch_size)))
  alone_ms = _time_steps(step, new_state(), lambda: fixed, args)
  rows = []
  for name, make in _pipelines(arrays, lazy, args).items():
    input_ms = _time_input(make, augment, args)
    row = {"pipeline": name, "examples_per_s": args.batch_size / input_ms * 1e3}
    if name != "grain/examples":
      batches = pipeline.prefetch(make(), jax.device_put)
      try:
        row["fed_step_ms"] = _time_steps(step, new_state(), lambda: next(batches), args)
      finally:
        batches.close()
      row["alone_step_ms"] = alone_ms
      row["fed_over_alone"] = row["fed_step_ms"] / alone_ms
    rows.append(row)
    print(_line(row), flush=True)
  return rows


def _line(row):
  fed = (
    f"  fed {row['fed_step_ms']:7.2f} ms/step, alone {row['alone_step_ms']:6.2f}"
    f"  (x{row['fed_over_alone']:.2f})"
    if "fed_step_ms" in row
    else ""
  )
  return f"{row['pipeline']:<26} {row['examples_per_s']:>9,.0f} examples/s{fed}"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_dir", default="../shared/tfds", help="prepared tfds data dir")
  parser.add_argument("--array_record_dir", default="", help="ArrayRecord copy (made if absent)")
  parser.add_argument("--examples", type=int, default=60000, help="train rows used")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=100, help="timed batches / steps")
  parser.add_argument("--warmup", type=int, default=10, help="untimed batches / steps first")
  parser.add_argument("--workers", default="0,2", help="grain worker counts, comma-separated")
  parser.add_argument("--out", default="", help="write the results as JSON here")
  args = parser.parse_args(argv)
  args.workers = [int(w) for w in args.workers.split(",") if w]
  print(
    f"{NAME}, {args.examples} examples, batch {args.batch_size}, flips + crops (padding 2); "
    f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
    f"jax {jax.__version__} on {jax.devices()[0].platform}",
    flush=True,
  )
  rows = run(args)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(rows, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
