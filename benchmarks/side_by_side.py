"""Times one full training step of five architectures in dlx and in PyTorch, side by side.

Each benchmark times forward + backward + optimizer update on one fixed synthetic batch,
in one process, for the same architecture (parameter counts are asserted equal):

  lenet5             LeNet-5 on (128, 32, 32, 1), 10 classes, Adam 1e-3.
  mlp                MLP 784-256-256-10 (ReLU) on (128, 784), Adam 1e-3.
  resnet18           ResNet-18, CIFAR stem (3x3/1 conv, no max pool), width 64, on
                     (128, 32, 32, 3), 10 classes; SGD momentum 0.9, lr 0.1, weight decay
                     5e-4 (experiments/vision/resnet18_cifar10.py's rule).
  transformer_block  one pre-norm encoder block (d 256, 4 heads, GELU MLP 1024) on
                     (32, 128, 256), mean squared error to a random target, Adam 1e-3.
  gpt_nanogpt_cpu    GPT in nanoGPT's CPU-example configuration: 4 layers, 4 heads, 128
                     dims, context 64, batch 12, vocab 65 (random characters), dropout 0,
                     weight-tied head; AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1,
                     100-step warmup then cosine to 1e-4, gradient clipping at 1 (the dlx
                     experiment's optimizer config, experiments/sequence/gpt_shakespeare_char.py).

dlx runs its real generic step (`dlx.training.steps.make_train_step`, jitted, state donated,
`jax.block_until_ready` before the clock is read) on jax's default device. The reference
is PyTorch eager, written here, on CUDA when torch sees a GPU (clock read after
`torch.cuda.synchronize()`) and on the CPU otherwise, with torch.set_num_threads(available
cores). The first (compiling) call and `--warmup` steps are not timed; the table shows
the median of `--repeats` steps. ratio = reference ms / dlx ms: > 1 means dlx is faster.

  .venv/bin/python benchmarks/side_by_side.py [--only NAME,...] [--json FILE]
      [--repeats N] [--warmup N] [--tiny]

`--tiny` shrinks the batches and repeats so every benchmark runs in about a minute on a
CPU (for the tests; its numbers mean nothing). On a GPU, `--torch_tf32` (default on)
lets PyTorch use TF32 for float32 matmuls and convolutions as XLA does by default, and
cudnn.benchmark is on (XLA autotunes its convolutions too).

dlx's convolutions, dense layers, attention products and GELU take the trainer's default
route (`--cpu_kernels`, as `--config.cpu_kernels`: auto = dlx's oneDNN extension on one CPU
device, docs/cpu_kernels.md); `ratio` is for that route. Where it is oneDNN, every benchmark
is timed on XLA's route too (`dlx_xla_ms`, `ratio_xla`).
"""

import argparse
import math
import os
import sys

import _common
import jax.numpy as jnp
import numpy as np
import train_step

from dlx.kernels import route as kernels_route
from dlx.models import gpt
from dlx.models import resnet
from dlx.nn import transformer
from dlx.tasks import classification
from dlx.tasks import language_model as lm
from dlx.training import optim

torch = _common.torch
if torch is not None:
  from torch import nn as torch_nn  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as torch_f  # pylint: disable=g-import-not-at-top

BENCHMARKS = ("lenet5", "mlp", "resnet18", "transformer_block", "gpt_nanogpt_cpu")
CONTRACT_KEYS = ("benchmark", "dlx_ms", "reference", "reference_ms", "ratio")
SEED = 0
NUM_CLASSES = 10
RESNET18_CIFAR_PARAMS = 11_173_962  # torchvision's 11,689,512 with a 3x3 stem, 10 classes
# (batch, tiny batch) per benchmark.
BATCH = {
  "lenet5": (128, 8),
  "mlp": (128, 8),
  "resnet18": (128, 2),
  "transformer_block": (32, 2),
  "gpt_nanogpt_cpu": (12, 2),
}
BLOCK = {"features": 256, "heads": 4, "hidden": 1024, "length": 128}
NANOGPT = {"vocab": 65, "context": 64, "layers": 4, "heads": 4, "features": 128}


def _check(name, dlx_result, ref_result):
  if ref_result is not None and ref_result["num_params"] != dlx_result["num_params"]:
    raise AssertionError(
      f"{name}: the reference has {ref_result['num_params']:,} parameters, "
      f"dlx {dlx_result['num_params']:,}"
    )


