#!/usr/bin/env bash
# Reproduce the shipped lite head (src/zeroseg/weights/lite_prompt.*): train it on ../shared/data
# (COCO128 + CamVid + MSRC train splits; never GrabCut/Berkeley) on the CPU, then copy it into the package.
# Usage: recipes/train_lite_prompt.sh [OUT_DIR]   (env: STEPS, SEED, THREADS, PYTHON)
# Re-running with the same OUT_DIR resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/lite_prompt}
PYTHON=${PYTHON:-.venv/bin/python}
resume=()
[[ -f "$OUT/checkpoint.pt" ]] && resume=(--resume)
"$PYTHON" -m zeroseg.train.cli lite-prompt --out "$OUT" --steps "${STEPS:-8000}" --seed "${SEED:-0}" \
    --threads "${THREADS:-2}" "${resume[@]}"
cp "$OUT/lite_prompt.safetensors" "$OUT/lite_prompt.json" src/zeroseg/weights/
