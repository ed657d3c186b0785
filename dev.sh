#!/usr/bin/env bash
# The two set-up commands of the README:
#   bash dev.sh demo   installs the backend into .venv, runs the main job on the sample photos
#   bash dev.sh test   installs the backend, the pool extra (Ray), test tools and bpy into .venv,
#                      runs ruff and the tests
# VENV=/path overrides the virtual environment's location.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"

ensure_venv() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
  fi
  # torch first and pinned: left to the resolver, a torch range pulls several GB of CUDA packages
  # on machines that need the CPU build (where a CPU wheel of this version is on disk, pip takes it).
  if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install --quiet "torch==2.13.0"
  fi
}

install() {  # install EXTRAS...
  local extras
  extras=$(IFS=,; echo "$*")
  "$PY" -m pip install --quiet -c tools/constraints.txt -e ".[${extras}]"
}

case "${1:-}" in
  demo)
    ensure_venv
    install backend
    out="${2:-out/demo}"
    "$VENV/bin/videoscene-backend" run \
      --image-a samples/view_a.jpg --image-b samples/view_b.jpg --out "$out"
    echo "Done: frames, scene.ply and video.mp4 are in $out"
    ;;
  test)
    ensure_venv
    install backend pool test addon-test
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    # bpy and torch are tested in separate processes: each bundles native libraries of its own.
    "$VENV/bin/pytest" tests --ignore=tests/addon -q -p no:cacheprovider
    "$VENV/bin/pytest" tests/addon -q -p no:cacheprovider
    ;;
  *)
    echo "usage: bash dev.sh demo [OUT_DIR] | bash dev.sh test" >&2
    exit 2
    ;;
esac