def _timing(args):
  return {
    "warmup": args.warmup,
    "repeats": args.repeats,
    "group": args.group,
    "max_seconds": args.max_seconds,
  }


# --------------------------------------------------------------------------- #
# lenet5 and mlp: the models and steps of train_step.py
# --------------------------------------------------------------------------- #


def bench_small(name, batch_size, args, device):
  """LeNet-5 or the MLP, exactly as benchmarks/train_step.py times them."""
  key = "lenet" if name == "lenet5" else "mlp"
  inputs, labels = train_step.synthetic_batch(key, batch_size)
  dlx_result = train_step.bench_dlx(key, inputs, labels, args, max_seconds=args.max_seconds)
  ref = None
  if device is not None:  # None: dlx alone (its other convolution route)
    ref = train_step.bench_torch(key, inputs, labels, args, device, args.max_seconds)
  _check(name, dlx_result, ref)
  if name == "lenet5":
    assert dlx_result["num_params"] == train_step.LENET_PARAMS, dlx_result["num_params"]
  return dlx_result, ref, {"input_shape": list(inputs.shape), "optimizer": "adam lr 1e-3"}


# --------------------------------------------------------------------------- #
# resnet18
# --------------------------------------------------------------------------- #


def _resnet_optimizer_config():
  config = optim.default_config()
  config.name = "momentum"
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.weight_decay = 5e-4
  return config


if torch is not None:

  class TorchBasicBlock(torch_nn.Module):
    """relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut), shortcut a 1x1 conv + BN
    projection when the stride or the width changes (as dlx.nn.blocks.ResidualBlock)."""

    def __init__(self, in_width, width, stride):
      super().__init__()
      self.conv1 = torch_nn.Conv2d(in_width, width, 3, stride, 1, bias=False)
      self.bn1 = torch_nn.BatchNorm2d(width)
      self.conv2 = torch_nn.Conv2d(width, width, 3, 1, 1, bias=False)
      self.bn2 = torch_nn.BatchNorm2d(width)
      self.projection = None
      if stride != 1 or in_width != width:
        self.projection = torch_nn.Sequential(
          torch_nn.Conv2d(in_width, width, 1, stride, bias=False), torch_nn.BatchNorm2d(width)
        )

    def forward(self, x):
      y = torch_f.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      shortcut = x if self.projection is None else self.projection(x)
      return torch_f.relu(y + shortcut)

  class TorchResNet18Cifar(torch_nn.Module):
    """ResNet-18 with the CIFAR stem (3x3/1 conv + BN + ReLU, no max pool), stages of two
    basic blocks at widths w, 2w, 4w, 8w (stride 2 entering stages 2-4), global average
    pool, linear classifier: dlx.models.resnet.resnet18(stem='cifar') in NCHW."""

    def __init__(self, num_classes=NUM_CLASSES, width=64):
      super().__init__()
      self.stem = torch_nn.Sequential(
        torch_nn.Conv2d(3, width, 3, 1, 1, bias=False),
        torch_nn.BatchNorm2d(width),
        torch_nn.ReLU(inplace=True),
      )
      blocks, in_width = [], width
      for stage in range(4):
        for i in range(2):
          out_width = width * 2**stage
          blocks.append(TorchBasicBlock(in_width, out_width, 2 if stage > 0 and i == 0 else 1))
          in_width = out_width
      self.blocks = torch_nn.Sequential(*blocks)
      self.classifier = torch_nn.Linear(in_width, num_classes)

    def forward(self, x):
      x = self.blocks(self.stem(x))
      return self.classifier(torch.mean(x, dim=(2, 3)))


