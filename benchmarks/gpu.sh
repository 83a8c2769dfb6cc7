#!/usr/bin/env bash
# GPU benchmarks of dlx (issue 18), in under 8 minutes on one CUDA GPU:
#
#   (a) GPT-small (124M: 12 layers, 12 heads, 768 dims, context 1024, vocabulary 50304) in
#       bf16: training steps of dlx's generic step, tokens/s and model FLOPs utilisation
#       (benchmarks/gpt_small.py);
#   (b) benchmarks/side_by_side.py --only lenet5,resnet18: dlx on the GPU against PyTorch
#       eager on the same GPU.
#
# MFU (benchmarks/gpt_small.py, PaLM appendix B / nanoGPT's estimate_mfu):
#
#   MFU = (6 N + 12 L H Q T) * tokens_per_second / peak_bf16_flops
#
# N: parameters without the position embeddings, L layers, H heads, Q = 768 / 12 = 64 the
# head size, T = 1024 the sequence length. Peak dense bf16 TFLOP/s by device (the table
# PEAK_BF16_TFLOPS in gpt_small.py): H100 SXM 989.4, H100 PCIe 756, H100 NVL 835,
# H200 989.4, H200 NVL 835, A100 312; --peak_tflops X overrides it.
#
# It runs dlx from this source tree (PYTHONPATH) with the JAX, Flax, Optax and PyTorch
# already installed for $PYTHON (default: python3); it installs nothing and prints the
# versions it used. It stops with a message when jax sees no GPU or torch no CUDA device.
#
#   benchmarks/gpu.sh [--dry_run] [--out DIR] [--peak_tflops X] [--batch_size N]
#
#   --dry_run       everything at a tiny size on the CPU (for CI; numbers mean nothing)
#   --out DIR       where the JSON results and the log go (default runs/gpu_benchmarks)
#   --peak_tflops   the GPU's peak bf16 TFLOP/s, when it is not in the table
#   --batch_size    GPT-small batch (default 16, or 8 when jax may use under 40 GiB; a
#                   default batch is halved on out-of-memory)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3}
DRY_RUN=0
OUT_DIR=runs/gpu_benchmarks
PEAK=0
BATCH=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry_run) DRY_RUN=1 ;;
    --out) OUT_DIR=$2; shift ;;
    --out=*) OUT_DIR=${1#*=} ;;
    --peak_tflops) PEAK=$2; shift ;;
    --peak_tflops=*) PEAK=${1#*=} ;;
    --batch_size) BATCH=$2; shift ;;
    --batch_size=*) BATCH=${1#*=} ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
if [[ $DRY_RUN == 1 ]]; then
  export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=""
fi
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_benchmarks.log"
: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }

say "== dlx GPU benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ))$([[ $DRY_RUN == 1 ]] && echo ', DRY RUN: tiny sizes on the CPU')"
say "source tree: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import platform
import jax, jaxlib, flax, optax
print(f"python {platform.python_version()} ({platform.machine()})")
print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, flax {flax.__version__}, optax {optax.__version__}")
print(f"jax backend {jax.default_backend()}: {[d.device_kind for d in jax.devices()]}")
try:
  import torch
  cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
  print(f"torch {torch.__version__} (CUDA {torch.version.cuda}): {cuda}")
except ImportError as e:
  print(f"torch not importable: {e}")
EOF
if command -v nvidia-smi > /dev/null && [[ $DRY_RUN == 0 ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG" || true
fi

if [[ $DRY_RUN == 0 ]]; then
  if ! "$PYTHON" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2> /dev/null; then
    say "gpu.sh: jax sees no GPU (backend: $("$PYTHON" -c 'import jax; print(jax.default_backend())' 2> /dev/null || echo 'jax not importable'))."
    say "Install a CUDA build of jax for $PYTHON (or set PYTHON), or run with --dry_run to check the scripts on the CPU."
    exit 1
  fi
  if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
    say "gpu.sh: torch sees no CUDA device, so the side-by-side reference would run on the CPU."
    say "Install a CUDA build of torch for $PYTHON, or run with --dry_run."
    exit 1
  fi
fi

if [[ $DRY_RUN == 1 ]]; then
  # A made-up peak of 0.1 TFLOP/s (unless given) only exercises the MFU arithmetic.
  [[ $PEAK == 0 ]] && PEAK=0.1
  GPT_ARGS=(--tiny --peak_tflops "$PEAK")
  SBS_ARGS=(--tiny --threads 1)
  GPT_LIMIT=240
  SBS_LIMIT=240
else
  GPT_ARGS=(--peak_tflops "$PEAK" --batch_size "$BATCH")
  SBS_ARGS=(--max_seconds 20)
  GPT_LIMIT=270  # the two limits keep the whole script under 8 minutes
  SBS_LIMIT=200
fi

# A failed or timed-out part (exit 124) is reported, and the next part still runs.
FAILED=()

say ""
say "== (a) GPT-small training throughput and MFU (benchmarks/gpt_small.py)"
timeout "$GPT_LIMIT" "$PYTHON" benchmarks/gpt_small.py "${GPT_ARGS[@]}" \
  --json "$OUT_DIR/gpt_small.json" 2>&1 | tee -a "$LOG" || FAILED+=("gpt_small.py (exit $?)")

say ""
say "== (b) dlx vs PyTorch, same device (benchmarks/side_by_side.py --only lenet5,resnet18)"
timeout "$SBS_LIMIT" "$PYTHON" benchmarks/side_by_side.py --only lenet5,resnet18 "${SBS_ARGS[@]}" \
  --json "$OUT_DIR/side_by_side.json" 2>&1 | tee -a "$LOG" || FAILED+=("side_by_side.py (exit $?)")

say ""
say "results: $OUT_DIR/gpt_small.json, $OUT_DIR/side_by_side.json; log: $LOG"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  say "gpu.sh: failed: ${FAILED[*]} (124: over its time limit)"
  exit 1
fi
