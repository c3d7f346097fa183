#!/usr/bin/env bash
# Set up napari-biogan on a fresh Linux machine: Qt/OpenGL/Xvfb system libraries (Debian/Ubuntu,
# when run as root or with sudo), a virtual environment in .venv, the CPU build of PyTorch
# (installed first, so pip never pulls a multi-GB CUDA build), then the plugin with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

debs="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxkbcommon-x11-0
      libgl1 libegl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3"
if command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  missing=$(for p in $debs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "Installing system libraries: $missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
  fi
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# PyTorch first: the CPU build here; users with a GPU may install their CUDA build instead.
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[testing]"
echo "napari-biogan is installed in .venv: run '.venv/bin/napari-biogan demo'"
