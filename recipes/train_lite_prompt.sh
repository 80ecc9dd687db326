#!/usr/bin/env bash
# Reproduce the shipped lite head (src/zeroseg/weights/lite_prompt.*) on the CPU, then copy it into the package.
# v2: fine-tune the v1 head (the plain 8,000-step run on ../shared/data, kept in git history) on ../shared/data train
# splits plus the extra sets of recipes/get_lite_data.sh (their train splits; never GrabCut/Berkeley photos).
# Usage: recipes/train_lite_prompt.sh [OUT_DIR] [EXTRA_DATA_DIR]
#   env: STEPS, SEED, THREADS (1 is fastest on a busy machine), EXTRA_LIMIT (images per extra set), INIT (head
#   weights to start from; empty: a random head, as v1), LR, FLIPS (1: also mirror images), TUNED_BLOCKS (fine-tune
#   the backbone's last N blocks too), TUNED_LR_SCALE (their learning rate relative to LR), CACHE (feature cache
#   folder, default OUT/cache; the frozen backbone features do not depend on the head), PYTHON.
# Re-running with the same OUT_DIR resumes from its checkpoint (and reuses its feature cache).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/lite_prompt}
EXTRA=${2:-/work/data_extra}
PYTHON=${PYTHON:-.venv/bin/python}
INIT=${INIT-runs/lite_prompt_v1.safetensors}
args=(--out "$OUT" --steps "${STEPS:-6000}" --seed "${SEED:-0}" --threads "${THREADS:-1}" --lr "${LR:-5e-4}")
[[ -d "$EXTRA" ]] && args+=(--extra-data "$EXTRA" --extra-limit "${EXTRA_LIMIT:-250}")
[[ "${FLIPS:-0}" == 1 ]] || args+=(--no-flips)
[[ -n "${TUNED_BLOCKS:-}" ]] && args+=(--tuned-blocks "$TUNED_BLOCKS" --tuned-lr-scale "${TUNED_LR_SCALE:-0.1}")
[[ -n "${CACHE:-}" ]] && args+=(--cache-dir "$CACHE")
if [[ -n "$INIT" ]]; then
    if [[ ! -f "$INIT" ]]; then  # the v1 head, from the commit that shipped it
        mkdir -p "$(dirname "$INIT")"
        git show 5011f2e:src/zeroseg/weights/lite_prompt.safetensors > "$INIT"
        git show 5011f2e:src/zeroseg/weights/lite_prompt.json > "${INIT%.safetensors}.json"
    fi
    args+=(--init "$INIT")
fi
[[ -f "$OUT/checkpoint.pt" ]] && args+=(--resume)
"$PYTHON" -m zeroseg.train.cli lite-prompt "${args[@]}"
cp "$OUT/lite_prompt.safetensors" "$OUT/lite_prompt.json" src/zeroseg/weights/