def bench_resnet18(batch_size, args, device):
  """ResNet-18 (CIFAR stem, width 64), cross-entropy, SGD momentum + L2 weight decay."""
  rng = np.random.default_rng(SEED)
  inputs = rng.standard_normal((batch_size, 32, 32, 3), dtype=np.float32)
  labels = rng.integers(0, NUM_CLASSES, size=(batch_size,), dtype=np.int32)
  config = _resnet_optimizer_config()
  total = args.warmup + args.repeats + args.group + 2
  dlx_result = _common.time_dlx_step(
    resnet.resnet18(NUM_CLASSES, stem="cifar", width=64),
    optim.create_optimizer(config, total_steps=total),
    classification.classification,
    {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(labels)},
    seed=SEED,
    **_timing(args),
  )
  assert dlx_result["num_params"] == RESNET18_CIFAR_PARAMS, dlx_result["num_params"]
  ref = None
  if device is not None:  # None: dlx alone (its other convolution route)
    torch.manual_seed(SEED)
    model = TorchResNet18Cifar().to(device).train()
    optimizer = torch.optim.SGD(
      model.parameters(),
      lr=config.learning_rate,
      momentum=config.momentum,
      weight_decay=config.weight_decay,
    )
    ref = _common.time_torch_step(
      model,
      optimizer,
      torch_f.cross_entropy,
      torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))).to(device),
      torch.from_numpy(labels.astype(np.int64)).to(device),
      device,
      **_timing(args),
    )
  _check("resnet18", dlx_result, ref)
  extra = {
    "input_shape": list(inputs.shape),
    "optimizer": "sgd momentum 0.9 lr 0.1, weight decay 5e-4 (L2 on the gradient)",
  }
  return dlx_result, ref, extra


# --------------------------------------------------------------------------- #
# transformer_block
# --------------------------------------------------------------------------- #


def _squared_error(outputs, batch):
  """Per-element squared error; the step averages it (mean squared error)."""
  return {"loss": jnp.square(outputs - batch["targets"])}


def _gelu_tanh(x):
  # Flax's nn.gelu default (the tanh approximation), so both sides compute the same function.
  return torch_f.gelu(x, approximate="tanh")


def bench_transformer_block(batch_size, args, device):
  """One pre-norm encoder block: x + MHA(LN(x)), then x + MLP(LN(x)), GELU, no dropout."""
  d, heads, hidden, length = BLOCK["features"], BLOCK["heads"], BLOCK["hidden"], BLOCK["length"]
  rng = np.random.default_rng(SEED)
  inputs = rng.standard_normal((batch_size, length, d), dtype=np.float32)
  targets = rng.standard_normal((batch_size, length, d), dtype=np.float32)
  total = args.warmup + args.repeats + args.group + 2
  dlx_result = _common.time_dlx_step(
    transformer.EncoderLayer(heads, d, hidden, dropout_rate=0.0, norm="pre", activation="gelu"),
    train_step.adam(total),
    _squared_error,
    {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets)},
    seed=SEED,
    **_timing(args),
  )
  ref = None
  if device is not None:  # None: dlx alone (its other convolution route)
    torch.manual_seed(SEED)
    model = torch_nn.TransformerEncoderLayer(
      d,
      heads,
      hidden,
      dropout=0.0,
      activation=_gelu_tanh,
      layer_norm_eps=transformer.LAYER_NORM_EPSILON,
      batch_first=True,
      norm_first=True,
    )
    model = model.to(device).train()
    ref = _common.time_torch_step(
      model,
      torch.optim.Adam(model.parameters(), lr=train_step.LEARNING_RATE),
      torch_f.mse_loss,
      torch.from_numpy(inputs).to(device),
      torch.from_numpy(targets).to(device),
      device,
      **_timing(args),
    )
  _check("transformer_block", dlx_result, ref)
  extra = {
    "input_shape": list(inputs.shape),
    "block": "pre-norm, d 256, 4 heads, GELU (tanh) MLP 1024, no dropout, no mask",
    "optimizer": "adam lr 1e-3",
  }
  return dlx_result, ref, extra


# --------------------------------------------------------------------------- #
# gpt_nanogpt_cpu
# --------------------------------------------------------------------------- #


def _nanogpt_optimizer_config():
  """The optimizer of experiments/sequence/gpt_shakespeare_char.py (nanoGPT's CPU example)."""
  return lm.language_model_config().optimizer


def warmup_cosine_lr(step, config, total_steps):
  """The lr dlx's schedule gives at `step`: linear warmup from 0, then cosine decay to
  lr * min_learning_rate_factor over the remaining steps (optax's formula)."""
  lr, warmup = config.learning_rate, config.warmup_steps
  if step < warmup:
    return lr * step / warmup
  length = total_steps - warmup
  progress = min(step - warmup, length) / length
  floor = config.min_learning_rate_factor
  return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


