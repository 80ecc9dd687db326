"""MaskGenerator against the reference's automatic-mask-generator goldens, and its building blocks."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
from goldens import unpack
import pytest
import torch
from PIL import Image

from zeroseg.io import rle_area, rle_to_mask
from zeroseg.segment import MaskGenerator, Predictor
from zeroseg.segment.amg import (
    batched_mask_to_box,
    batched_nms,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_iou_matrix,
    remove_small_regions,
    uncrop_masks,
)


# --- goldens ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sam_goldens(goldens_dir: Path) -> dict:
    return json.loads((goldens_dir / "sam" / "sam_goldens.json").read_text())


@pytest.fixture(scope="module")
def predictor(goldens_dir: Path, sam_goldens: dict) -> Predictor:
    from zeroseg.models.sam import build_from_config

    config = json.loads((goldens_dir / sam_goldens["config"]).read_text())
    return Predictor(build_from_config(config, goldens_dir / sam_goldens["checkpoint"]))


def generator_kwargs(call: str) -> dict:
    """Keyword arguments of ``SamAutomaticMaskGenerator(sam, ...)`` in a golden's ``call`` text."""
    expression = ast.parse(call.split("#")[0].strip(), mode="eval").body
    constructor = expression.func.value  # SamAutomaticMaskGenerator(...).generate(image)
    return {kw.arg: ast.literal_eval(kw.value) for kw in constructor.keywords}




def amg_image_path(goldens_dir: Path, sam_goldens: dict) -> Path:
    return goldens_dir / next(iter(sam_goldens["amg"].values()))["image"]


