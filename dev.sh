#!/usr/bin/env bash
# The two set-up commands of the README:
#   bash dev.sh demo   installs the backend into .venv, runs the main job on the sample photos,
#                      then builds the add-on zips for this machine (they know where the backend is)
#   bash dev.sh test   installs the backend, the pool extra (Ray), test tools and bpy into .venv,
#                      runs ruff and the tests (the add-on's under the oldest supported Blender,
#                      4.5 LTS); then the add-on tests again under each other Blender that
#                      tools/blender_matrix.txt tests (5.2 LTS, 5.3), each bpy in .venv-bpy<series>
# VENV=/path overrides the main virtual environment's location; PYTHON313=/path names a
# CPython 3.13 for the Blender 5.1+ suites (else python3.13 on PATH or pyenv's is used).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
# A venv keeps its programs in Scripts/ on Windows (Git Bash), in bin/ elsewhere.
case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) BIN="$VENV/Scripts" ;; *) BIN="$VENV/bin" ;; esac
PY="$BIN/python"
MATRIX=tools/blender_matrix.txt

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

# A CPython of the given minor version (3.11, 3.13, ...): $PYTHON313-style override, then the
# versioned name on PATH, then pyenv's builds (pyenv's shims fail for versions not selected).
find_python() {  # find_python 3.13
  local version="$1" override candidate
  override="PYTHON${version/./}"
  for candidate in "${!override:-}" "python$version" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*/bin/"python$version"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# The tested rows of the matrix after the first (which .venv tests): "series bpy python".
other_blenders() {
  grep -v '^#' "$MATRIX" | awk 'NF == 4 && $2 != "-" { print $1, $2, $3 }' | tail -n +2
}

# The add-on suite under one more Blender, as the bpy module in a venv of its own: it needs no
# torch, only what the add-on tests import (the addon-test-other extra plus the bare package:
# numpy, pyzmq). The end-to-end tests start the backend from the main venv.
test_other_blender() {  # test_other_blender SERIES BPY_VERSION PYTHON_VERSION
  local series="$1" bpy="$2" python venv="${VENV}-bpy$1"
  if ! python=$(find_python "$3"); then
    echo "No CPython $3 found for the Blender $series add-on suite (bpy $bpy):" \
      "install it (e.g. pyenv install $3) or set PYTHON${3/./}=/path/to/python$3" >&2
    [ -n "${CI:-}" ] && exit 1
    echo "Skipping the Blender $series suite on this machine (CI runs it)." >&2
    return 0
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
  fi
  local start=$SECONDS
  "$venv/bin/python" -m pip install --quiet "bpy==$bpy" -e ".[addon-test-other]"
  echo "[dev.sh] Blender $series: bpy $bpy installed in $((SECONDS - start)) s"
  start=$SECONDS
  VIDEOSCENE_TEST_BACKEND="$(cd "$BIN" && pwd)/videoscene-backend" \
    "$venv/bin/pytest" tests/addon -q -p no:cacheprovider -m "not backend_paths"
  echo "[dev.sh] Blender $series: add-on suite in $((SECONDS - start)) s"
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
    # Everything that depends on the Blender version, again under each other tested Blender;
    # the tests of backend behaviour alone (backend_paths) ran above.
    mapfile -t rows < <(other_blenders)
    for row in "${rows[@]}"; do
      # shellcheck disable=SC2086  # a row is "series bpy python"
      test_other_blender $row
    done
    ;;
  *)
    echo "usage: bash dev.sh demo [OUT_DIR] | bash dev.sh test" >&2
    exit 2
    ;;
esac
