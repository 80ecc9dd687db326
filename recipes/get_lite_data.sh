#!/usr/bin/env bash
# Extract the extra training sets of the lite head (zeroseg.train.sources) from public GitHub repositories into
# OUT_DIR (default /work/data_extra). Never commit them: point training at the folder instead
# (`zeroseg train lite-prompt --extra-data OUT_DIR`, recipes/train_lite_prompt.sh, recipes/interactive_val.py).
#
# Usage: recipes/get_lite_data.sh [OUT_DIR]
#   env MIRRORS=DIR: read DIR/<owner>+<name>/repo (a bare git dir or a checkout's .git) instead of cloning.
# Each repository is read at the commit below (what the shipped head was trained on).
#
# folder          repository @ commit                                   what, terms
# bsds500         Sisso16/ssn_pytorch @ c4f9ac8                         BSDS500 (Arbelaez et al. 2011): 500 photos,
#                                                                       5-6 human region maps each; research use.
#                                                                       The 99 GrabCut/Berkeley photos are skipped
#                                                                       by the reader, not here.
# sod             ArcherFMY/sal_eval_toolbox @ b4696d6                  SOD salient-object masks of 300 BSDS photos
#                                                                       (Movahedi & Elder 2010); toolbox MIT, masks
#                                                                       research use.
# ccp             bearpaw/clothing-co-parsing @ fe34fb7                 Clothing Co-Parsing (Yang et al. 2014): 1,004
#                                                                       garment maps; repo Apache-2.0, photos
#                                                                       research use.
# weizmann_horse  shenshutao/image_segmentation @ 2653401               Weizmann horses (Borenstein & Ullman 2002):
#                                                                       328 figure-ground masks; research use.
# human_seg       VikramShenoy97/Human-Segmentation-Dataset @ fe4efc5   290 people; masks made with remove.bg and
#                                                                       checked by the author, photos from Google
#                                                                       Images and GRAZ-01; no licence stated.
# feral_cat       pcashman21/feral-cat-segmentation-dataset-and-model   Roboflow export (public domain per its
#                   @ c7cdfa4                                           data.yaml, repo MIT): cat polygons, 3
#                                                                       augmented copies per photo (reader keeps one).
# pets_sample     Naveen-Dodda/Sample_Pets_dataset @ 9281626            Oxford-IIIT Pet (Parkhi et al. 2012) subsets
# pets_simon      simonhansen1999/PetClassification @ 1b52994           with trimaps; CC BY-SA 4.0.
# coco_mini       Obmutescence/COCO-MINI @ 644f29e                      COCO 2017 subsets (Lin et al. 2014): 80 train
# coco_tiny       zzowenzz/COCO_Tiny @ e7a689f                          + 79 / 80 val photos each, all their instance
#                                                                       masks (80 names); annotations CC BY 4.0,
#                                                                       photos Flickr's terms (COCO's terms of use).
#                                                                       Training reads train2017 only; val2017 is
#                                                                       validation (recipes/coco_val.py), none in
#                                                                       coco128.
set -euo pipefail
OUT=${1:-/work/data_extra}
MIRRORS=${MIRRORS:-}
mkdir -p "$OUT"

gitdir() {  # owner/name commit -> a git dir holding that commit
    local repo=$1 commit=$2 local_dir
    if [[ -n "$MIRRORS" ]]; then
        local_dir="$MIRRORS/${repo/\//+}/repo"
        [[ -d "$local_dir/.git" ]] && local_dir="$local_dir/.git"
        echo "$local_dir"
        return
    fi
    local_dir="$OUT/.git-cache/${repo/\//+}.git"
    if [[ ! -d "$local_dir" ]]; then
        git clone --quiet --bare "https://github.com/$repo.git" "$local_dir" >&2
    fi
    echo "$local_dir"
}

extract() {  # folder owner/name commit paths...
    local folder=$1 repo=$2 commit=$3
    shift 3
    local dir
    dir=$(gitdir "$repo" "$commit")
    if [[ -f "$OUT/$folder/COMMIT" ]]; then
        echo "$folder: already there"
        return
    fi
    mkdir -p "$OUT/$folder"
    git --git-dir="$dir" archive "$commit" "$@" | tar x -C "$OUT/$folder"
    git --git-dir="$dir" rev-parse "$commit" > "$OUT/$folder/COMMIT"
    echo "$folder: $repo @ $commit"
}

extract bsds500 Sisso16/ssn_pytorch c4f9ac8c43397cbacbf2e2ba1505efafa769435d BSR/BSDS500/data
extract sod ArcherFMY/sal_eval_toolbox b4696d6846611529ff5a246ff892a4fd548a70c2 tools/GroundTruth/SOD LICENSE
extract ccp bearpaw/clothing-co-parsing fe34fb77721a9973fbae92c05f7f12b664d10110 \
    photos annotations/pixel-level label_list.mat LICENSE README.md
extract weizmann_horse shenshutao/image_segmentation 2653401d6ea617026895aac17059eb57e017abcb weizmann_horse_db
extract human_seg VikramShenoy97/Human-Segmentation-Dataset fe4efc56003005a58b7d2449aa563a20e3861e24 \
    Training_Images Ground_Truth README.md
extract feral_cat pcashman21/feral-cat-segmentation-dataset-and-model c7cdfa43c095a1f9d1892754bcc201e971e375f1 \
    feral-cat-segmentation.v1i.yolov8 LICENSE README.md
extract pets_sample Naveen-Dodda/Sample_Pets_dataset 9281626a62066c09f278b9b41ac4bad3683d7541 \
    images trimaps annotations/trimaps README.md
extract pets_simon simonhansen1999/PetClassification 1b52994357192034951537a9e53372bcfe4def97 data README.md
extract coco_mini Obmutescence/COCO-MINI 644f29e7c1d2eefd9c4412d39bc5b0ee6fd0afd4 \
    train2017 val2017 annotations/instances_train2017.json annotations/instances_val2017.json Readme.md
extract coco_tiny zzowenzz/COCO_Tiny e7a689f7d6d1a1908df287c3e79eccdadfdba1fe \
    train2017 val2017 annotations/instances_train2017.json annotations/instances_val2017.json README.md
"${PYTHON:-.venv/bin/python}" "$(dirname "$0")/check_lite_data.py" "$OUT"  # no GrabCut/Berkeley photo among the BSDS ones
