"""Merge the val2017 photos of the COCO subsets that recipes/get_lite_data.sh extracts (coco_mini, coco_tiny)
into one COCO instances JSON: a validation set no training step reads (zeroseg.train.sources reads their
train2017 photos only). A photo in both subsets is kept once.

Usage: python recipes/coco_val.py [EXTRA_DATA_DIR] [OUT_DIR]   (defaults /work/data_extra, EXTRA/coco_val2017)
Then: zeroseg eval naming --dataset OUT_DIR/instances_val2017.json   (images from OUT_DIR/images)
"""
import json
import sys
from pathlib import Path

extra = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/data_extra")
out = Path(sys.argv[2]) if len(sys.argv) > 2 else extra / "coco_val2017"
(out / "images").mkdir(parents=True, exist_ok=True)
merged = {"images": [], "annotations": [], "categories": None}
seen: set[str] = set()
for folder in ("coco_mini", "coco_tiny"):
    data = json.loads((extra / folder / "annotations" / "instances_val2017.json").read_text())
    if merged["categories"] is None:
        merged["categories"] = data["categories"]
    elif [c["name"] for c in data["categories"]] != [c["name"] for c in merged["categories"]]:
        raise SystemExit(f"{folder}: another category list")
    keep = {i["id"]: i for i in data["images"] if i["file_name"] not in seen}
    for info in keep.values():
        seen.add(info["file_name"])
        link = out / "images" / info["file_name"]
        if not link.exists():
            link.symlink_to((extra / folder / "val2017" / info["file_name"]).resolve())
        merged["images"].append(info)
    merged["annotations"] += [a for a in data["annotations"] if a["image_id"] in keep]
for number, annotation in enumerate(merged["annotations"], start=1):
    annotation["id"] = number
(out / "instances_val2017.json").write_text(json.dumps(merged))
print(f"{out}: {len(merged['images'])} photos, {len(merged['annotations'])} instances")
