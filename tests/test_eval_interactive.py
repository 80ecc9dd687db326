"""The NoC click protocol, its metrics, the dataset reader and the GrabCut baseline, on hand-made data."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from zeroseg.errors import DatasetError, PromptValueError
from zeroseg.eval.cli import app
from zeroseg.eval.clicks import Click, distance_to_boundary, next_click, sample_training_clicks
from zeroseg.eval.interactive import (
    InteractiveSample,
    PredictorModel,
    decode_mask,
    evaluate,
    load_interactive_dataset,
    loose_box,
    mask_box,
    mask_iou,
)
from zeroseg.eval.grabcut import GrabCutModel

RESULT_KEYS = {"noc85", "noc90", "miou_at_1", "miou_at_5", "fail90", "box_miou", "loose_box_miou", "n_objects", "seconds_per_click"}


def square(size: int, x0: int, y0: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


# --- next_click ---------------------------------------------------------------------------
def test_first_click_is_the_centre_of_the_object() -> None:
    gt = square(50, 10, 14, 21)  # centre (20, 24)
    assert next_click(np.zeros_like(gt), gt) == Click(20, 24, True)


def test_click_goes_to_the_largest_missed_region() -> None:
    gt = square(60, 2, 2, 7) | square(60, 30, 30, 21)  # small square, big square centred at (40, 40)
    assert next_click(np.zeros_like(gt), gt) == Click(40, 40, True)


def test_negative_click_in_a_false_positive_blob() -> None:
    gt = square(60, 5, 5, 10)
    pred = gt | square(60, 31, 33, 15)  # spurious blob centred at (38, 40); the object is found
    assert next_click(pred, gt) == Click(38, 40, False)


def test_the_deeper_error_wins_and_ties_go_positive() -> None:
    gt = square(60, 5, 5, 11)
    assert next_click(square(60, 30, 30, 15), gt) == Click(37, 37, False)  # FP deeper than FN
    assert next_click(square(60, 30, 30, 11), gt) == Click(10, 10, True)  # same depth: positive


def test_image_border_counts_as_a_boundary() -> None:
    gt = square(40, 0, 0, 20)  # object in the top-left corner
    click = next_click(np.zeros_like(gt), gt)
    assert click is not None and click.positive and click.x in (9, 10) and click.y in (9, 10)


def test_ignore_band_is_never_clicked() -> None:
    gt = square(50, 10, 10, 30)
    ignore = square(50, 15, 15, 20)  # the core of the object is unlabelled: only a ring is left
    click = next_click(np.zeros_like(gt), gt, ignore)
    assert click is not None and click.positive and not ignore[click.y, click.x] and gt[click.y, click.x]
    band = cv2.dilate(gt.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~gt
    assert next_click(gt | band, gt, ignore=band) is None  # errors only inside the band: nothing to fix


def test_clicked_pixels_are_not_clicked_again_and_no_error_means_no_click() -> None:
    gt = square(30, 10, 10, 1)  # one pixel
    first = next_click(np.zeros_like(gt), gt)
    assert first == Click(10, 10, True)
    assert next_click(np.zeros_like(gt), gt, clicked=[first]) is None
    assert next_click(gt, gt) is None


def test_distance_to_boundary_is_euclidean() -> None:
    depth = distance_to_boundary(square(30, 5, 5, 11))
    assert depth[10, 10] == pytest.approx(6.0) and depth[5, 5] == pytest.approx(1.0) and depth[0, 0] == 0


# --- training clicks ----------------------------------------------------------------------
def test_training_clicks_without_prediction_favour_the_interior() -> None:
    gt = square(80, 10, 10, 60)
    clicks = sample_training_clicks(gt, rng=np.random.default_rng(0), n=200)
    assert len({(c.x, c.y) for c in clicks}) == 200 and all(c.positive and gt[c.y, c.x] for c in clicks)
    depth = distance_to_boundary(gt)
    assert np.mean([depth[c.y, c.x] for c in clicks]) > depth[gt].mean() + 3
    again = sample_training_clicks(gt, rng=np.random.default_rng(0), n=200)
    assert again == clicks


def test_training_clicks_fall_in_the_largest_error_region() -> None:
    gt = square(80, 10, 10, 40)
    pred = gt & ~square(80, 10, 10, 6) | square(80, 55, 55, 20)  # small miss, large spurious blob
    clicks = sample_training_clicks(gt, pred, np.random.default_rng(1), n=5)
    assert len(clicks) == 5 and all(not c.positive and 55 <= c.x < 75 and 55 <= c.y < 75 for c in clicks)
    assert sample_training_clicks(gt, gt, np.random.default_rng(1), n=3) == []


# --- evaluate -----------------------------------------------------------------------------
class ScriptedModel:
    """Returns, after click k, a mask whose IoU with the object is script[name][k - 1]."""

    def __init__(self, scripts: dict[str, list[float]], supports_box: bool = False) -> None:
        self.scripts, self.supports_box = scripts, supports_box
        self.calls: list[tuple[int, bool, tuple | None]] = []

    def set_image(self, image: np.ndarray) -> None:
        self.name = str(image[0, 0, 0])  # the sample's name is encoded in its first pixel

    def predict(self, clicks, prev_low_res, box=None):
        self.calls.append((len(clicks), prev_low_res is not None, box))
        if box is not None:
            return self.gt.copy(), None
        iou = self.scripts[self.name][len(clicks) - 1]
        pixels = np.flatnonzero(self.gt)[: round(iou * self.gt.sum())]
        mask = np.zeros(self.gt.size, dtype=bool)
        mask[pixels] = True
        return mask.reshape(self.gt.shape), np.full((1, 4, 4), len(clicks), np.float32)


def scripted_samples(names: list[str]) -> tuple[list[InteractiveSample], np.ndarray]:
    gt = square(40, 10, 10, 10)  # 100 pixels, so IoU steps of 0.01 are exact
    samples = []
    for name in names:
        image = np.zeros((40, 40, 3), np.uint8)
        image[0, 0, 0] = int(name)
        samples.append(InteractiveSample(name, image, gt))
    return samples, gt


def test_noc_miou_and_failures_of_scripted_masks() -> None:
    scripts = {
        "1": [0.5, 0.8, 0.92, 0.95, 0.96] + [0.97] * 15,  # 0.85 and 0.90 at click 3
        "2": [0.6, 0.86, 0.88] + [0.89] * 17,  # 0.85 at click 2, never 0.90
        "3": [0.7] * 19 + [0.9],  # reaches 0.90 only at the last click
    }
    samples, gt = scripted_samples(list(scripts))
    model = ScriptedModel(scripts)
    model.gt = gt
    results = evaluate(model, samples, max_clicks=20, progress=False)
    assert RESULT_KEYS <= set(results) and set(results) - RESULT_KEYS <= {"per_object"}
    assert results["noc85"] == pytest.approx((3 + 2 + 20) / 3)
    assert results["noc90"] == pytest.approx((3 + 20 + 20) / 3)
    assert results["fail90"] == 1
    assert results["miou_at_1"] == pytest.approx((0.5 + 0.6 + 0.7) / 3)
    assert results["miou_at_5"] == pytest.approx((0.96 + 0.89 + 0.7) / 3)
    assert results["box_miou"] is None and results["n_objects"] == 3 and results["seconds_per_click"] >= 0
    assert [len(r["ious"]) for r in results["per_object"]] == [5, 20, 20]  # stops once nothing can change
    assert all(box is None for *_, box in model.calls)
    assert [had_prev for clicks, had_prev, _ in model.calls if clicks == 1] == [False] * 3
    assert all(had_prev for clicks, had_prev, _ in model.calls if clicks > 1)
    json.dumps(results)  # plain Python types only


def test_max_clicks_and_box_prompt() -> None:
    samples, gt = scripted_samples(["7"])
    model = ScriptedModel({"7": [0.5, 0.6, 0.7]}, supports_box=True)
    model.gt = gt
    results = evaluate(model, samples, max_clicks=3, progress=False)
    assert results["noc85"] == results["noc90"] == 3 and results["fail90"] == 1
    assert results["miou_at_5"] is None and results["box_miou"] == results["loose_box_miou"] == 1.0
    assert model.calls[-2] == (0, False, mask_box(gt)) and mask_box(gt) == (10, 10, 19, 19)
    assert model.calls[-1] == (0, False, pytest.approx((9.1, 9.1, 19.9, 19.9)))  # 10% of the side beyond it
    assert loose_box((0, 5, 39, 20), (40, 40)) == pytest.approx((0, 3.5, 39, 21.5))  # within the image
    line = np.zeros((30, 30), bool)
    line[5:25, 29] = True  # one pixel wide, on the image's last column
    assert mask_box(line) == (29, 5, 30, 24)  # a box prompt needs an area


def test_iou_ignores_the_band() -> None:
    gt, ignore = square(20, 5, 5, 6), square(20, 4, 4, 8) & ~square(20, 6, 6, 4)
    assert mask_iou(square(20, 4, 4, 8), gt & ~ignore, ignore) == 1.0
    assert mask_iou(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


class FakePredictor:
    """Records calls; scores favour the second of three masks."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def set_image(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]

    def predict(self, point_coords, point_labels, box, mask_input, multimask_output):
        self.calls.append(
            dict(coords=point_coords, labels=point_labels, box=box, mask_input=mask_input, multimask=multimask_output)
        )
        n = 3 if multimask_output else 1
        masks = np.zeros((n, *self.shape), bool)
        masks[:, 0, 0] = np.arange(n) == min(1, n - 1)
        low_res = np.stack([np.full((256, 256), i, np.float32) for i in range(n)])
        return masks, np.array([0.1, 0.9, 0.3][:n]), low_res


