#!/usr/bin/env bash
# One device call: `videoscene-backend check --gpu --json` on the lent GPU machine (docs/gpu-check.md).
# That machine's python3 has torch (CUDA), numba, opencv, safetensors; nothing can be fetched there.
# Before the call, here (pip works): echo /.whl/ >> .git/info/exclude, then download into .whl/
# the wheels it lacks, each --no-deps for Python 3.12 (see /work/.library/device/README.md):
#   diffusers==0.42.1 gsplat==1.5.3 plyfile pyzmq  (+ any of their needs the image lacks)
# Call: run(command="bash tools/gpu_check_device.sh", carry=[".whl"], timeout_s=600)
# gsplat compiles its CUDA kernels at first use (minutes); if that fails, the render row says so.
set -o pipefail
LIMIT_S=${GPU_CHECK_LIMIT_S:-540}  # the check aims at <= 8 minutes on an H100; room to rerun
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site VIDEOSCENE_OUTPUT="$OUT/output"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 2
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . || exit 2
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/nvidia-smi.csv"
timeout -s INT "$LIMIT_S" python3 -m videoscene_backend.cli check --gpu --json \
    --output-dir "$OUT/output" 2> >(tee "$OUT/progress.log" >&2) | tee "$OUT/check.txt"
echo "exit code: $?" | tee -a "$OUT/check.txt"
