#!/usr/bin/env bash
# The two set-up commands of the README:
#   bash dev.sh demo   installs the backend into .venv, runs the main job on the sample photos,
#                      then builds the add-on zips for this machine (they know where the backend is)
#   bash dev.sh test   installs the backend, the pool extra (Ray), test tools and bpy into .venv,
#                      runs ruff and the tests; then the add-on tests again under Blender 4.2 LTS
#                      (bpy 4.2 in .venv-bpy42)
# VENV=/path and LTS_VENV=/path override the virtual environments' locations.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
# A venv keeps its programs in Scripts/ on Windows (Git Bash), in bin/ elsewhere.
case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) BIN="$VENV/Scripts" ;; *) BIN="$VENV/bin" ;; esac
PY="$BIN/python"
LTS_VENV="${LTS_VENV:-.venv-bpy42}"

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

# The oldest Blender the add-on supports, as the bpy module: it needs no torch, only what the
# add-on tests import (pyproject's addon-test-lts extra plus the bare package: numpy, pyzmq).
ensure_lts_venv() {
  if [ ! -x "$LTS_VENV/bin/python" ]; then
    python3 -m venv "$LTS_VENV"
    "$LTS_VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  "$LTS_VENV/bin/python" -m pip install --quiet -c tools/constraints.txt -e ".[addon-test-lts]"
}

install() {  # install EXTRAS...
  local extras
  extras=$(IFS=,; echo "$*")
  "$PY" -m pip install --quiet -c tools/constraints.txt -e ".[${extras}]"
  # opencv-contrib-python-headless replaced opencv-python-headless; both install the package cv2,
  # so a venv made before the switch drops the plain one and gets contrib's cv2 files back.
  if "$PY" -m pip show opencv-python-headless >/dev/null 2>&1; then
    "$PY" -m pip uninstall --quiet -y opencv-python-headless
    "$PY" -m pip install --quiet --force-reinstall --no-deps -c tools/constraints.txt \
      opencv-contrib-python-headless
  fi
}

case "${1:-}" in
  demo)
    ensure_venv
    install backend addon-build
    out="${2:-out/demo}"
    "$BIN/videoscene-backend" run \
      --image-a samples/view_a.jpg --image-b samples/view_b.jpg --out "$out"
    echo "Done: frames, scene.ply and video.mp4 are in $out"
    # The add-on for this machine's Blender; it records .venv's backend, so it needs no setting.
    # Ends with the zips to install and the backend command the add-on will run.
    "$PY" build_addon.py --platform current
    ;;
  test)
    ensure_venv
    install backend pool test addon-test
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    # bpy and torch are tested in separate processes: each bundles native libraries of its own.
    "$VENV/bin/pytest" tests --ignore=tests/addon -q -p no:cacheprovider
    "$VENV/bin/pytest" tests/addon -q -p no:cacheprovider
    ensure_lts_venv
    # Everything that depends on the Blender version; the end-to-end tests start the backend
    # from the main venv, and those of backend behaviour alone (backend_paths) ran above.
    VIDEOSCENE_TEST_BACKEND="$(cd "$VENV/bin" && pwd)/videoscene-backend" \
      "$LTS_VENV/bin/pytest" tests/addon -q -p no:cacheprovider -m "not backend_paths"
    ;;
  *)
    echo "usage: bash dev.sh demo [OUT_DIR] | bash dev.sh test" >&2
    exit 2
    ;;
esac
