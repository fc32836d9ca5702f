#!/usr/bin/env bash
# The media tests under each ffmpeg the project supports at its two ends: the newest (the
# imageio-ffmpeg wheel's binary, no ffprobe) and the oldest (Debian 12's 5.1 package, with
# its ffprobe, found on PATH as a system ffmpeg would be). `make test` runs everything under
# whichever binary this machine picks; this makes both ends run whatever the machine has.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDIA_TESTS=(tests/test_media.py tests/test_hostile_media.py tests/test_pipeline_e2e.py)
wheel=$(.venv/bin/python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
debian=$(./scripts/ffmpeg_debian.sh)
run() {  # run LABEL ENV...: the media tests with the given environment
  local label=$1
  shift
  echo "media tests under $label"
  env "$@" .venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile -p no:cacheprovider "${MEDIA_TESTS[@]}"
}
run "the wheel's ffmpeg ($wheel)" LATENTSYNC_FFMPEG="$wheel"
run "Debian 12's ffmpeg 5.1 ($debian)" PATH="$debian:$PATH"
