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
from typing import Any

import numpy as np

from zeroseg import hub
from zeroseg.errors import ZerosegError
from zeroseg.io import atomic_write, ensure_dir, save_png

DEFAULT_OUT = Path("out/demo")
VOCABULARY = ("cat", "cup", "spoon", "person", "flag", "table", "wall", "grass", "sky")
"""Names for the photos; "cat" is a class the lite text head never saw in training (zero-shot)."""
TEXT_PROMPTS = {"coffee": "cup", "chelsea": "cat", "astronaut": "person"}
PROMPTS = {  # where a person would click on the main object, and the box they would drag around it
    "coffee": {"point": (300, 60), "box": (165, 12, 430, 310)},  # the cup's rim; the cup
    "chelsea": {"point": (225, 150), "box": (40, 0, 405, 300)},  # the cat's face
    "astronaut": {"point": (200, 330), "box": (15, 10, 370, 512)},  # her suit; the astronaut
}
"""Prompts in pixels of the sample photos; another photo gets its centre and its middle 60%."""


def sample_photos() -> dict[str, np.ndarray]:
    """A few real photos from scikit-image's bundled data (no download)."""
    from skimage import data

    return {"coffee": data.coffee(), "chelsea": data.chelsea(), "astronaut": data.astronaut()}


def run(
    out: Path = DEFAULT_OUT,
    model_name: str = hub.DEFAULT_MODEL,
    photos: dict[str, np.ndarray] | None = None,
    **overrides: Any,
) -> list[Path]:
    """Run the demo on ``photos`` (default :func:`sample_photos`) and return the overlay files written;
    ``overrides`` change fields of the model's preset (as the CLI's flags do)."""
    from zeroseg import Predictor, text_to_masks
    from zeroseg.segment.pipeline import Everything, label_pixels, namer_for
    from zeroseg.viz import label_map_overlay, name_captions, overlay

    model = hub.load_model(model_name)
    settings = hub.preset_of(model).override(**overrides)  # the model's defaults, as `zeroseg everything`
    predictor = Predictor(model)
    namer = namer_for(VOCABULARY, settings)  # every segment gets its best name, as `everything --names` does
    text_namer = namer_for(VOCABULARY, settings, embedder=namer.embedder, text=True)  # text may match nothing
    everything = Everything(predictor, settings, namer, progress=True)
    ensure_dir(out)
    written = []
    for name, image in (sample_photos() if photos is None else photos).items():
        h, w = image.shape[:2]
        segments = everything(image)
        masks = np.array([s.mask for s in segments]) if segments else np.zeros((0, h, w), bool)
        path = out / f"{name}_everything.png"
        save_png(path, overlay(image, masks))
        written.append(path)

        predictor.set_image(image)
        prompts = PROMPTS.get(name, {"point": (w / 2, h / 2), "box": (w * 0.2, h * 0.2, w * 0.8, h * 0.8)})
        point = np.array([prompts["point"]], dtype=np.float64)
        pmasks, pscores, _ = predictor.predict(point_coords=point, point_labels=np.array([1]))
        best = int(np.argmax(pscores))
        path = out / f"{name}_point.png"
        save_png(path, overlay(image, pmasks[best:best + 1], scores=pscores[best:best + 1],
                               points=np.c_[point, [1]]))
        written.append(path)

        box = np.array(prompts["box"], dtype=np.float64)
        bmasks, bscores, _ = predictor.predict(box=box, multimask_output=False)
        path = out / f"{name}_box.png"
        save_png(path, overlay(image, bmasks, scores=bscores, boxes=box[None]))
        written.append(path)

        path = out / f"{name}_named.png"
        names, scores = name_captions(segments)
        save_png(path, overlay(image, masks, labels=names, scores=scores, by_label=True))
        written.append(path)
        path = out / f"{name}_labels.png"
        save_png(path, label_map_overlay(image, label_pixels(image, namer, predictor), namer.vocabulary))
        written.append(path)
        phrase = TEXT_PROMPTS.get(name, VOCABULARY[0])
        found = text_to_masks(image, phrase, predictor, text_namer, max_instances=1)
        path = out / f"{name}_text.png"
        save_png(path, overlay(image, np.array([s.mask for s in found]) if found else np.zeros((0, h, w), bool),
                               labels=[phrase] * len(found), scores=[s.predicted_iou for s in found]))
        written.append(path)

        summary = {"image": name, "size": [h, w], "model": {"name": model.name, "version": model.version},
                   "settings": settings.to_dict(),
                   "everything": [s.to_dict() for s in segments],
                   "text": {"phrase": phrase, "found": [{"bbox": s.bbox, "score": s.predicted_iou} for s in found]},
                   "point": {"xy": point[0].tolist(), "score": float(pscores[best])},
                   "box": {"xyxy": box.tolist(), "score": float(bscores[0])}}
        atomic_write(out / f"{name}.json", json.dumps(summary, default=float))
        names = sorted({s.label for s in segments if s.label})
        print(f"{name}: {len(segments)} segments named {', '.join(names) or '-'}; text {phrase!r}: "
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
