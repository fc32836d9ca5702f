#!/usr/bin/env bash
# Creates .venv and installs the project with its test tools. Idempotent and quiet: pip's
# output goes to .venv/setup.log, shown only when a step fails.
# torch is installed first and pinned, so the CPU build is used where one is on offer
# and pip never resolves a bare `torch` to the multi-GB CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=.venv/setup.log

step() {  # step "what" command...: one line per step, the log on failure
  printf '  %s ... ' "$1"
  shift
  if "$@" >>"$LOG" 2>&1; then
    echo ok
  else
    echo "failed; the end of $LOG:"
    tail -n 30 "$LOG"
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# System programs the tests drive for real: Chromium (the web page's browser test) and
# redis-server (the Celery mode). Debian packages, installed once when missing.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  step "system packages: ${need[*]}" bash -c "$SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends ${need[*]}"
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setting up .venv (details in $LOG)"
  : >"$LOG"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_WARN_SCRIPT_LOCATION=1
  step "pip" .venv/bin/python -m pip install --upgrade pip
  step "torch ${TORCH_VERSION:-2.13.0}" .venv/bin/python -m pip install "torch==${TORCH_VERSION:-2.13.0}"
  step "the project, its test tools and Ray" .venv/bin/python -m pip install -e ".[dev,ray,celery]"
  touch .venv/.installed
fi