def load_rgb(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def record_logits(predictor: Predictor, image: np.ndarray, record: dict) -> np.ndarray:
    """Our full-image mask logits for a record: its prompt point on its crop, the output whose
    predicted IoU is the record's (logits outside the crop are -inf)."""
    x0, y0, w, h = record["crop_box"]
    predictor.set_image(image[y0 : y0 + h, x0 : x0 + w])
    point = np.array(record["point_coords"]) - [x0, y0]
    logits, iou, _ = predictor.predict(point, np.array([1]), multimask_output=True, return_logits=True)
    full = np.full(image.shape[:2], -np.inf, dtype=np.float32)
    full[y0 : y0 + h, x0 : x0 + w] = logits[np.argmin(np.abs(iou - record["predicted_iou"]))]
    return full


def test_amg_goldens(goldens_dir: Path, sam_goldens: dict, predictor: Predictor) -> None:
    for run_name, run in sam_goldens["amg"].items():
        kwargs = generator_kwargs(run["call"])
        golden = np.load(goldens_dir / run["npz"])
        image = load_rgb(goldens_dir / run["image"])
        records = MaskGenerator(predictor, **kwargs).generate(image)

        assert len(records) == run["num_masks"] == len(run["records"]), run_name
        grid = build_all_layer_point_grids(
            kwargs.get("points_per_side", 32), kwargs.get("crop_n_layers", 0), kwargs.get("crop_n_points_downscale_factor", 1)
        )[0]
        np.testing.assert_array_equal(grid.astype(np.float32), golden["point_grid"])
        segmentations = unpack(golden["segmentations_packed"], run["segmentations_shape"])
        for i, (ours, ref) in enumerate(zip(records, run["records"])):
            where = f"{run_name} record {i}"
            assert ours["bbox"] == ref["bbox"], where
            assert ours["crop_box"] == ref["crop_box"], where
            assert ours["point_coords"] == ref["point_coords"], where
            assert ours["predicted_iou"] == pytest.approx(ref["predicted_iou"], abs=1e-4), where
            assert ours["stability_score"] == pytest.approx(ref["stability_score"], abs=1e-3), where
            mask = ours["segmentation"]
            assert mask.dtype == bool and mask.shape == segmentations[i].shape, where
            assert ours["area"] == mask.sum(), where
            flipped = mask != segmentations[i]
            if flipped.any():  # only pixels whose logit sits on the threshold may differ (README)
                assert flipped.sum() <= 3, where
                assert np.abs(record_logits(predictor, image, ours)[flipped]).max() < 1e-2, where
            assert abs(ours["area"] - ref["area"]) == flipped.sum(), where
        np.testing.assert_array_equal([r["bbox"] for r in records], golden["bbox_xywh"])
        np.testing.assert_array_equal([r["crop_box"] for r in records], golden["crop_box_xywh"])
        np.testing.assert_array_equal([r["point_coords"][0] for r in records], golden["point_coords"])
        np.testing.assert_allclose([r["predicted_iou"] for r in records], golden["predicted_iou"], atol=1e-4)
        np.testing.assert_allclose([r["stability_score"] for r in records], golden["stability_score"], atol=1e-3)


def test_coco_rle_output_matches_binary(goldens_dir: Path, sam_goldens: dict, predictor: Predictor) -> None:
    image = load_rgb(amg_image_path(goldens_dir, sam_goldens))
    kwargs = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    binary = MaskGenerator(predictor, **kwargs).generate(image)
    rles = MaskGenerator(predictor, output_mode="coco_rle", **kwargs).generate(image)
    assert len(rles) == len(binary)
    for rle_record, binary_record in zip(rles, binary):
        rle = rle_record["segmentation"]
        assert set(rle) == {"size", "counts"} and isinstance(rle["counts"], str)
        assert rle["size"] == list(image.shape[:2])
        np.testing.assert_array_equal(rle_to_mask(rle), binary_record["segmentation"])
        assert rle_area(rle) == rle_record["area"] == binary_record["segmentation"].sum()
        assert {k: v for k, v in rle_record.items() if k != "segmentation"} == {
            k: v for k, v in binary_record.items() if k != "segmentation"
        }
    json.dumps(rles)  # JSON-ready


def test_crop_layers_and_small_region_removal(goldens_dir: Path, sam_goldens: dict, predictor: Predictor) -> None:
    image = load_rgb(amg_image_path(goldens_dir, sam_goldens))
    h, w = image.shape[:2]
    generator = MaskGenerator(
        predictor,
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        crop_n_layers=1,
        crop_n_points_downscale_factor=2,
        crop_nms_thresh=1.0,
        min_mask_region_area=50,
    )
    records = generator.generate(image)
    crop_boxes, _ = generate_crop_boxes((h, w), 1, generator.crop_overlap_ratio)
    crops_xywh = [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in crop_boxes]
    assert records
    for record in records:
        mask = record["segmentation"]
        assert mask.shape == (h, w)
        assert record["area"] == mask.sum()
        box = batched_mask_to_box(torch.from_numpy(mask)).tolist()
        assert record["bbox"] == [box[0], box[1], box[2] - box[0], box[3] - box[1]]
        assert record["crop_box"] in crops_xywh
        x, y = record["point_coords"][0]
        cx, cy, cw, ch = record["crop_box"]
        assert cx <= x <= cx + cw and cy <= y <= cy + ch
        # no island smaller than the limit survives (unless it is the only one)
        _, islands_changed = remove_small_regions(mask, 50, mode="islands")
        assert not islands_changed


def test_progress_bar(goldens_dir: Path, sam_goldens: dict, predictor: Predictor, capsys) -> None:
    image = load_rgb(amg_image_path(goldens_dir, sam_goldens))
    MaskGenerator(predictor, points_per_side=4, points_per_batch=8, progress=True).generate(image)
    assert "2/2" in capsys.readouterr().err


def test_generate_accepts_a_path(goldens_dir: Path, sam_goldens: dict, predictor: Predictor) -> None:
    path = amg_image_path(goldens_dir, sam_goldens)
    generator = MaskGenerator(predictor, points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    from_path = generator.generate(path)
    from_array = generator.generate(load_rgb(path))
    assert [r["bbox"] for r in from_path] == [r["bbox"] for r in from_array]


def test_constructor_errors(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MaskGenerator(predictor, points_per_side=None)
    with pytest.raises(ValueError, match="output_mode"):
        MaskGenerator(predictor, output_mode="polygon")


# --- NMS -------------------------------------------------------------------------------------
def brute_force_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float) -> list[int]:
    """Greedy NMS from the definition: a full float32 IoU matrix and a loop over score order.

    Ties are ordered like torchvision's CPU kernel: by torch's default (unstable) descending sort,
    and above 1000 boxes the kept ones are re-sorted the way its per-category loop does.
    """
    b = boxes.numpy().astype(np.float32)
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (areas[:, None] + areas[None, :] - inter)
    order = torch.sort(scores, descending=True).indices.tolist()
    categories = idxs.tolist()
    keep: list[int] = []
    suppressed: set[int] = set()
    for position, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[position + 1 :]:
            if categories[j] == categories[i] and float(iou[i, j]) > threshold:
                suppressed.add(j)
    if len(order) > 1000:
        keep.sort()
        keep = [keep[k] for k in torch.sort(scores[keep], descending=True).indices.tolist()]
    return keep


def random_boxes(n: int, generator: torch.Generator, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * size
    wh = torch.rand(n, 2, generator=generator) * size / 3
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("n, n_categories, n_score_levels", [(50, 1, 0), (300, 3, 4), (200, 1, 3), (1200, 2, 5)])
def test_batched_nms_matches_brute_force(n: int, n_categories: int, n_score_levels: int) -> None:
    gen = torch.Generator().manual_seed(n)
    boxes = random_boxes(n, gen)
    boxes[n // 2 : n // 2 + 10] = boxes[n // 2]  # exact duplicates
    if n_score_levels:  # many tied scores
        scores = torch.randint(0, n_score_levels, (n,), generator=gen).float() / n_score_levels
    else:
        scores = torch.rand(n, generator=gen)
    idxs = torch.randint(0, n_categories, (n,), generator=gen)
    for threshold in (0.0, 0.3, 0.7, 1.0):
        ours = batched_nms(boxes, scores, idxs, threshold)
        assert ours.dtype == torch.int64
        assert ours.tolist() == brute_force_nms(boxes, scores, idxs, threshold), threshold


def test_batched_nms_small_cases() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.8, 0.9, 0.7, 0.8])
    zeros = torch.zeros(4, dtype=torch.int64)
    # box 1 wins; box 0 and its duplicate 3 overlap it with IoU 81/119 = 0.68
    assert batched_nms(boxes, scores, zeros, 0.5).tolist() == [1, 2]
    assert batched_nms(boxes, scores, zeros, 0.7).tolist() == [1, 0, 2]  # 0 and 3 tie; 0 sorts first
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0, 2]), 0.5).tolist() == [1, 0, 3, 2]
    assert batched_nms(boxes[:0], scores[:0], zeros[:0], 0.5).tolist() == []
    # the IoU (float32) is compared with the threshold in float64, as torchvision does:
    # IoU = float32(0.7) = 0.69999998807..., which is above 0.69999998 but not above 0.7
    pair = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 7.0]])
    two = torch.tensor([1.0, 0.5])
    assert batched_nms(pair, two, zeros[:2], 0.69999998).tolist() == [0]
    assert batched_nms(pair, two, zeros[:2], 0.7).tolist() == [0, 1]
    # empty boxes have IoU NaN with everything and never suppress
    flat = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5.0]])
    assert batched_nms(flat, two, zeros[:2], 0.0).tolist() == [0, 1]


