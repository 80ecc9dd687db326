#!/usr/bin/env bash
# Reproduce the shipped zero-shot head of the lite model (src/zeroseg/weights/lite_text.*): train it on the
# seen classes of ../shared/data (MSRC-21 + CamVid train splits, COCO128's train part: its val quarter,
# every 4th labelled image, is never read; every unseen class of zeroseg.data.ZERO_SHOT_SPLITS held out) and of
# the extra named sets of recipes/get_lite_data.sh (their train splits: Clothing Co-Parsing's garments, people,
# horses; since the seventeenth session also the COCO 2017 subsets' train2017 photos), fit calibrated stacking on
# pseudo-unseen classes, measure MSRC-21 val and COCO128 val naming into the sidecar, then copy it into the package.
# Usage: recipes/train_lite_text.sh [OUT_DIR] [EXTRA_DATA_DIR]
#   env: STEPS (default 950), SEED, THREADS, PYTHON, EXTRA_SOURCES (default "ccp=0.15 human=0.05 horse=0.05 coco=0.1";
#   without coco and STEPS=800: the head of the eighth to sixteenth sessions; empty, or no EXTRA_DATA_DIR: the shared
#   data only, as the head before the eighth session with STEPS=600).
# Re-running with the same OUT_DIR resumes from its checkpoints and reuses the feature cache.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/lite_text}
EXTRA=${2:-/work/data_extra}
PYTHON=${PYTHON:-.venv/bin/python}
EXTRA_SOURCES=${EXTRA_SOURCES-ccp=0.15 human=0.05 horse=0.05 coco=0.1}
args=(--out "$OUT" --steps "${STEPS:-950}" --seed "${SEED:-0}" --threads "${THREADS:-2}" --resume)
if [[ -d "$EXTRA" && -n "$EXTRA_SOURCES" ]]; then
    args+=(--extra-data "$EXTRA")
    for source in $EXTRA_SOURCES; do args+=(--extra-source "$source"); done
fi
"$PYTHON" -m zeroseg.train.cli lite-text "${args[@]}"
cp "$OUT/lite_text.safetensors" "$OUT/lite_text.json" src/zeroseg/weights/