def test_predictor_model_follows_the_sam_click_practice() -> None:
    predictor = FakePredictor()
    model = PredictorModel(predictor)
    model.set_image(np.zeros((8, 9, 3), np.uint8))
    mask, low_res = model.predict([Click(3, 4, True)], None)
    assert predictor.calls[0]["multimask"] and mask[0, 0]
    assert low_res.shape == (1, 256, 256) and low_res.max() == 1  # the best-scored mask's logits
    model.predict([Click(3, 4, True), Click(5, 6, False)], low_res)
    second = predictor.calls[1]
    assert not second["multimask"] and second["mask_input"].shape == (1, 256, 256)
    assert second["mask_input"].max() == 1
    assert second["coords"].tolist() == [[3, 4], [5, 6]] and second["labels"].tolist() == [1, 0]
    model.predict([], None, box=(1, 2, 5, 6))
    third = predictor.calls[2]
    assert not third["multimask"] and third["box"].tolist() == [1, 2, 5, 6] and third["coords"] is None


# --- GrabCut baseline ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_colour_image() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    gt = (xx - 70) ** 2 + (yy - 60) ** 2 < 35**2
    image = np.where(gt[..., None], [200, 40, 30], [40, 90, 200]) + rng.normal(0, 12, (120, 160, 3))
    return np.clip(image, 0, 255).astype(np.uint8), gt


