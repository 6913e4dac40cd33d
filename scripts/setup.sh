#!/usr/bin/env bash
# Idempotent set-up of everything trkx-tf needs on a fresh Debian machine:
#   1. apt packages: Debian's Open MPI 4.1 (horovodrun's default MPI mode works with it; PyPI's Open MPI 5
#      breaks the mpirun flags horovodrun adds), cmake and a C++ compiler for the Horovod build;
#   2. a virtual environment (.venv) with the pinned Python packages (requirements.txt + constraints.txt);
#   3. Horovod 0.28.1 built from source with TensorFlow, Gloo and MPI, its wheel cached OUTSIDE the clone in
#      $TRKX_CACHE_DIR (default ~/.cache/trkx-tf), keyed by Horovod, TensorFlow, Python and MPI versions, so a
#      second set-up or a fresh clone reuses it instead of compiling again (~6 minutes on 2 cores);
#   4. the trkx_tf package itself, editable, with its console scripts;
#   5. the models' native CPU kernels (trkx_tf/models/native.py: g++ against TensorFlow, cached in
#      $TRKX_CACHE_DIR/ops; also built on first use, and the XLA kernels run where they cannot be built).
# A stamp file records the hash of the inputs; when nothing changed the script only checks and exits.
#
# Environment:
#   PYTHON           interpreter for the venv (default: python3.11, else python3; must be 3.11)
#   VENV             venv folder (default: .venv in the repository)
#   TRKX_CACHE_DIR   wheel cache (default: ~/.cache/trkx-tf)
#   TRKX_SKIP_APT=1  do not call apt-get (a cluster with modules; mpicc must then be on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
CACHE="${TRKX_CACHE_DIR:-$HOME/.cache/trkx-tf}"
HOROVOD_VERSION=0.28.1
export TF_CPP_MIN_LOG_LEVEL=2
log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# ---- 1. system packages --------------------------------------------------------------------------------
need_apt=()
command -v mpicxx >/dev/null 2>&1 || need_apt+=(openmpi-bin libopenmpi-dev)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
if [ "${#need_apt[@]}" -gt 0 ]; then
  [ "${TRKX_SKIP_APT:-0}" = 1 ] && die "missing ${need_apt[*]} and TRKX_SKIP_APT=1: load your MPI/cmake modules first"
  command -v apt-get >/dev/null 2>&1 || die "missing ${need_apt[*]}; install them (no apt-get here)"
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
MPI_VERSION="$(mpirun --version 2>/dev/null | head -n1 | sed -E 's/.* ([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/')"
[ -n "$MPI_VERSION" ] || die "mpirun --version printed nothing; is an MPI installed?"

# ---- 2. virtual environment with the pins --------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  PYTHON="$(command -v python3.11 || command -v python3)"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$PYTHON is not Python 3.11 (set PYTHON=/path/to/python3.11)"
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

stamp_inputs="$(cat requirements.txt constraints.txt setup.py scripts/setup.sh; echo "mpi=$MPI_VERSION")"
stamp="$(printf '%s' "$stamp_inputs" | sha256sum | cut -c1-16)"
if [ -f "$VENV/.trkx-setup-stamp" ] && [ "$(cat "$VENV/.trkx-setup-stamp")" = "$stamp" ] \
   && "$VENV/bin/python" -c 'import trkx_tf, horovod.tensorflow' 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi

log "installing pinned packages"
"${PIP[@]}" install -r requirements.txt -c constraints.txt

# ---- 3. Horovod, from the wheel cache or built once -----------------------------------------------------
TF_VERSION="$(TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" -c 'import tensorflow as tf; print(tf.__version__)')"
PY_TAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEEL_DIR="$CACHE/wheels/horovod-$HOROVOD_VERSION-tf$TF_VERSION-$PY_TAG-openmpi$MPI_VERSION"
if ! ls "$WHEEL_DIR"/horovod-*.whl >/dev/null 2>&1; then
  log "building Horovod $HOROVOD_VERSION against TensorFlow $TF_VERSION, Gloo and MPI $MPI_VERSION (about 6 minutes)"
  tmp="$(mktemp -d "$CACHE.build.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$CACHE")"; mktemp -d "$CACHE.build.XXXXXX"; })"
  trap 'rm -rf "$tmp"' EXIT
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
  HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 MAKEFLAGS="-j$(nproc)" \
    "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$tmp" "horovod==$HOROVOD_VERSION" \
    > "$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log" >&2; die "Horovod build failed (log above)"; }
  mkdir -p "$WHEEL_DIR"
  # Publish atomically: a half-written wheel never lands in the cache.
  for w in "$tmp"/horovod-*.whl; do cp "$w" "$WHEEL_DIR/.$(basename "$w").part" && mv "$WHEEL_DIR/.$(basename "$w").part" "$WHEEL_DIR/$(basename "$w")"; done
else
  log "reusing cached Horovod wheel from $WHEEL_DIR"
fi
"${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/horovod-*.whl
"${PIP[@]}" install -c constraints.txt cloudpickle psutil pyyaml  # horovodrun's own run-time needs, pinned

# ---- 4. the package ----------------------------------------------------------------------------------------
"${PIP[@]}" install --no-deps -e .
check="$("$VENV/bin/horovodrun" --check-build 2>/dev/null)"
for want in TensorFlow Gloo MPI; do
  grep -q "\[X\] $want" <<<"$check" || die "Horovod was built without $want (remove $WHEEL_DIR to rebuild)"
done
# ---- 5. the native kernels (a few seconds; a failure only costs speed: the XLA kernels run instead) ---------
log "native kernels: $("$VENV/bin/python" -c 'from trkx_tf.models import native; print(native.status())')"
printf '%s' "$stamp" > "$VENV/.trkx-setup-stamp"
log "ready: source $VENV/bin/activate"
