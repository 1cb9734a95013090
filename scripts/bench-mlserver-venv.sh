#!/usr/bin/env bash
# Create .bench-venvs/mlserver: Seldon's MLServer and its scikit-learn runtime, for the
# optional peer line of `python -m bench.gateway --mlserver`.
#
# It is a virtualenv of its own because mlserver-sklearn pins its own scikit-learn and numpy;
# nothing of modelpact is installed into it, and the benchmark's pickled model (joblib, as
# MLServer's scikit-learn runtime loads it) is written and read only by processes of this
# venv. Re-running the script rebuilds it.
#
# Usage: scripts/bench-mlserver-venv.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.bench-venvs/mlserver
MLSERVER_VERSION=1.7.1
# mlserver leaves uvloop unpinned; from 0.22 uvloop's get_event_loop() raises where no loop is
# set, which kills MLServer 1.7.1's inference workers at start. 0.21.0 was current with it.
UVLOOP_VERSION=0.21.0

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "mlserver==${MLSERVER_VERSION}" "mlserver-sklearn==${MLSERVER_VERSION}" \
  "uvloop==${UVLOOP_VERSION}"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version

print(
    "built .bench-venvs/mlserver:",
    ", ".join(f"{name} {version(name)}" for name in
              ("mlserver", "mlserver-sklearn", "scikit-learn", "numpy", "joblib", "uvloop")),
)
PY
