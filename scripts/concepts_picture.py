"""The picture of docs/models/concepts.md: a concept prompt run end to end on a tiny SAM 3 with RANDOM
weights (no real weights can be fetched here), drawn with the prompt and clearly labelled as such.

Builds the tests' tiny random ``Sam3Model`` (tests/test_sam3_concepts.py), saves it with
``save_pretrained``, loads it with ``build_sam3`` and runs ``concept_masks`` on scikit-image's coffee
photo with a phrase, one positive and one negative exemplar box.

    python scripts/concepts_picture.py [--out docs/images/concepts_random_weights.png]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_sam3_concepts import write_tiny_sam3  # noqa: E402

from zeroseg.models.hf.sam3 import build_sam3  # noqa: E402
from zeroseg.segment.concept import concept_masks  # noqa: E402
from zeroseg.viz import overlay  # noqa: E402

PHRASE = "a cup"
EXEMPLARS = [((200, 40, 440, 250), True), ((20, 280, 160, 390), False)]
SHOWN = 3  # best instances drawn
BANNER = "RANDOM WEIGHTS: a tiny untrained SAM 3 - the flow, not the quality"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "concepts_random_weights.png")
    args = parser.parse_args()
    image = data.coffee()
    with tempfile.TemporaryDirectory() as folder:
        model = build_sam3(write_tiny_sam3(Path(folder)))
        segments = concept_masks(image, model, PHRASE, EXEMPLARS)[:SHOWN]
    print(f"{len(segments)} instance(s) drawn of those found for {PHRASE!r} + {len(EXEMPLARS)} exemplars")
    picture = overlay(image, np.stack([s.mask for s in segments]), labels=[s.label for s in segments],
                      scores=[s.label_score for s in segments])  # fmt: skip
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=15)
    for box, positive in EXEMPLARS:
        colour = (40, 220, 60) if positive else (235, 40, 40)
        draw.rectangle(box, outline=colour, width=4)
        caption = "exemplar +" if positive else "exemplar -"
        left, top, right, bottom = draw.textbbox((box[0] + 6, box[1] + 4), caption, font=font)
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=(0, 0, 0))
        draw.text((box[0] + 6, box[1] + 4), caption, fill=colour, font=font)
    canvas = Image.new("RGB", (picture.width, picture.height + 58), (0, 0, 0))
    canvas.paste(picture, (0, 58))
    top = ImageDraw.Draw(canvas)
    top.text((10, 6), BANNER, fill=(255, 80, 80), font=ImageFont.load_default(size=17))
    top.text((10, 32), f'prompt: "{PHRASE}" + exemplar boxes (green: more like this, red: not like this)',
             fill=(255, 255, 255), font=font)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
