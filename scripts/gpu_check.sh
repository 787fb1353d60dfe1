#!/bin/bash
# The GPU check as one device command (issue 37): the carried wheels (scripts/gpu_wheels.sh) go
# to /tmp/site, then scripts/gpu_check.py runs (at most ~8 minutes on one H100/H200) and leaves
# gpu-check.json, perf-gpu-<time>.json and its log under $OUT. From the repository root:
#   device run: command "bash scripts/gpu_check.sh", carry [".whl"], timeout_s 560
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "gpu_check: the wheels in .whl/ did not install (run scripts/gpu_wheels.sh here first)" >&2; exit 3; }
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
timeout 510 python3 scripts/gpu_check.py --out "$out" 2>&1 | tee "$out/gpu-check.log"
