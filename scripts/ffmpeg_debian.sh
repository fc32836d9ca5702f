#!/usr/bin/env bash
# Puts Debian 12's own ffmpeg package (5.1, the oldest release the project supports) into
# .venv/ffmpeg-debian without installing it system-wide, and prints the folder holding its
# `ffmpeg` and `ffprobe`. CI runs the media tests once under it and once under the wheel's
# binary, so a dependency on one ffmpeg version cannot slip in again. A machine whose own
# ffmpeg is already that package is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=.venv/ffmpeg-debian
if [ -x /usr/bin/ffmpeg ] && /usr/bin/ffmpeg -hide_banner -version | head -n 1 | grep -q '^ffmpeg version 5\.1'; then
  echo /usr/bin
  exit 0
fi
if [ ! -x "$PREFIX/bin/ffmpeg" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  rm -rf "$PREFIX" && mkdir -p "$PREFIX/debs/partial" "$PREFIX/root" "$PREFIX/bin"
  # Download the package and the libraries this machine lacks, unpack them, install nothing.
  fetch() {
    $SUDO apt-get install -y -q --download-only --no-install-recommends \
      -o Dir::Cache::archives="$PWD/$PREFIX/debs" ffmpeg
  }
  { fetch || { $SUDO apt-get update -q && fetch; }; } >"$PREFIX/apt.log" 2>&1
  for deb in "$PREFIX"/debs/*.deb; do dpkg -x "$deb" "$PREFIX/root"; done
  libs="$PWD/$PREFIX/root/usr/lib/x86_64-linux-gnu"
  for tool in ffmpeg ffprobe; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s:%s/blas:%s/lapack${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
      "$libs" "$libs" "$libs" "$PWD/$PREFIX/root/usr/bin/$tool" >"$PREFIX/bin/$tool"
    chmod +x "$PREFIX/bin/$tool"
  done
  rm -rf "$PREFIX/debs"
fi
"$PREFIX/bin/ffmpeg" -hide_banner -version | head -n 1 | grep -q '^ffmpeg version 5\.1' \
  || { echo "the unpacked ffmpeg does not run: see $PREFIX/apt.log" >&2; exit 1; }
echo "$PWD/$PREFIX/bin"
