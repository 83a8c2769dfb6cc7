#!/usr/bin/env bash
# The front door of dlx.
#   ./launch.sh                      bootstrap .venv, run the default experiment (lenet5_digits)
#   ./launch.sh test [unit|system|experiments]  bootstrap .venv (with test extras), run the
#                                    fast tests: every tier (what CI runs), or the ones named
#   ./launch.sh test-slow            run the slow tests: experiments trained to their targets
#   ./launch.sh NAME[:ARG] [flags]   run experiments/<family>/NAME.py (--config.FIELD=V, --workdir, --data_dir);
#                                    every experiment takes :smoke (3 steps on tiny data)
#   ./launch.sh sweep NAME --grid 'config.FIELD=V1,V2' [--grid ...] [--backend=ray] [flags]
#   ./launch.sh crossval NAME[:ARG] --folds K [--stratified] [flags]   k-fold cross-validation
#   ./launch.sh docs                 build the HTML API reference into docs/api/
#   ./launch.sh tpu-tools            install libtpu into .libtpu/ for the TPU fit check
#                                    (python -m dlx.tools.aot_check NAME --topology=v5e:4x4)
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="${DLX_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

# TensorFlow only reads data: never let it see (and reserve) a GPU; keep it quiet.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
export TF_FORCE_GPU_ALLOW_GROWTH=true

no_deps_requires() {
  "$PY" -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print(' '.join(c['dlx']['no_deps_requires'].split()))"
}

bootstrap() {  # $1: pip extras, e.g. "[all,test]" (core + trainer + data + tests)
  local extras="${1:-}" stamp
  if [ ! -x "$PY" ]; then
    echo "launch.sh: creating $VENV" >&2
    python3 -m venv "$VENV"
  fi
  # Reinstall only when setup.cfg or the requested extras change: quick when present.
  stamp="$VENV/.dlx-installed$(echo "$extras" | tr -dc 'a-z')"
  if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
    echo "launch.sh: installing dlx$extras into $VENV" >&2
    "$PY" -m pip install -q --disable-pip-version-check -e ".$extras" 2>&1 \
      | grep -v "^WARNING: Location" >&2 || true
    # setup.cfg's [dlx] no_deps_requires: packages whose declared dependencies are wrong
    # for us (see the comment there).
    "$PY" -m pip install -q --disable-pip-version-check --no-deps $(no_deps_requires) 2>&1 \
      | grep -v "^WARNING: Location" >&2 || true
    "$PY" -c "import dlx, jax, flax, optax, orbax.checkpoint, tensorflow_datasets" \
      || { echo "launch.sh: installation failed" >&2; exit 1; }
    touch "$stamp"
  fi
  cpu_kernels
}

# dlx's oneDNN convolutions (docs/cpu_kernels.md). oneDNN is Debian's libdnnl-dev, which
# root installs here with apt-get (7 MB download, 42 MB on disk; tried once per venv);
# the extension then compiles in seconds, once per source. Without either: one line, and
# runs use XLA's convolution.
cpu_kernels() {
  [ "${DLX_NO_ONEDNN:-0}" = "0" ] || return 0
  local tried="$VENV/.dlx-onednn-apt-tried"
  if [ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ] && [ ! -f "$tried" ] \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    touch "$tried"
    echo "launch.sh: installing libdnnl-dev (oneDNN) for dlx's CPU convolutions" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q libdnnl-dev >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libdnnl-dev >/dev/null 2>&1; } \
      || true
  fi
  "$PY" -m dlx.kernels.onednn --quiet >&2 || true
}

extra_requires() {  # $1: an extra of setup.cfg -> its requirements on one line
  "$PY" -c "import configparser, sys; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print(' '.join(c['options.extras_require'][sys.argv[1]].split()))" "$1"
}