# --- other building blocks -------------------------------------------------------------------
def test_generate_crop_boxes() -> None:
    boxes, layers = generate_crop_boxes((100, 200), 1, 0.5)
    # overlap = int(0.5 * 100 * 1) = 50; crop w = ceil((50 + 200) / 2), h = ceil((50 + 100) / 2)
    assert boxes == [[0, 0, 200, 100], [0, 0, 125, 75], [0, 25, 125, 100], [75, 0, 200, 75], [75, 25, 200, 100]]
    assert layers == [0, 1, 1, 1, 1]

    h, w = 157, 203
    boxes, layers = generate_crop_boxes((h, w), 2, 512 / 1500)
    assert layers == [0] + [1] * 4 + [2] * 16
    covered = np.zeros((3, h, w), dtype=bool)
    for (x0, y0, x1, y1), layer in zip(boxes, layers):
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        covered[layer, y0:y1, x0:x1] = True
    assert covered.all()  # every layer tiles the whole image


def test_point_grids() -> None:
    grids = build_all_layer_point_grids(8, 2, 2)
    assert [len(g) for g in grids] == [64, 16, 4]
    np.testing.assert_allclose(grids[2], [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])


def test_mask_boxes_and_stability() -> None:
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 3, 17, 23, generator=gen) > 0.97
    masks[0, 1] = False
    boxes = batched_mask_to_box(masks)
    assert boxes.shape == (2, 3, 4) and boxes.dtype == torch.int64
    for index in np.ndindex(2, 3):
        ys, xs = np.nonzero(masks[index].numpy())
        expected = [xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0]
        assert boxes[index].tolist() == expected

    logits = torch.tensor([[[-2.0, -0.5, 0.5], [1.5, 2.0, 0.0]]])
    # > 1: 2 pixels; > -1: 5 pixels
    assert calculate_stability_score(logits, 0.0, 1.0).tolist() == [pytest.approx(2 / 5)]


def test_crop_edges_and_uncrop() -> None:
    crop = [50, 0, 150, 100]  # right half of a 150x100 image
    boxes = torch.tensor([[0, 10, 40, 60], [30, 30, 60, 60], [60, 0, 100, 99]])
    # box 0 touches the crop's left edge (inside the image); box 2 only image edges
    assert is_box_near_crop_edge(boxes, crop, [0, 0, 150, 100]).tolist() == [True, False, False]

    masks = torch.ones(2, 100, 100, dtype=torch.bool)
    full = uncrop_masks(masks, crop, 100, 150)
    assert full.shape == (2, 100, 150) and full[:, :, 50:].all() and not full[:, :, :50].any()