if torch is not None:

  class TorchCausalSelfAttention(torch_nn.Module):
    """Fused q/k/v projection, causal scaled dot-product attention, output projection."""

    def __init__(self, features, heads):
      super().__init__()
      self.heads = heads
      self.qkv = torch_nn.Linear(features, 3 * features)
      self.out = torch_nn.Linear(features, features)

    def forward(self, x):
      batch, length, features = x.shape
      q, k, v = self.qkv(x).split(features, dim=2)
      shape = (batch, length, self.heads, features // self.heads)
      q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
      y = torch_f.scaled_dot_product_attention(q, k, v, is_causal=True)
      return self.out(y.transpose(1, 2).reshape(batch, length, features))

  class TorchGPTBlock(torch_nn.Module):
    """Pre-norm GPT-2 block: x + attn(LN(x)), then x + MLP(LN(x)) with a 4x GELU MLP."""

    def __init__(self, features, heads):
      super().__init__()
      self.attention_norm = torch_nn.LayerNorm(features)
      self.attention = TorchCausalSelfAttention(features, heads)
      self.mlp_norm = torch_nn.LayerNorm(features)
      self.hidden = torch_nn.Linear(features, 4 * features)
      self.output = torch_nn.Linear(4 * features, features)

    def forward(self, x):
      x = x + self.attention(self.attention_norm(x))
      return x + self.output(_gelu_tanh(self.hidden(self.mlp_norm(x))))

  class TorchGPT(torch_nn.Module):
    """A nanoGPT-style GPT: token + learned position embeddings, pre-norm blocks, final
    LayerNorm, logits from the token embedding matrix (weight tying). Biases in every
    Linear and LayerNorm (nanoGPT's bias=True, GPT-2's) and, as dlx's GPT, a learned
    output bias (nanoGPT's head has none: 65 extra parameters here)."""

    def __init__(self, vocab, context, layers, heads, features):
      super().__init__()
      self.token_embedding = torch_nn.Embedding(vocab, features)
      self.position_embedding = torch_nn.Embedding(context, features)
      self.blocks = torch_nn.ModuleList(TorchGPTBlock(features, heads) for _ in range(layers))
      self.final_norm = torch_nn.LayerNorm(features)
      self.output_bias = torch_nn.Parameter(torch.zeros(vocab))
      for module in self.modules():
        if isinstance(module, (torch_nn.Linear, torch_nn.Embedding)):
          torch_nn.init.normal_(module.weight, std=0.02)
          if getattr(module, "bias", None) is not None:
            torch_nn.init.zeros_(module.bias)

    def forward(self, tokens):
      positions = torch.arange(tokens.shape[1], device=tokens.device)
      x = self.token_embedding(tokens) + self.position_embedding(positions)
      for block in self.blocks:
        x = block(x)
      return torch_f.linear(self.final_norm(x), self.token_embedding.weight, self.output_bias)


def _next_token_loss(logits, targets):
  return torch_f.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def bench_gpt_nanogpt_cpu(batch_size, args, device):
  """dlx's GPT vs a nanoGPT-style PyTorch GPT, next-character loss, AdamW + clipping."""
  cfg = NANOGPT
  rng = np.random.default_rng(SEED)
  chars = rng.integers(0, cfg["vocab"], size=(batch_size, cfg["context"] + 1), dtype=np.int32)
  inputs, targets = chars[:, :-1], chars[:, 1:]
  config = _nanogpt_optimizer_config()
  total = lm.language_model_config().num_train_steps  # 2000: the schedule's length
  model = gpt.GPT(
    vocab_size=cfg["vocab"],
    max_length=cfg["context"],
    num_layers=cfg["layers"],
    num_heads=cfg["heads"],
    features=cfg["features"],
    dropout_rate=0.0,
  )
  dlx_result = _common.time_dlx_step(
    model,
    optim.create_optimizer(config, total_steps=total),
    lm.language_model_loss,
    {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets)},
    seed=SEED,
    **_timing(args),
  )
  ref = None
  if device is not None:  # None: dlx alone (its other convolution route)
    torch.manual_seed(SEED)
    reference = TorchGPT(cfg["vocab"], cfg["context"], cfg["layers"], cfg["heads"], cfg["features"])
    reference = reference.to(device).train()
    # nanoGPT's grouping: weight decay on matrices and embeddings only.
    params = list(reference.parameters())
    groups = [
      {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
      groups,
      lr=config.learning_rate,
      betas=(config.b1, config.b2),
      eps=config.eps,
      fused=device.type == "cuda",  # as nanoGPT: fused AdamW on CUDA
    )

    def set_lr(step):
      for group in optimizer.param_groups:
        group["lr"] = warmup_cosine_lr(step, config, total)

    ref = _common.time_torch_step(
      reference,
      optimizer,
      _next_token_loss,
      torch.from_numpy(inputs.astype(np.int64)).to(device),
      torch.from_numpy(targets.astype(np.int64)).to(device),
      device,
      clip_norm=config.grad_clip_norm,
      before_step=set_lr,
      **_timing(args),
    )
  _check("gpt_nanogpt_cpu", dlx_result, ref)
  extra = {
    "input_shape": list(inputs.shape),
    "model": "4 layers, 4 heads, 128 dims, context 64, vocab 65, dropout 0, tied head",
    "optimizer": (
      f"adamw lr {config.learning_rate} betas ({config.b1}, {config.b2}) weight decay "
      f"{config.weight_decay}, warmup {config.warmup_steps} + cosine, clip "
      f"{config.grad_clip_norm} (dlx decays every parameter, the reference matrices and "
      "embeddings only, as nanoGPT)"
    ),
  }
  return dlx_result, ref, extra


RUNNERS = {
  "lenet5": lambda b, a, d: bench_small("lenet5", b, a, d),
  "mlp": lambda b, a, d: bench_small("mlp", b, a, d),
  "resnet18": bench_resnet18,
  "transformer_block": bench_transformer_block,
  "gpt_nanogpt_cpu": bench_gpt_nanogpt_cpu,
}


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
  parser.add_argument("--json", default=None, help="write the rows to this JSON file")
  parser.add_argument("--repeats", type=int, default=None, help="timed steps (default 50)")
  parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5)")
  parser.add_argument("--group", type=int, default=1, help="steps per clock reading")
  parser.add_argument(
    "--max_seconds",
    type=float,
    default=120.0,
    help="stop timing a framework after this long (at least 3 steps); 0: no limit",
  )
  parser.add_argument("--batch_size", type=int, default=None, help="override every batch size")
  parser.add_argument("--tiny", action="store_true", help="tiny batches and repeats (tests)")
  parser.add_argument("--threads", type=int, default=_common.available_cores())
  parser.add_argument(
    "--cpu_kernels",
    choices=kernels_route.SETTINGS,
    default="auto",
    help="dlx's kernel route, as --config.cpu_kernels (auto: oneDNN on one CPU device)",
  )
  parser.add_argument("--torch_device", choices=("auto", "cpu", "cuda"), default="auto")
  parser.add_argument(
    "--torch_tf32",
    type=int,
    choices=(0, 1),
    default=1,
    help="on CUDA, let torch use TF32 for float32 matmuls/convs (XLA's default precision)",
  )
  args = parser.parse_args(argv)
  args.only = [n.strip() for n in args.only.split(",") if n.strip()]
  unknown = sorted(set(args.only) - set(BENCHMARKS))
  if unknown or not args.only:
    parser.error(f"--only: unknown {unknown}; choose from {list(BENCHMARKS)}")
  if args.repeats is None:
    args.repeats = 2 if args.tiny else 50
  if args.warmup is None:
    args.warmup = 0 if args.tiny else 5
  if args.max_seconds <= 0:
    args.max_seconds = None
  for flag in ("repeats", "group", "threads"):
    if getattr(args, flag) < 1:
      parser.error(f"--{flag} must be >= 1")
  if args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1):
    parser.error("--warmup must be >= 0 and --batch_size >= 1")
  return args