# libtpu, the TPU compiler of the AOT fit check (dlx/tools/aot_check.py), goes into a side
# directory ($DLX_LIBTPU_DIR, default .libtpu/) that only that tool puts on sys.path: in
# the venv, every JAX start would look for a TPU. Setup.cfg's [tpu] extra is the pin;
# quick when that pin is already there (a 210 MB download and 680 MB on disk otherwise).
tpu_tools() {
  local dir="${DLX_LIBTPU_DIR:-$ROOT/.libtpu}" spec
  spec="$(extra_requires tpu)"
  if [ "$(cat "$dir/.dlx-installed" 2>/dev/null)" != "$spec" ]; then
    echo "launch.sh: installing $spec into $dir" >&2
    local log
    log="$("$PY" -m pip install -q --disable-pip-version-check --no-deps --upgrade \
      --target "$dir" $spec 2>&1)" || { echo "$log" >&2; return 1; }
    [ -z "$log" ] || echo "$log" | grep -v "^WARNING: Location" >&2 || true
    echo "$spec" > "$dir/.dlx-installed"
  fi
}

run_experiment() {  # NAME[:ARG] [flags]; ARG goes to the experiment's get_config
  local spec="$1"; shift
  local name="${spec%%:*}" arg=""
  case "$spec" in *:*) arg=":${spec#*:}";; esac
  # A name is found in any family folder (experiments/<family>/NAME.py) by dlx.main.
  local config="$name"
  case "$name" in *.py) config="$name"; name="$(basename "$name" .py)";; esac
  local workdir="runs/$name${arg:+_${arg#:}}"
  for flag in "$@"; do case "$flag" in --workdir=*) workdir="";; esac; done
  if [ -n "$workdir" ]; then set -- "--workdir=$workdir" "$@"; fi
  exec "$PY" -m dlx.main --config="$config$arg" "$@"
}

cmd="${1:-}"
case "$cmd" in
  "")
    bootstrap "[all]"
    run_experiment lenet5_digits --workdir="runs/lenet5_digits" ;;
  test)
    # Tiers: unit (tests/unit/, in-process, mirrors dlx/), system (tests/system/: real
    # processes - the command line, several processes, signals), experiments
    # (tests/experiments/: every experiment's smoke run and end-to-end claims).
    # No tier named = all three (what CI runs).
    shift; bootstrap "[all,test]"
    # The AOT fit check's tests compile for TPUs with it (they skip where it cannot install).
    tpu_tools || echo "launch.sh: libtpu did not install; the TPU fit check's tests skip" >&2
    tier_paths=()
    while [ $# -ge 1 ]; do
      case "$1" in
        unit|system|experiments) tier_paths+=("tests/$1"); shift ;;
        *) break ;;
      esac
    done
    # worksteal: an idle worker takes queued tests from the busy one (no idle tail).
    exec "$PY" -m pytest -q -n 2 --dist worksteal --durations=15 "${tier_paths[@]}" "$@" ;;
  test-slow)
    shift; bootstrap "[all,test]"
    tpu_tools || echo "launch.sh: libtpu did not install; the TPU fit check's tests skip" >&2
    exec "$PY" -m pytest -q -m slow -p no:xdist "$@" ;;
  sweep)
    shift
    case " $* " in *" --backend=ray "*) bootstrap "[all,ray]";; *) bootstrap "[all]";; esac
    [ $# -ge 1 ] || { echo "usage: ./launch.sh sweep NAME --grid 'config.FIELD=V1,V2' ..." >&2; exit 2; }
    exec "$PY" -m dlx.tools.sweep "$@" ;;
  crossval)
    shift; bootstrap "[all]"
    [ $# -ge 1 ] || { echo "usage: ./launch.sh crossval NAME[:ARG] --folds K [flags]" >&2; exit 2; }
    exec "$PY" -m dlx.tools.crossval "$@" ;;
  docs)
    shift; bootstrap "[all,docs]"
    exec "$PY" docs/build_api.py "$@" ;;
  tpu-tools)
    bootstrap "[all]"
    tpu_tools || { echo "launch.sh: could not install libtpu (see pip's message above)" >&2; exit 1; }
    echo "libtpu: $(cat "${DLX_LIBTPU_DIR:-$ROOT/.libtpu}/.dlx-installed") in ${DLX_LIBTPU_DIR:-$ROOT/.libtpu}" ;;
  -h|--help|help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
  *)
    shift; bootstrap "[all]"
    run_experiment "$cmd" "$@" ;;
esac
