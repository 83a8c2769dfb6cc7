"""Training throughput (tokens/s) and model FLOPs utilisation (MFU) of GPT-small in dlx.

GPT-small is GPT-2's 124M model as nanoGPT trains it: 12 layers, 12 heads, 768 dims,
context 1024, vocabulary 50304 (50257 padded to a multiple of 64), no dropout, weight-tied
head (`dlx.models.gpt.GPT`, which also has a 50304-entry output bias). A step is dlx's real
generic train step (`dlx.training.steps.make_train_step`, jitted, state donated): forward,
next-token cross-entropy, backward, AdamW (lr 6e-4, betas 0.9/0.95, weight decay 0.1,
clipping at 1: nanoGPT's GPT-2 recipe) on one fixed batch of random tokens. The first
(compiling) call and `--warmup` steps are not timed; the median of `--steps` is reported.

bf16 (`--dtype bfloat16`, the default): when `dlx.models.gpt.GPT` has a `dtype` field the
model is built with dtype=bfloat16 (its own mixed-precision path). Without one, the
parameters stay float32 in the train state (the optimizer updates float32 master weights)
and are cast to bfloat16 where the model reads them (`flax.linen.map_variables`), so every
matmul runs in bfloat16; the logits are cast back to float32 for the loss. The output says
which path ran; `--dtype float32` times float32.

MFU (PaLM, Chowdhery et al. 2022, appendix B; nanoGPT's `estimate_mfu`):

  flops per token   = 6 N + 12 L H Q T
  achieved FLOP/s   = flops per token * tokens per second
  MFU               = achieved FLOP/s / peak bf16 FLOP/s of the GPU

where N is the parameter count without the position embeddings (nanoGPT's
`get_num_params()`; the tied token embedding counts, as the output matmul uses it), L
layers, H heads, Q = features / H the head size and T the sequence length. 6 N is the
forward (2 N) and backward (4 N) matmul FLOPs per token; 12 L H Q T the attention
score and value matmuls (QK^T and AV: 2 x 2 T H Q per layer forward, times 3 with
the backward). The peaks are the dense (no sparsity) bf16 tensor-core numbers of
NVIDIA's data sheets (PEAK_BF16_TFLOPS); `--peak_tflops` overrides them.

  python benchmarks/gpt_small.py [--batch_size N] [--steps 30] [--peak_tflops X] [--tiny]

`--tiny` (2 layers, 64 dims, context 64, vocabulary 512, batch 2) runs in seconds on a CPU
for the tests; its numbers mean nothing.
"""

import argparse
import dataclasses
import statistics
import sys

import _common
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx.models import gpt
from dlx.tasks import language_model as lm
from dlx.training import optim

SEED = 0
GPT_SMALL = {"vocab": 50304, "context": 1024, "layers": 12, "heads": 12, "features": 768}
TINY = {"vocab": 512, "context": 64, "layers": 2, "heads": 2, "features": 64}
# Dense bf16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets (the sparsity figures
# are twice these). Matched in order against jax's device_kind, case-insensitively.
PEAK_BF16_TFLOPS = (
  ("H200 NVL", 835.0),
  ("H200", 989.4),
  ("H100 NVL", 835.0),
  ("H100 PCIE", 756.0),
  ("H100", 989.4),  # SXM (device_kind "NVIDIA H100 80GB HBM3")
  ("A100", 312.0),  # SXM and PCIe
)


def peak_tflops(device_kind):
  """The table's bf16 peak for this device kind, or None when it is not listed."""
  kind = device_kind.upper()
  for name, peak in PEAK_BF16_TFLOPS:
    if all(word in kind for word in name.split()):
      return peak
  return None


def flops_per_token(non_embedding_params, layers, heads, head_dim, seq_len):
  """6 N + 12 L H Q T: training FLOPs per token (PaLM appendix B, nanoGPT)."""
  return 6 * non_embedding_params + 12 * layers * heads * head_dim * seq_len