def test_grabcut_segments_from_one_click(two_colour_image) -> None:
    image, gt = two_colour_image
    model = GrabCutModel()
    model.set_image(image)
    mask, low_res = model.predict([Click(70, 60, True)], None)
    assert mask.shape == gt.shape and mask_iou(mask, gt) > 0.95
    again, _ = model.predict([Click(70, 60, True)], None)
    assert np.array_equal(mask, again)  # deterministic
    refined, _ = model.predict([Click(70, 60, True), Click(150, 10, False)], low_res)
    assert mask_iou(refined, gt) > 0.95


def test_grabcut_click_picks_the_region_under_it() -> None:
    image = np.zeros((60, 160, 3), np.uint8)
    image[:, :100], image[:, 100:] = (200, 40, 30), (40, 90, 200)
    model = GrabCutModel()
    model.set_image(image)
    mask, _ = model.predict([Click(140, 20, True), Click(30, 50, False)], None)
    assert mask[:, 100:].all() and not mask[:, :100].any()
    with pytest.raises(PromptValueError):
        model.predict([Click(20, 140, True)], None)  # (x, y) outside the 160x60 image


def test_grabcut_segments_from_a_box_and_downscales(two_colour_image) -> None:
    image, gt = two_colour_image
    model = GrabCutModel(max_side=80)
    model.set_image(image)
    mask, low_res = model.predict([], None, box=mask_box(gt))
    assert mask.shape == gt.shape and low_res.shape == (60, 80) and mask_iou(mask, gt) > 0.9


# --- dataset reader -----------------------------------------------------------------------
def write_dataset(root: Path, masks: dict[str, np.ndarray], header: str = "image,mask") -> Path:
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    rows = [header]
    for name, values in masks.items():
        Image.fromarray(np.full((*values.shape, 3), 90, np.uint8)).save(root / "img" / f"{name}.png")
        Image.fromarray(values.astype(np.uint8)).save(root / "gt" / f"{name}.png")
        rows.append(f"img/{name}.png,gt/{name}.png")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root


