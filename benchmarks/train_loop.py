"""The real training loop against its bare step: where a run's time goes beside the step.

For each experiment, in one process:
  - **step**: the trainer's own jitted train step (`dlx.train.mesh_train_step`: the same
    model, optimizer, mesh and donation) called on one batch already on the device, the
    clock read after `block_until_ready`; median ms.
  - **loop**: `dlx.train.train_and_evaluate` for `--steps` steps in a temporary workdir,
    with no validation or sampling inside the run and one checkpoint at the end; the rate
    is read off the run's own progress lines (`steps/s` between log points), the first
    interval (compilation) dropped; median ms a step.
  - for `gpt_shakespeare_char`, a nanoGPT-style PyTorch loop of the same model
    (`side_by_side.TorchGPT`): a random window of the characters per example, gathered
    and moved each step, the loss read only at log points, as nanoGPT's `train.py` does.

`loop / step` is what the loop adds; the PyTorch loop's rate against dlx's loop is the
end-to-end comparison. `--rounds N` runs the loops N times, dlx's and PyTorch's in turn, so
a drift of the machine's speed (here up to a third within minutes) reaches both sides:
`ratio` is the median of the rounds' ratios, `round_ratios` lists them.

  .venv/bin/python benchmarks/train_loop.py [--only gpt_shakespeare_char,lenet5_mnist,mlp_xor]
      [--steps 300] [--log_every 25] [--rounds 1] [--data_dir ../shared/tfds] [--json FILE]
"""

import argparse
import logging as py_logging
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from absl import logging  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from dlx import experiment as experiment_lib  # noqa: E402
from dlx import train  # noqa: E402
from dlx.kernels import route as kernels_route  # noqa: E402
from dlx.training import parallel  # noqa: E402

EXPERIMENTS = ("gpt_shakespeare_char", "lenet5_mnist", "mlp_xor")
_PROGRESS = re.compile(r"step (\d+)/\d+ .*?([\d.]+) steps/s")


def _config(name, steps, log_every):
  config = experiment_lib.load(name).config()
  with config.unlocked():
    config.num_train_steps = steps
    config.log_every_steps = log_every
    config.eval_every_steps = steps  # validation only at the end (after the clock)
    config.checkpoint_every_steps = steps
    config.sample_every_steps = 0
  return config


def time_bare_step(name, config, data_dir, repeats):
  """Median ms of the trainer's jitted step on one device-resident batch."""
  # The convolution route the run takes (--config.cpu_kernels), fixed when tracing.
  with kernels_route.use(train._convolution_route(config)):  # pylint: disable=protected-access
    mesh_step = train.mesh_train_step(name, config, data_dir=data_dir)
    state = mesh_step.init(jax.random.PRNGKey(config.seed))
    batch = parallel.global_batch(next(mesh_step.batches), mesh_step.mesh)
    for _ in range(3):  # compile and warm up
      state, metrics = mesh_step.train(state, batch)
    jax.block_until_ready((state, metrics))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = mesh_step.train(state, batch)
    jax.block_until_ready((state, metrics))
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


class _ProgressRates(py_logging.Handler):
  """Collects the steps/s figure of each progress line the trainer logs."""

  def __init__(self):
    super().__init__()
    self.rates = []

  def emit(self, record):
    match = _PROGRESS.search(record.getMessage())
    if match:
      self.rates.append(float(match.group(2)))


def time_loop(name, config, data_dir):
  """Median ms a step of the real loop, from its progress lines after the first."""
  handler = _ProgressRates()
  logger = logging.get_absl_logger()
  logger.addHandler(handler)
  try:
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, workdir, data_dir=data_dir, experiment=name)
  finally:
    logger.removeHandler(handler)
  rates = handler.rates[1:]  # the first interval holds the compilation
  if not rates:
    raise SystemExit(f"{name}: too few progress lines; raise --steps or lower --log_every")
  return 1e3 / statistics.median(rates), len(rates)