def test_remove_small_regions() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:12, 2:12] = True
    mask[5, 5] = False  # a 1-pixel hole
    mask[15:17, 15:17] = True  # a 4-pixel island
    filled, changed = remove_small_regions(mask, 5, mode="holes")
    assert changed and filled[5, 5] and filled.sum() == mask.sum() + 1
    trimmed, changed = remove_small_regions(mask, 5, mode="islands")
    assert changed and not trimmed[15:17, 15:17].any() and trimmed[2:12, 2:12].sum() == 99
    same, changed = remove_small_regions(mask, 1, mode="islands")
    assert not changed and same is mask
    tiny = np.zeros((5, 5), dtype=bool)
    tiny[0, 0] = tiny[3:5, 3:5] = True  # every island small: the largest stays
    kept, changed = remove_small_regions(tiny, 10, mode="islands")
    assert changed and kept.sum() == 4 and kept[3:5, 3:5].all()


def test_edge_refinement_runs_on_the_distinct_masks_only(
    goldens_dir: Path, sam_goldens: dict, predictor: Predictor, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """With edge refinement on, only the masks left after the near-copy NMS are refined (one call per
    crop), and every record is the thresholded refined mask of its prompt."""
    image = load_rgb(amg_image_path(goldens_dir, sam_goldens))
    refined_counts: list[int] = []
    refine = Predictor.refine

    def counting(self: Predictor, masks: torch.Tensor) -> torch.Tensor:
        refined_counts.append(len(masks))
        return refine(self, masks)

    monkeypatch.setattr(Predictor, "refine", counting)
    options = {"points_per_side": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    predictor.refine_edges = True
    try:
        records = MaskGenerator(predictor, progress=True, **options).generate(image)
        assert "2/2" in capsys.readouterr().err  # one point batch, then the refinement
        assert records and len(refined_counts) == 1
        assert len(records) <= refined_counts[0] < 8 * 8 * 3  # near-copies never reach the refiner
        for record in records[:3]:
            predictor.set_image(image)
            logits, iou, _ = predictor.predict(
                np.array(record["point_coords"]), np.array([1]), multimask_output=True, return_logits=True
            )
            best = np.argmin(np.abs(iou - record["predicted_iou"]))
            assert (logits[best] > 0).tolist() == record["segmentation"].tolist()  # predict refines too
    finally:
        predictor.refine_edges = False


def test_edge_refined_candidates_are_judged_on_a_quick_look(
    goldens_dir: Path, sam_goldens: dict, predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With edge refinement on, a photo larger than COARSE_SIDE has its candidates' stability, boxes and crop
    edges judged on smaller masks: the records are nearly those of judging them at full size, and every
    record's box is its own mask's."""
    from zeroseg.segment import mask_generator

    image = np.array(Image.fromarray(load_rgb(amg_image_path(goldens_dir, sam_goldens))).resize((610, 470)))
    options = {"points_per_side": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "crop_n_layers": 1}
    predictor.refine_edges = True
    try:
        quick = MaskGenerator(predictor, **options).generate(image)
        monkeypatch.setattr(mask_generator, "COARSE_SIDE", 10**6)
        full = MaskGenerator(predictor, **options).generate(image)
    finally:
        predictor.refine_edges = False
    assert quick and full
    iou = mask_iou_matrix(np.stack([r["segmentation"] for r in full]), np.stack([r["segmentation"] for r in quick]))
    assert (iou.max(1) >= 0.9).mean() >= 0.9
    assert abs(len(quick) - len(full)) <= 0.1 * len(full)
    for record in quick:
        ys, xs = np.nonzero(record["segmentation"])
        assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]


def test_boxes_of_smaller_masks_are_given_in_the_crops_pixels(predictor: Predictor) -> None:
    from zeroseg.segment.amg import MaskData

    height, width = 470, 610
    full = torch.full((2, height, width), -5.0)
    full[0, 100:300, 50:400] = 5.0
    full[1, 10:40, 500:609] = 5.0
    small = torch.nn.functional.interpolate(full[:, None], (196, 254), mode="bilinear")[:, 0]
    data = MaskData(masks=small, iou_preds=torch.ones(2), points=torch.zeros(2, 2))
    MaskGenerator(predictor, stability_score_thresh=0.0)._threshold(data, [0, 0, width, height], (height, width), encode=False)
    expected = torch.tensor([[50, 100, 399, 299], [500, 10, 608, 39]])
    assert (data["boxes"] - expected).abs().max() <= 3  # a small mask's pixel is 2.4 of the crop's


def test_mask_iou_matrix():
    a = np.zeros((2, 4, 4), bool)
    a[0, :2] = True  # 8 pixels
    a[1, :, :1] = True  # 4 pixels, 2 shared with a[0]
    b = np.concatenate([a, np.zeros((1, 4, 4), bool)])
    iou = mask_iou_matrix(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1, 2 / 10, 0], [2 / 10, 1, 0]])
