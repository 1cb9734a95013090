#!/usr/bin/env bash
# Make the separate Concrete ML venv for bench/concrete_ml/baseline.py (idempotent).
#
#   bash bench/concrete_ml/setup.sh            # venv at /work/venvs/concrete-ml
#   CONCRETE_VENV=/tmp/cml bash bench/concrete_ml/setup.sh
#
# Concrete ML pins old numpy/scikit-learn/torch that conflict with the project, so it lives
# outside the repo's .venv.  Order matters:
#   1. CPython 3.11 venv (concrete-ml 1.9.0 wants >=3.8.1,<3.13; the CPU torch wheel is cp311);
#   2. torch 2.13.0+cpu from the wheel on disk (never PyPI's: a bare torch there is CUDA);
#   3. everything else from requirements.txt with --no-deps: exact versions, nothing resolved.
#
# Env overrides: CONCRETE_VENV (venv path), CONCRETE_PYTHON (a python3.11), CONCRETE_TORCH_WHEEL.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${CONCRETE_VENV:-/work/venvs/concrete-ml}"
REQS="$HERE/requirements.txt"
TORCH_WHEEL="${CONCRETE_TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"
STAMP="$VENV/.concrete-ml-bench-installed"

if [[ -z "${CONCRETE_PYTHON:-}" ]]; then
  for candidate in /root/.pyenv/versions/3.11.7/bin/python python3.11; do
    if command -v "$candidate" >/dev/null 2>&1; then
      CONCRETE_PYTHON="$(command -v "$candidate")"
      break
    fi
  done
fi
if [[ -z "${CONCRETE_PYTHON:-}" ]]; then
  echo "setup.sh: no CPython 3.11 found; set CONCRETE_PYTHON" >&2
  exit 1
fi
if ! "$CONCRETE_PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup.sh: $CONCRETE_PYTHON is not CPython 3.11 (the torch wheel is cp311)" >&2
  exit 1
fi

want="$(sha256sum "$REQS" | cut -d' ' -f1) $(basename "$TORCH_WHEEL")"
smoke='import warnings; warnings.filterwarnings("ignore")
import torch, concrete.ml
from concrete.ml.deployment import FHEModelClient, FHEModelDev, FHEModelServer
from concrete.ml.sklearn import LogisticRegression
print("concrete-ml", concrete.ml.__version__, "torch", torch.__version__)'

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c "$smoke" 2>/dev/null; then
  echo "setup.sh: $VENV is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup.sh: creating $VENV with $CONCRETE_PYTHON"
  "$CONCRETE_PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! "$VENV/bin/python" -c 'import sys, torch; sys.exit(torch.__version__ != "2.13.0+cpu")' 2>/dev/null; then
  if [[ ! -f "$TORCH_WHEEL" ]]; then
    echo "setup.sh: $TORCH_WHEEL is missing. Refusing to let pip fetch torch from PyPI" >&2
    echo "  (its Linux x86_64 wheels are CUDA builds of several GB). Set CONCRETE_TORCH_WHEEL" >&2
    echo "  to a CPU torch 2.13.0 wheel for this Python." >&2
    exit 1
  fi
  "${PIP[@]}" install --no-deps "$TORCH_WHEEL"
fi

"${PIP[@]}" install --no-deps -r "$REQS"

# Two known, deliberate conflicts with concrete-ml's pins (torch, setuptools): see requirements.txt.
"${PIP[@]}" check || true
"$VENV/bin/python" -c "$smoke"
echo "$want" >"$STAMP"
echo "setup.sh: $VENV ready"
