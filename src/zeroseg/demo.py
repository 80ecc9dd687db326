"""The main job on the embedded default model, offline: ``make demo`` / ``python -m zeroseg.demo``.

Segments real sample photos (shipped with scikit-image) three ways: segment-everything, one point
prompt and one box prompt; then names things zero-shot from a free-text vocabulary: every segment gets a
name, every pixel a label (with a legend), and a text prompt finds its object. Writes overlays a person
can open, plus the records as JSON.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from zeroseg import hub
from zeroseg.errors import ZerosegError
from zeroseg.io import atomic_write, ensure_dir, masks_to_rles, save_png

DEFAULT_OUT = Path("out/demo")
VOCABULARY = ("cat", "cup", "spoon", "person", "flag", "table", "wall", "grass", "sky")
"""Names for the photos; "cat" is a class the lite text head never saw in training (zero-shot)."""
TEXT_PROMPTS = {"coffee": "cup", "chelsea": "cat", "astronaut": "person"}


def sample_photos() -> dict[str, np.ndarray]:
    """A few real photos from scikit-image's bundled data (no download)."""
    from skimage import data

    return {"coffee": data.coffee(), "chelsea": data.chelsea(), "astronaut": data.astronaut()}


def run(out: Path = DEFAULT_OUT, model_name: str = hub.DEFAULT_MODEL) -> list[Path]:
    """Run the demo and return the overlay files written."""
    from zeroseg import MaskGenerator, Predictor, load_namer, text_to_masks
    from zeroseg.viz import label_map_overlay, overlay

    model = hub.load_model(model_name)
    predictor = Predictor(model)
    generator = MaskGenerator(predictor, points_per_side=16, pred_iou_thresh=0.6,
                              stability_score_thresh=0.2, min_mask_region_area=64, progress=True)
    namer = load_namer(VOCABULARY)  # segments may be "none of these" (learned background)
    pixel_namer = load_namer(VOCABULARY, namer.embedder, background=False)  # every pixel gets a name
    ensure_dir(out)
    written = []
    for name, image in sample_photos().items():
        h, w = image.shape[:2]
        records = generator.generate(image)
        masks = [r["segmentation"] for r in records]
        path = out / f"{name}_everything.png"
        save_png(path, overlay(image, np.array(masks) if masks else np.zeros((0, h, w), bool)))
        written.append(path)

        predictor.set_image(image)
        point = np.array([[w / 2, h / 2]])
        pmasks, pscores, _ = predictor.predict(point_coords=point, point_labels=np.array([1]))
        best = int(np.argmax(pscores))
        path = out / f"{name}_point.png"
        save_png(path, overlay(image, pmasks[best:best + 1], scores=pscores[best:best + 1],
                               points=np.c_[point, [1]]))
        written.append(path)

        box = np.array([w * 0.2, h * 0.2, w * 0.8, h * 0.8])
        bmasks, bscores, _ = predictor.predict(box=box, multimask_output=False)
        path = out / f"{name}_box.png"
        save_png(path, overlay(image, bmasks, scores=bscores, boxes=box[None]))
        written.append(path)

        namer.name_records(image, records)
        path = out / f"{name}_named.png"
        save_png(path, overlay(image, np.array(masks) if masks else np.zeros((0, h, w), bool),
                               labels=[r["label"] or "" for r in records]))
        written.append(path)
        path = out / f"{name}_labels.png"
        save_png(path, label_map_overlay(image, pixel_namer.label_pixels(image), namer.vocabulary))
        written.append(path)
        phrase = TEXT_PROMPTS[name]
        found = text_to_masks(image, phrase, predictor, namer, max_instances=1)
        path = out / f"{name}_text.png"
        save_png(path, overlay(image, np.array([r["segmentation"] for r in found]) if found else np.zeros((0, h, w), bool),
                               labels=[phrase] * len(found), scores=[r["score"] for r in found]))
        written.append(path)

        summary = {"image": name, "size": [h, w], "model": model_name,
                   "everything": [{k: v for k, v in r.items() if k != "segmentation"} | {"rle": rle}
                                  for r, rle in zip(records, masks_to_rles(np.array(masks)) if masks else [])],
                   "named": [{"label": r["label"], "label_score": r["label_score"], "bbox": r["bbox"]} for r in records],
                   "text": {"phrase": phrase, "found": [{"bbox": r["bbox"], "score": r["score"]} for r in found]},
                   "point": {"xy": point[0].tolist(), "score": float(pscores[best])},
                   "box": {"xyxy": box.tolist(), "score": float(bscores[0])}}
        atomic_write(out / f"{name}.json", json.dumps(summary, default=float))
        names = sorted({r["label"] for r in records if r["label"]})
        print(f"{name}: {len(records)} segments named {', '.join(names) or '-'}; text {phrase!r}: "
              f"{len(found)} mask(s); point score {pscores[best]:.2f}; box score {bscores[0]:.2f}")
    return written


def main() -> int:
    try:
        hub.get(hub.DEFAULT_MODEL)
    except ZerosegError:
        print("The embedded default model is not shipped yet. To run zeroseg now, use an official checkpoint:\n"
              "  zeroseg models download vit_b   # or put sam_vit_b_01ec64.pth where `zeroseg models` says\n"
              "  zeroseg everything photo.jpg --model vit_b --out out/")
        return 0
    try:
        files = run()
    except ZerosegError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print("overlays written:\n  " + "\n  ".join(str(p) for p in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
