"""Click-based evaluation of interactive segmentation (the NoC protocol of RITM / f-BRS).

A simulated user clicks at the centre of the largest error (:func:`~zeroseg.eval.clicks.next_click`)
until the mask reaches the IoU threshold or ``max_clicks`` is spent. NoC@t is the mean number of
clicks needed to reach IoU t (``max_clicks`` when never reached). Pixels marked "ignore" in the
ground truth (GrabCut's uncertain boundary band) count neither for clicks nor for IoU.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, overload

import numpy as np
from PIL import Image
from tqdm import tqdm

from zeroseg.errors import DatasetError
from zeroseg.eval.clicks import Click, next_click
from zeroseg.io import load_image
from zeroseg.data import data_root
from zeroseg.segment.zoom import ZoomIn, ZoomSettings

Box = tuple[float, float, float, float]

#: Clicks at which mean IoU is reported (``miou_at_<k>``).
MIOU_CLICKS = (1, 5)
LOOSE_BOX_MARGIN = 0.1
"""How far a loose box reaches beyond the object on each side, as a share of the object's width or height."""


# --- models -------------------------------------------------------------------------------
class InteractiveModel(Protocol):
    """What the evaluation needs from a model: embed an image once, then answer clicks or a box.

    ``predict`` gets all clicks so far and whatever low-resolution output it returned for the
    previous click (``None`` on the first); it returns a bool HxW mask in image pixels and its
    own low-resolution output to be handed back next time (or ``None``).
    """

    supports_box: bool

    def set_image(self, image: np.ndarray) -> None: ...

    def predict(
        self, clicks: list[Click], prev_low_res: np.ndarray | None, box: Box | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


class PredictorModel:
    """Adapts a SAM-style predictor (``set_image``; ``predict(point_coords, point_labels, box,
    mask_input, multimask_output) -> masks, scores, low_res_logits``) to :class:`InteractiveModel`.

    Follows the usual SAM click evaluation: a lone first click is ambiguous, so it asks for several
    masks and keeps the best-scored; later clicks ask for one mask, refining the previous low-res
    logits passed as ``mask_input``. A box alone gives one mask. With ``zoom_in``, clicks after the
    first (and a box) are answered in a crop around the object (:class:`~zeroseg.segment.zoom.ZoomIn`),
    and with ``first_look`` also a first click when the object fits in a crop around it.
    """

    supports_box = True

    def __init__(self, predictor: Any, zoom_in: bool = False, first_look: bool = False) -> None:
        self.predictor = predictor
        self.zoom = ZoomIn(predictor, ZoomSettings(first_look=first_look)) if zoom_in else None

    def set_image(self, image: np.ndarray) -> None:
        (self.zoom or self.predictor).set_image(image)

    def predict(
        self, clicks: list[Click], prev_low_res: np.ndarray | None, box: Box | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        coords = np.array([[c.x, c.y] for c in clicks], dtype=np.float32) if clicks else None
        labels = np.array([int(c.positive) for c in clicks], dtype=np.int64) if clicks else None
        if self.zoom is not None and prev_low_res is None:
            self.zoom.start_object()
        masks, scores, low_res = (self.zoom or self.predictor).predict(
            point_coords=coords,
            point_labels=labels,
            box=None if box is None else np.asarray(box, dtype=np.float32),
            mask_input=None if prev_low_res is None else prev_low_res.reshape(1, *prev_low_res.shape[-2:]),
            multimask_output=box is None and prev_low_res is None and len(clicks) == 1,
        )
        best = int(np.argmax(scores))
        return np.asarray(masks[best], dtype=bool), np.asarray(low_res[best : best + 1])


# --- datasets -----------------------------------------------------------------------------
@dataclass(frozen=True)
class InteractiveSample:
    """One object to segment: RGB uint8 image, bool object mask, bool ignore mask (or None)."""

    name: str
    image: np.ndarray
    gt: np.ndarray
    ignore: np.ndarray | None = None


#: Datasets shipped in the shared data folder: folder name -> mask value that means "ignore".
KNOWN_DATASETS: dict[str, int | None] = {"grabcut": 128, "berkeley": None}

#: Mask values of a trimap: background, ignore band, object.
TRIMAP_VALUES = frozenset({0, 128, 255})


def read_mask_values(path: Path) -> np.ndarray:
    """Raw values of a mask image as HxW integers (first channel of a colour mask)."""
    try:
        with Image.open(path) as img:
            values = np.asarray(img)
    except OSError as exc:
        raise DatasetError(f"cannot read mask {path}: {exc}") from exc
    return (values[..., 0] if values.ndim == 3 else values).astype(np.int64)


def decode_mask(values: np.ndarray, ignore_value: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Object and ignore masks from raw mask values.

    ``ignore_value`` pixels are ignored; of the others, a 0/1 mask's 1s are the object, and any
    other mask is thresholded at 128 (so anti-aliased 0/255 edges split evenly).
    """
    ignore = values == ignore_value if ignore_value is not None else None
    gt = values >= 128 if values.max() > 1 else values == 1
    if ignore is not None:
        gt &= ~ignore
    return gt, ignore


def detect_ignore_value(mask_paths: Sequence[Path]) -> int | None:
    """128 when the masks are trimaps (values within {0, 128, 255}, some 128), else None."""
    seen: set[int] = set()
    for path in mask_paths:
        values = set(np.unique(read_mask_values(path)).tolist())
        if not values <= TRIMAP_VALUES:
            return None
        seen |= values
    return 128 if 128 in seen else None


class InteractiveDataset(Sequence[InteractiveSample]):
    """A folder of (image, object mask) pairs listed in ``index.csv``, loaded lazily."""

    def __init__(self, root: Path, pairs: Sequence[tuple[Path, Path]], ignore_value: int | None) -> None:
        self.root = root
        self.pairs = list(pairs)
        self.ignore_value = ignore_value

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> InteractiveSample: ...
    @overload
    def __getitem__(self, index: slice) -> InteractiveDataset: ...

    def __getitem__(self, index: int | slice) -> InteractiveSample | InteractiveDataset:
        if isinstance(index, slice):
            return InteractiveDataset(self.root, self.pairs[index], self.ignore_value)
        image_path, mask_path = self.pairs[index]
        image = load_image(image_path)
        gt, ignore = decode_mask(read_mask_values(mask_path), self.ignore_value)
        if gt.shape != image.shape[:2]:
            raise DatasetError(f"mask {mask_path} is {gt.shape}, its image {image_path} is {image.shape[:2]}")
        if not gt.any():
            raise DatasetError(f"mask {mask_path} has no object pixels")
        return InteractiveSample(mask_path.stem, image, gt, ignore)


def load_interactive_dataset(
    name_or_path: str | Path, ignore_value: int | None | Literal["auto"] = "auto"
) -> InteractiveDataset:
    """Open ``"grabcut"``, ``"berkeley"`` (from the shared data folder, ``$ZEROSEG_DATA``) or a folder whose
    ``index.csv`` has ``image`` and ``mask`` columns (paths relative to the folder).

    ``ignore_value`` is the mask value to ignore; ``"auto"`` uses the known dataset's convention
    (GrabCut: 128) or, for a folder, 128 if its masks are {0, 128, 255} trimaps.
    """
    name = str(name_or_path)
    root = data_root() / name if name in KNOWN_DATASETS else Path(name_or_path)
    index = root / "index.csv"
    if not index.is_file():
        known = ", ".join(KNOWN_DATASETS)
        raise DatasetError(f"{root} is not an interactive dataset: no index.csv (known names: {known})")
    with index.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", "mask"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{index} lacks column(s) {', '.join(sorted(missing))}")
        pairs = [(root / (row["image"] or ""), root / (row["mask"] or "")) for row in reader]
    absent = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if absent:
        raise DatasetError(f"{index} lists {len(absent)} missing file(s), e.g. {absent[0]}")
    if ignore_value == "auto":
        known = name in KNOWN_DATASETS
        ignore_value = KNOWN_DATASETS[name] if known else detect_ignore_value([mask for _, mask in pairs])
    return InteractiveDataset(root, pairs, ignore_value)


# --- metrics ------------------------------------------------------------------------------
def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two bool masks outside ``ignore`` (1.0 when both are empty)."""
    valid = np.ones_like(gt, dtype=bool) if ignore is None else ~ignore
    union = np.count_nonzero((pred | gt) & valid)
    return np.count_nonzero(pred & gt & valid) / union if union else 1.0


def mask_box(mask: np.ndarray) -> Box:
    """Tight XYXY box of a bool mask, in pixel indices (x1, y1 inclusive); a mask one pixel wide or
    high gets a box one pixel wide or high (a box prompt needs an area)."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def loose_box(box: Box, shape: tuple[int, ...], margin: float = LOOSE_BOX_MARGIN) -> Box:
    """``box`` widened by ``margin`` of its width and height on every side, within an image of ``shape``:
    the box a person drags around an object, rarely tight."""
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    height, width = shape[:2]
    return max(0.0, x0 - dx), max(0.0, y0 - dy), min(width - 1.0, x1 + dx), min(height - 1.0, y1 + dy)


def clicks_to_reach(ious: Sequence[float], threshold: float, max_clicks: int) -> int:
    """Number of clicks after which IoU first reaches ``threshold`` (``max_clicks`` if never)."""
    return next((k for k, iou in enumerate(ious, start=1) if iou >= threshold), max_clicks)


def _threshold_key(threshold: float) -> str:
    return f"{threshold * 100:g}"


def _click_session(
    model: InteractiveModel, sample: InteractiveSample, max_clicks: int, stop_iou: float, min_clicks: int
) -> tuple[list[float], int, float]:
    """IoU after each simulated click, the number of ``model.predict`` calls and their seconds.

    Stops once IoU reaches ``stop_iou`` after at least ``min_clicks`` clicks: no reported metric
    depends on later clicks. When no error pixel is left to click, the mask stays as it is.
    """
    pred = np.zeros_like(sample.gt)
    low_res: np.ndarray | None = None
    clicks: list[Click] = []
    ious: list[float] = []
    seconds = 0.0
    while len(ious) < max_clicks:
        click = next_click(pred, sample.gt, sample.ignore, clicks)
        if click is not None:
            clicks.append(click)
            start = time.perf_counter()
            pred, low_res = model.predict(list(clicks), low_res)
            seconds += time.perf_counter() - start
            pred = np.asarray(pred, dtype=bool)
            if pred.shape != sample.gt.shape:
                raise ValueError(f"model returned a {pred.shape} mask for a {sample.gt.shape} image")
        ious.append(mask_iou(pred, sample.gt, sample.ignore))
        if len(ious) >= min_clicks and ious[-1] >= stop_iou:
            break
    return ious, len(clicks), seconds


def evaluate(
    model: InteractiveModel,
    dataset: Sequence[InteractiveSample],
    max_clicks: int = 20,
    thresholds: Sequence[float] = (0.85, 0.90),
    progress: bool = True,
) -> dict[str, Any]:
    """Run the NoC protocol over every object of ``dataset``.

    Returns ``noc<t>`` per threshold (e.g. ``noc85``, ``noc90``), ``miou_at_1`` and ``miou_at_5``
    (None if ``max_clicks`` is smaller), ``fail<t>`` for the highest threshold (objects never
    reaching it), ``box_miou`` (one tight GT box per object; None if the model takes no box),
    ``loose_box_miou`` (the box widened as :func:`loose_box`, as people draw them; None likewise),
    ``n_objects``, ``seconds_per_click`` (mean time of ``predict`` per click) and ``per_object``.
    """
    if max_clicks < 1:
        raise ValueError("max_clicks must be at least 1")
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        raise ValueError(f"thresholds must be IoUs in (0, 1], got {thresholds}")
    if len(dataset) == 0:
        raise DatasetError("the dataset has no objects to evaluate")
    top = max(thresholds)
    supports_box = getattr(model, "supports_box", False)
    min_clicks = min(max(MIOU_CLICKS), max_clicks)
    per_object: list[dict[str, Any]] = []
    predict_seconds, n_clicks = 0.0, 0
    for sample in tqdm(dataset, desc="objects", disable=not progress):
        model.set_image(sample.image)
        ious, clicks, seconds = _click_session(model, sample, max_clicks, top, min_clicks)
        predict_seconds, n_clicks = predict_seconds + seconds, n_clicks + clicks
        record: dict[str, Any] = {
            "name": sample.name,
            "ious": ious,
            **{f"noc{_threshold_key(t)}": clicks_to_reach(ious, t, max_clicks) for t in thresholds},
        }
        if supports_box:
            box_mask, _ = model.predict([], None, box=mask_box(sample.gt))
            record["box_iou"] = mask_iou(box_mask, sample.gt, sample.ignore)
            box_mask, _ = model.predict([], None, box=loose_box(mask_box(sample.gt), sample.gt.shape))
            record["loose_box_iou"] = mask_iou(box_mask, sample.gt, sample.ignore)
        per_object.append(record)

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    results: dict[str, Any] = {
        f"noc{_threshold_key(t)}": mean([r[f"noc{_threshold_key(t)}"] for r in per_object]) for t in thresholds
    }
    for k in MIOU_CLICKS:
        results[f"miou_at_{k}"] = mean([r["ious"][k - 1] for r in per_object]) if k <= max_clicks else None
    results[f"fail{_threshold_key(top)}"] = sum(int(max(r["ious"]) < top) for r in per_object)
    results["box_miou"] = mean([r["box_iou"] for r in per_object]) if supports_box else None
    results["loose_box_miou"] = mean([r["loose_box_iou"] for r in per_object]) if supports_box else None
    results["n_objects"] = len(per_object)
    results["seconds_per_click"] = predict_seconds / max(n_clicks, 1)
    results["per_object"] = per_object
    return results
