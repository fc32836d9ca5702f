#!/usr/bin/env bash
# Creates .venv and installs the project with its test tools. Idempotent.
# torch is installed first and pinned, so the CPU build is used where one is on offer
# and pip never resolves a bare `torch` to the multi-GB CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
  python -m pip install -q -e ".[dev]"
  touch .venv/.installed
fi