def _reference_name(device, threads):
  if torch is None:
    return "none (torch not importable)"
  where = "cuda" if device.type == "cuda" else f"cpu, threads={threads}"
  return f"pytorch {torch.__version__} eager ({where})"


def markdown_table(rows):
  lines = [
    "| benchmark | dlx route | dlx ms | dlx XLA-route ms | reference | reference ms | ratio |",
    "|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    ref_ms = "-" if row["reference_ms"] is None else f"{row['reference_ms']:.3f}"
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
    xla_ms = "-" if row.get("dlx_xla_ms") is None else f"{row['dlx_xla_ms']:.3f}"
    lines.append(
      f"| {row['benchmark']} | {row['cpu_kernels']} | {row['dlx_ms']:.3f} | {xla_ms} | "
      f"{row['reference']} | {ref_ms} | {ratio} |"
    )
  return "\n".join(lines)


def main(argv=None):
  args = _parse_args(argv)
  # With PyTorch on the same GPU, keep JAX from reserving 75% of its memory up front (the
  # variable is read when the backend starts, at the first jax call below).
  os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")
  if args.tiny:
    _common.fast_cpu_compile()
  device = None
  if torch is None:
    print(f"note: torch is not importable ({_common.TORCH_ERROR}); timing dlx only.")
  else:
    torch.set_num_threads(args.threads)
    device = _common.torch_device(args.torch_device)
    if device.type == "cuda":
      torch.backends.cudnn.benchmark = True
      torch.backends.cuda.matmul.allow_tf32 = bool(args.torch_tf32)
      torch.backends.cudnn.allow_tf32 = bool(args.torch_tf32)
  env = _common.environment()
  reference = _reference_name(device, env["torch_threads"])
  print(
    f"machine: {env['processor']}, {env['available_cores']} core(s) available; python "
    f"{env['python']}"
  )
  print(
    f"dlx: jax {env['jax']} (flax {env['flax']}, optax {env['optax']}) on "
    f"{env['jax_backend']} ({env['jax_device_kind']}), generic jitted step, state donated"
  )
  if torch is not None:
    extra = ""
    if device.type == "cuda":
      extra = f" {env['torch_cuda']}, cudnn.benchmark, TF32 {'on' if args.torch_tf32 else 'off'}"
    print(
      f"reference: torch {torch.__version__} eager on {device}{extra}; "
      f"torch.set_num_threads({env['torch_threads']}) of {env['available_cores']} cores"
    )
  print(
    f"{'tiny sizes; ' if args.tiny else ''}{args.repeats} timed steps (at most "
    f"{args.max_seconds} s each side) after {args.warmup} warm-up steps and the compiling "
    "call; medians; ratio = reference ms / dlx ms (> 1: dlx is faster)"
  )
  sys.stdout.flush()

  route = kernels_route.resolve(args.cpu_kernels, env["jax_backend"], 1)
  print(f"dlx's kernels: {route} (--cpu_kernels={args.cpu_kernels})", flush=True)
  rows = []
  for name in args.only:
    batch_size = args.batch_size or BATCH[name][1 if args.tiny else 0]
    with kernels_route.use(route):
      dlx_result, ref, extra = RUNNERS[name](batch_size, args, device)
    dlx_summary = _common.summary(dlx_result)
    xla_ms = None
    if route != "xla":
      with kernels_route.use("xla"):
        xla_ms = _common.summary(RUNNERS[name](batch_size, args, None)[0])["median_ms"]
    row = {
      "benchmark": name,
      "cpu_kernels": route,
      "dlx_ms": dlx_summary["median_ms"],
      "dlx_xla_ms": xla_ms,
      "reference": reference,
      "reference_ms": None,
      "ratio": None,
      "batch": batch_size,
      **extra,
      "dlx_params": dlx_result["num_params"],
      "dlx_first_call_ms": dlx_result["first_call_ms"],
      "dlx_steps_timed": len(dlx_result["times_ms"]),
      "dlx_min_ms": dlx_summary["min_ms"],
      "dlx_device": dlx_result["device"],
      "dlx_final_loss": dlx_result["final_loss"],
    }
    if ref is not None:
      ref_summary = _common.summary(ref)
      row.update(
        reference_ms=ref_summary["median_ms"],
        ratio=ref_summary["median_ms"] / dlx_summary["median_ms"],
        ratio_xla=None if xla_ms is None else ref_summary["median_ms"] / xla_ms,
        reference_params=ref["num_params"],
        reference_first_call_ms=ref["first_call_ms"],
        reference_steps_timed=len(ref["times_ms"]),
        reference_min_ms=ref_summary["min_ms"],
        reference_device=ref["device"],
        reference_final_loss=ref["final_loss"],
      )
    row["environment"] = env
    rows.append(row)
    print(
      f"{name}: dlx {row['dlx_ms']:.3f} ms, reference "
      + ("-" if ref is None else f"{row['reference_ms']:.3f} ms")
      + f" ({row['dlx_params']:,} parameters, batch {batch_size})",
      flush=True,
    )

  print()
  print(markdown_table(rows))
  if args.json:
    _common.write_json(args.json, rows)


if __name__ == "__main__":
  sys.exit(main())