def _cast(dtype):
  def cast(tree):
    return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )

  return cast


def build_model(cfg, dtype):
  """(model, how bf16 is applied). See the module docstring for the two bf16 paths."""
  kwargs = dict(
    vocab_size=cfg["vocab"],
    max_length=cfg["context"],
    num_layers=cfg["layers"],
    num_heads=cfg["heads"],
    features=cfg["features"],
    dropout_rate=0.0,
  )
  if dtype == "float32":
    return gpt.GPT(**kwargs), "float32"
  fields = {f.name: f for f in dataclasses.fields(gpt.GPT)}
  if "dtype" in fields:
    # A config-style string field takes the name, a Flax-style one the jnp type.
    value = "bfloat16" if isinstance(fields["dtype"].default, str) else jnp.bfloat16
    return gpt.GPT(**kwargs, dtype=value), "bfloat16 (GPT.dtype)"
  # No dtype field yet: float32 parameters, read as bfloat16 by every layer.
  cast_model = nn.map_variables(
    gpt.GPT,
    "params",
    trans_in_fn=_cast(jnp.bfloat16),
    trans_out_fn=_cast(jnp.float32),  # what init stores: float32 master weights
    init=True,
  )
  return cast_model(**kwargs), "bfloat16 (float32 params cast to bfloat16 in the step)"


def float32_logits_loss(logits, batch):
  """dlx's next-token loss on float32 logits (the softmax in bf16 would lose precision)."""
  return lm.language_model_loss(logits.astype(jnp.float32), batch)


def adamw(total_steps):
  config = optim.default_config()
  config.name = "adamw"
  config.learning_rate = 6e-4
  config.b2 = 0.95
  config.weight_decay = 0.1
  config.grad_clip_norm = 1.0
  return optim.create_optimizer(config, total_steps=total_steps)


def _default_batch_size(tiny):
  if tiny:
    return 2
  stats = jax.devices()[0].memory_stats() or {}
  return 16 if stats.get("bytes_limit", 0) >= 40 * 2**30 else 8


def _out_of_memory(error):
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def run(args):
  cfg = dict(TINY if args.tiny else GPT_SMALL)
  if args.seq_len:
    cfg["context"] = args.seq_len
  batch_size = args.batch_size or _default_batch_size(args.tiny)
  model, precision = build_model(cfg, args.dtype)
  rng = np.random.default_rng(SEED)
  while True:
    tokens = rng.integers(0, cfg["vocab"], size=(batch_size, cfg["context"] + 1), dtype=np.int32)
    batch = {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:])}
    try:
      result = _common.time_dlx_step(
        model,
        adamw(args.warmup + args.steps + 2),
        float32_logits_loss,
        batch,
        warmup=args.warmup,
        repeats=args.steps,
        max_seconds=args.max_seconds,
        seed=SEED,
      )
      break
    except Exception as e:  # pylint: disable=broad-except
      if not _out_of_memory(e) or batch_size == 1 or args.batch_size:
        raise
      print(f"batch {batch_size} does not fit; trying {batch_size // 2}", flush=True)
      batch_size //= 2

  median_ms = statistics.median(result["times_ms"])
  tokens_per_s = batch_size * cfg["context"] / (median_ms / 1e3)
  non_embedding = result["num_params"] - cfg["context"] * cfg["features"]
  head_dim = cfg["features"] // cfg["heads"]
  per_token = flops_per_token(non_embedding, cfg["layers"], cfg["heads"], head_dim, cfg["context"])
  achieved = per_token * tokens_per_s
  kind = jax.devices()[0].device_kind
  peak = args.peak_tflops or peak_tflops(kind)
  return {
    "benchmark": "gpt_small_tiny" if args.tiny else "gpt_small",
    "model": cfg,
    "params": result["num_params"],
    "non_embedding_params": non_embedding,
    "batch": batch_size,
    "tokens_per_step": batch_size * cfg["context"],
    "precision": precision,
    "step_ms": median_ms,
    "min_step_ms": min(result["times_ms"]),
    "steps_timed": len(result["times_ms"]),
    "first_call_ms": result["first_call_ms"],
    "final_loss": result["final_loss"],
    "tokens_per_s": tokens_per_s,
    "flops_per_token": per_token,
    "achieved_tflops": achieved / 1e12,
    "device": result["device"],
    "device_kind": kind,
    "peak_bf16_tflops": peak,
    "peak_source": "--peak_tflops" if args.peak_tflops else ("table" if peak else None),
    "mfu": None if not peak else achieved / (peak * 1e12),
    "environment": _common.environment(),
  }


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--batch_size", type=int, default=0, help="0: 16 (8 when jax may use under 40 GiB)"
  )
  parser.add_argument("--seq_len", type=int, default=0, help="0: 1024 (64 with --tiny)")
  parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30)")
  parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5)")
  parser.add_argument("--max_seconds", type=float, default=120.0, help="cap on timing")
  parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
  parser.add_argument(
    "--peak_tflops", type=float, default=0.0, help="peak bf16 TFLOP/s (0: the table's)"
  )
  parser.add_argument("--tiny", action="store_true", help="a tiny GPT (CPU dry runs)")
  parser.add_argument("--json", default=None, help="write the result to this JSON file")
  args = parser.parse_args(argv)
  if args.steps is None:
    args.steps = 2 if args.tiny else 30
  if args.warmup is None:
    args.warmup = 0 if args.tiny else 5
  if args.steps < 1 or args.warmup < 0 or args.batch_size < 0 or args.seq_len < 0:
    parser.error("--steps must be >= 1; --warmup, --batch_size, --seq_len >= 0")
  return args


