#!/usr/bin/env bash
# One GPU lease for issue 21's table: installs the carried wheels (scripts/gpu_wheels.sh)
# to a private folder, then runs scripts/bench_e2e.py (or BENCH, e.g. scripts.bench_fp8,
# which takes the same arguments) with replayed landmarks
# (scripts/data/demo1_faces.npz) and a time budget, writing to $OUT:
#   log             everything printed (install, GPU, benchmark)
#   bench_e2e.json  every measurement (written after each run, so a cut-off run keeps what it had)
#   table.md        the table and its notes
#   gpu.txt         nvidia-smi's name, memory and driver
#
# On the device machine, from the repository root, with .whl carried:
#   bash scripts/gpu_lease.sh
# Here, as a check (CPU, demo weights):
#   OUT=/tmp/x PYTHON=.venv/bin/python SITE=/tmp/site-check bash scripts/gpu_lease.sh --smoke
# Extra arguments go to the benchmark. BUDGET_S (default 480) bounds the whole script;
# the call's own limit is 600 s. WHL (default .whl) is the folder of carried wheels.
set -uo pipefail
START=$(date +%s)
: "${OUT:?OUT must name the folder for the results}"
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
BUDGET_S=${BUDGET_S:-480}
BENCH=${BENCH:-scripts.bench_e2e}
WHL=${WHL:-.whl}
NAME=${BENCH##*.}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"

{
    echo "== install wheels to $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl \
        || exit 1
    ffmpeg_bin=$(ls "$SITE"/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-* 2>/dev/null | head -1)
    [ -x "$ffmpeg_bin" ] || { echo "no executable ffmpeg from imageio-ffmpeg in $SITE" >&2; exit 1; }
    echo "ffmpeg: $ffmpeg_bin"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt" || true
} 2>&1 | tee "$OUT/log" || exit 1

export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export LATENTSYNC_FFMPEG
LATENTSYNC_FFMPEG=$(ls "$SITE"/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-* | head -1)
export PYTHONUNBUFFERED=1
# Seconds left for the benchmark, less ~30 s for Python's start-up and imports.
left=$((BUDGET_S - ($(date +%s) - START) - 30))
echo "== $NAME, budget $left s" | tee -a "$OUT/log"
"$PY" -m "$BENCH" --landmarks scripts/data/demo1_faces.npz --budget-s "$left" \
    --json "$OUT/$NAME.json" --table "$OUT/table.md" "$@" 2>&1 | tee -a "$OUT/log"
status=$?
echo "== done in $(($(date +%s) - START)) s, exit $status" | tee -a "$OUT/log"
exit $status
