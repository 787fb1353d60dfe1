#!/bin/bash
# The packages scripts/gpu_check.py needs that the device machine's image lacks (it has torch,
# torchvision, numpy, pillow, onnx, onnxruntime, safetensors, tqdm, pyyaml), as Python 3.12 x86-64
# wheels in .whl/ (git-ignored), at the versions of this checkout's .venv. Run here, before the
# device call that carries .whl (scripts/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
pins=$($PY -m pip freeze | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|pycocotools|tensorboardx|ijson)==')
rm -rf .whl && mkdir -p .whl
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl $pins
ls -1 .whl
du -sh .whl