def main(argv=None):
  args = _parse_args(argv)
  if args.tiny:
    _common.fast_cpu_compile()
  row = run(args)
  env = row["environment"]
  print(
    f"dlx GPT, jax {env['jax']} (flax {env['flax']}, optax {env['optax']}) on "
    f"{env['jax_backend']} ({row['device_kind']}); generic jitted step, state donated"
  )
  print(
    f"{row['model']['layers']} layers, {row['model']['heads']} heads, "
    f"{row['model']['features']} dims, context {row['model']['context']}, vocab "
    f"{row['model']['vocab']}: {row['params']:,} parameters "
    f"({row['non_embedding_params']:,} without position embeddings)"
  )
  print(f"precision: {row['precision']}")
  if "cast" in row["precision"]:
    print(
      "note: dlx.models.gpt.GPT has no dtype field yet, so the float32 parameters are cast "
      "to bfloat16 inside the step; GPT's own bf16 path needs that field"
    )
  elif row["precision"] == "float32":
    print("note: float32 compute; the MFU is still against the bf16 peak")
  print(
    f"batch {row['batch']} x {row['model']['context']} = {row['tokens_per_step']:,} tokens "
    f"per step; median of {row['steps_timed']} steps (first call {row['first_call_ms']:.0f} "
    f"ms incl. compile)"
  )
  print()
  print("| model | step ms | tokens/s | TFLOP/s | peak TFLOP/s | MFU |")
  print("|---|---|---|---|---|---|")
  mfu = "n/a (unknown GPU: pass --peak_tflops)" if row["mfu"] is None else f"{row['mfu']:.1%}"
  peak = "-" if row["peak_bf16_tflops"] is None else f"{row['peak_bf16_tflops']:g}"
  print(
    f"| {row['benchmark']} | {row['step_ms']:.1f} | {row['tokens_per_s']:,.0f} | "
    f"{row['achieved_tflops']:.2f} | {peak} | {mfu} |"
  )
  print(
    f"MFU = (6 N + 12 L H Q T) x tokens/s / peak = {row['flops_per_token']:,} FLOPs/token "
    f"x {row['tokens_per_s']:,.0f} tokens/s / {peak} TFLOP/s"
  )
  if args.json:
    _common.write_json(args.json, row)


if __name__ == "__main__":
  sys.exit(main())
