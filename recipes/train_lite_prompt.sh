#!/usr/bin/env bash
# Reproduce the shipped lite head (src/zeroseg/weights/lite_prompt.*) on the CPU, then copy it into the package.
# v3 (shipped): fine-tune the v2 head (kept in git history) together with the backbone's last 11 blocks, 2,000 steps,
# on ../shared/data train splits plus the extra sets of recipes/get_lite_data.sh (their train splits; never
# GrabCut/Berkeley photos). v2 was the v1 head (the plain 8,000-step run on ../shared/data) fine-tuned the same way with
# the backbone frozen: INIT=runs/lite_prompt_v1.safetensors INIT_COMMIT=5011f2e TUNED_BLOCKS=0 THREADS=1.
# Usage: recipes/train_lite_prompt.sh [OUT_DIR] [EXTRA_DATA_DIR]
#   env: STEPS (default 2000), SEED, THREADS (1 is fastest on a busy machine), EXTRA_LIMIT (images per extra set),
#   INIT (head weights to start from; empty: a random head, as v1; taken from git at INIT_COMMIT when missing), LR,
#   FLIPS (1: also mirror images), TUNED_BLOCKS (fine-tune the backbone's last N blocks too, default 11),
#   TUNED_LR_SCALE (their learning rate relative to LR, default 0.2), PART_WEIGHT (machine-made part targets per
#   object, default 0), PART_SOURCES (comma-separated sources that get them, default all), PASTE_PROB (share of
#   sampled photos that get a copy of an object pasted beside it, default 0), INSTALL (0: do not copy
#   the result into the package), BACKBONE (lite0 or lite2; default: INIT's; with INIT on another backbone
#   the new image encoder is first fitted to INIT's embedding for DISTILL_STEPS steps, default 500), BOX_MARGIN
#   (widen training boxes by up to this share of their side, default 0), CACHE (feature cache folder, default
#   OUT/cache; the frozen backbone features do not depend on the head), SOURCES (comma-separated training sources;
#   default v3's: the shared sets and every extra set but coco), PYTHON.
# Re-running with the same OUT_DIR resumes from its checkpoint (and reuses its feature cache).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/lite_prompt}
EXTRA=${2:-/work/data_extra}
PYTHON=${PYTHON:-.venv/bin/python}
INIT=${INIT-runs/lite_prompt_v2.safetensors}
INIT_COMMIT=${INIT_COMMIT:-e950bcf}  # the commit that shipped the v2 head
args=(--out "$OUT" --steps "${STEPS:-2000}" --seed "${SEED:-0}" --threads "${THREADS:-2}" --lr "${LR:-5e-4}")
# v3's sources (the CLI's default takes every extra set, the COCO 2017 subsets included)
[[ -d "$EXTRA" ]] && args+=(--extra-data "$EXTRA" --extra-limit "${EXTRA_LIMIT:-250}"
                           --sources "${SOURCES:-coco128,camvid,msrc21,bsds,ccp,horse,human,feral_cat,pets}")
[[ "${FLIPS:-0}" == 1 ]] || args+=(--no-flips)
args+=(--tuned-blocks "${TUNED_BLOCKS:-11}" --tuned-lr-scale "${TUNED_LR_SCALE:-0.2}" --part-weight "${PART_WEIGHT:-0}"
      --paste-prob "${PASTE_PROB:-0}" --box-margin "${BOX_MARGIN:-0}")
[[ -n "${PART_SOURCES:-}" ]] && args+=(--part-sources "$PART_SOURCES")
[[ -n "${CACHE:-}" ]] && args+=(--cache-dir "$CACHE")
[[ -n "${BACKBONE:-}" ]] && args+=(--backbone "$BACKBONE" --distill-steps "${DISTILL_STEPS:-500}")
if [[ -n "$INIT" ]]; then
    if [[ ! -f "$INIT" ]]; then  # the earlier head, from the commit that shipped it
        mkdir -p "$(dirname "$INIT")"
        git show "$INIT_COMMIT":src/zeroseg/weights/lite_prompt.safetensors > "$INIT"
        git show "$INIT_COMMIT":src/zeroseg/weights/lite_prompt.json > "${INIT%.safetensors}.json"
    fi
    args+=(--init "$INIT")
fi
[[ -f "$OUT/checkpoint.pt" ]] && args+=(--resume)
"$PYTHON" -m zeroseg.train.cli lite-prompt "${args[@]}"
if [[ "${INSTALL:-1}" == 1 ]]; then  # INSTALL=0: an experiment, leave the shipped head alone
    cp "$OUT/lite_prompt.safetensors" "$OUT/lite_prompt.json" src/zeroseg/weights/
fi