def test_dataset_with_trimaps_ignores_128(tmp_path: Path) -> None:
    trimap = np.zeros((12, 10), np.uint8)
    trimap[2:8, 2:8], trimap[3:7, 3:7] = 128, 255
    root = write_dataset(tmp_path / "tri", {"a": trimap, "b": np.where(trimap == 255, 255, 0)})
    dataset = load_interactive_dataset(root)
    assert len(dataset) == 2 and dataset.ignore_value == 128
    sample = dataset[0]
    assert sample.name == "a" and sample.image.shape == (12, 10, 3) and sample.image.dtype == np.uint8
    assert sample.gt.sum() == 16 and sample.ignore.sum() == 20 and not (sample.gt & sample.ignore).any()
    assert len(dataset[1:]) == 1 and dataset[1:][0].name == "b"
    assert load_interactive_dataset(root, ignore_value=None)[0].ignore is None


def test_dataset_with_binary_masks_thresholds(tmp_path: Path) -> None:
    soft = np.zeros((8, 8), np.uint8)
    soft[2:6, 2:6], soft[2, 2], soft[5, 5] = 255, 100, 200  # anti-aliased values, no ignore band
    root = write_dataset(tmp_path / "bin", {"soft": soft, "ones": (soft > 0).astype(np.uint8)})
    dataset = load_interactive_dataset(root)
    assert dataset.ignore_value is None
    assert dataset[0].gt.sum() == 15 and dataset[0].ignore is None
    assert dataset[1].gt.sum() == 16  # a 0/1 mask


def test_decode_mask_removes_ignored_pixels_from_the_object() -> None:
    gt, ignore = decode_mask(np.array([[0, 128, 255, 200]]), ignore_value=128)
    assert gt.tolist() == [[False, False, True, True]] and ignore.tolist() == [[False, True, False, False]]


def test_dataset_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetError, match="index.csv"):
        load_interactive_dataset(tmp_path)
    bad = write_dataset(tmp_path / "bad", {"a": np.zeros((4, 4), np.uint8)}, header="img,msk")
    with pytest.raises(DatasetError, match="column"):
        load_interactive_dataset(bad)
    missing = write_dataset(tmp_path / "missing", {"a": np.zeros((4, 4), np.uint8)})
    (missing / "gt" / "a.png").unlink()
    with pytest.raises(DatasetError, match="missing"):
        load_interactive_dataset(missing)
    empty = load_interactive_dataset(write_dataset(tmp_path / "empty", {"a": np.zeros((4, 4), np.uint8)}))
    with pytest.raises(DatasetError, match="no object"):
        empty[0]
    monkeypatch.setenv("ZEROSEG_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="ZEROSEG_DATA"):
        load_interactive_dataset("grabcut")


def test_known_names_resolve_in_the_shared_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROSEG_DATA", str(data_dir))
    grabcut, berkeley = load_interactive_dataset("grabcut"), load_interactive_dataset("berkeley")
    assert (len(grabcut), grabcut.ignore_value) == (50, 128)
    assert (len(berkeley), berkeley.ignore_value) == (100, None)
    sample = grabcut[1]  # 124080 has an uncertain band
    assert sample.gt.shape == sample.image.shape[:2] and sample.gt.any() and sample.ignore.any()


# --- CLI ----------------------------------------------------------------------------------
def test_cli_runs_the_baseline_and_writes_json(tmp_path: Path) -> None:
    values = np.zeros((40, 50), np.uint8)
    values[10:30, 15:35] = 255
    root = write_dataset(tmp_path / "data", {"box": values})
    image = np.full((40, 50, 3), (30, 60, 200), np.uint8)
    image[values > 0] = (220, 40, 20)
    Image.fromarray(image).save(root / "img" / "box.png")
    out = tmp_path / "out" / "results.json"
    result = CliRunner().invoke(
        app, ["interactive", "--dataset", str(root), "--model", "grabcut", "--max-clicks", "5", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "noc90" in result.output
    saved = json.loads(out.read_text())
    assert RESULT_KEYS <= set(saved) and saved["n_objects"] == 1 and saved["miou_at_1"] > 0.9


def test_cli_reports_dataset_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["interactive", "--dataset", str(tmp_path), "--model", "grabcut"])
    assert result.exit_code == DatasetError.exit_code
