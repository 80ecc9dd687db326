#!/usr/bin/env bash
# Reproduce the shipped zero-shot head of the lite model (src/zeroseg/weights/lite_text.*): train it on the
# seen classes of ../shared/data (MSRC-21 + CamVid train splits, COCO128's train part: its val quarter,
# every 4th labelled image, is never read; every unseen class of zeroseg.data.ZERO_SHOT_SPLITS held out),
# fit calibrated stacking on pseudo-unseen classes, measure MSRC-21 val and COCO128 val naming into the
# sidecar, then copy it into the package.
# Usage: recipes/train_lite_text.sh [OUT_DIR]   (env: STEPS, SEED, THREADS, PYTHON)
# Re-running with the same OUT_DIR resumes from its checkpoints and reuses the feature cache.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/lite_text}
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m zeroseg.train.cli lite-text --out "$OUT" --steps "${STEPS:-600}" --seed "${SEED:-0}" \
    --threads "${THREADS:-1}" --resume
cp "$OUT/lite_text.safetensors" "$OUT/lite_text.json" src/zeroseg/weights/