def time_torch_gpt_loop(config, steps, log_every):
  """ms a step of a nanoGPT-style PyTorch loop over the same characters and model."""
  import side_by_side  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from dlx.data import text  # pylint: disable=g-import-not-at-top
  from dlx.data import tokenizers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(config.seed)
  train_texts = text.split_texts()["train"]
  tokenizer = tokenizers.CharTokenizer.fit(train_texts)
  data = np.concatenate([np.asarray(tokenizer.encode(t), np.int64) for t in train_texts])
  model = config.model
  reference = side_by_side.TorchGPT(
    config.vocab_size,
    config.context_length,
    model.num_layers,
    model.num_heads,
    model.features,
  ).train()
  opt = config.optimizer
  params = list(reference.parameters())
  optimizer = torch.optim.AdamW(
    [
      {"params": [p for p in params if p.dim() >= 2], "weight_decay": opt.weight_decay},
      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ],
    lr=opt.learning_rate,
    betas=(opt.b1, opt.b2),
    eps=opt.eps,
  )
  rng = np.random.default_rng(config.seed)
  context, batch = config.context_length, config.batch_size
  data_t = torch.from_numpy(data)

  def get_batch():
    starts = torch.from_numpy(rng.integers(0, len(data) - context - 1, size=batch))
    x = torch.stack([data_t[i : i + context] for i in starts])
    y = torch.stack([data_t[i + 1 : i + 1 + context] for i in starts])
    return x, y

  rates, last = [], time.perf_counter()
  for step in range(1, steps + 1):
    for group in optimizer.param_groups:
      group["lr"] = side_by_side.warmup_cosine_lr(step - 1, opt, steps)
    x, y = get_batch()
    loss = side_by_side._next_token_loss(reference(x), y)  # pylint: disable=protected-access
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, opt.grad_clip_norm)
    optimizer.step()
    if step % log_every == 0:
      loss.item()  # nanoGPT reads the loss at log points only
      now = time.perf_counter()
      rates.append(log_every / (now - last))
      last = now
  return 1e3 / statistics.median(rates[1:])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", default=",".join(EXPERIMENTS))
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--log_every", type=int, default=25)
  parser.add_argument("--repeats", type=int, default=50, help="bare-step timings")
  parser.add_argument("--data_dir", default=None, help="tfds data (lenet5_mnist)")
  parser.add_argument("--rounds", type=int, default=1, help="loops of each side, in turn")
  parser.add_argument("--json", default=None)
  args = parser.parse_args(argv)
  if args.rounds < 1:
    parser.error(f"--rounds must be at least 1, got {args.rounds}")
  logging.set_verbosity(logging.INFO)  # the progress lines reach _ProgressRates ...
  logging.get_absl_handler().setLevel(py_logging.WARNING)  # ... but not the console
  for handler in py_logging.getLogger().handlers:  # nor a library's basicConfig handler
    handler.setLevel(py_logging.WARNING)
  rows = []
  for name in args.only.split(","):
    config = _config(name, args.steps, args.log_every)
    step_ms = time_bare_step(name, config, args.data_dir, args.repeats)
    with_torch = name == "gpt_shakespeare_char" and _common.torch is not None
    loops, torch_loops = [], []
    for _ in range(args.rounds):
      loop_ms, intervals = time_loop(name, config, args.data_dir)
      loops.append(loop_ms)
      if with_torch:
        torch_loops.append(time_torch_gpt_loop(config, args.steps, args.log_every))
    loop_ms = statistics.median(loops)
    row = {
      "experiment": name,
      "batch_size": config.batch_size,
      "step_ms": round(step_ms, 3),
      "loop_ms": round(loop_ms, 3),
      "loop_over_step": round(loop_ms / step_ms, 3),
      "intervals": intervals,
      "rounds": args.rounds,
    }
    if with_torch:
      round_ratios = [t / d for t, d in zip(torch_loops, loops)]  # > 1: dlx's loop is faster
      row["torch_loop_ms"] = round(statistics.median(torch_loops), 3)
      row["round_ratios"] = [round(r, 3) for r in round_ratios]
      row["ratio"] = round(statistics.median(round_ratios), 3)
    rows.append(row)
    print(row, flush=True)
  print("| experiment | batch | step ms | loop ms | loop/step | PyTorch loop ms | ratio |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['experiment']} | {r['batch_size']} | {r['step_ms']} | {r['loop_ms']} | "
      f"{r['loop_over_step']} | {r.get('torch_loop_ms', '-')} | {r.get('ratio', '-')} |"
    )
  if args.json:
    _common.write_json(args.json, {"environment": _common.environment(), "rows": rows})


if __name__ == "__main__":
  main()
