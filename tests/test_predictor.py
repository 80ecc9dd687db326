"""Predictor against the reference SamPredictor goldens (SAM and MobileSAM), batching, cache and
prompt validation. Every size, prompt and call is read from the golden JSON files."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from goldens import unpack
import pytest
import torch
from PIL import Image

from zeroseg.errors import NoImageSetError, PromptShapeError, PromptValueError
from zeroseg.segment import Predictor

FAMILIES = {"sam": "sam/sam_goldens.json", "mobilesam": "mobilesam/mobilesam_goldens.json"}


def load_family(goldens_dir: Path, family: str) -> SimpleNamespace:
    from zeroseg.models.sam import build_from_config

    spec = json.loads((goldens_dir / FAMILIES[family]).read_text())
    config = json.loads((goldens_dir / spec["config"]).read_text())
    model = build_from_config(config, goldens_dir / spec["checkpoint"])
    return SimpleNamespace(spec=spec, model=model, predictor=Predictor(model))


@pytest.fixture(scope="module")
def built(goldens_dir: Path):
    """Each family's model and a shared Predictor (whose cache spares re-encoding), built once."""
    families: dict[str, SimpleNamespace] = {}

    def get(name: str) -> SimpleNamespace:
        if name not in families:
            families[name] = load_family(goldens_dir, name)
        return families[name]

    return get


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, built) -> SimpleNamespace:
    return built(request.param)


@pytest.fixture(scope="module")
def sam(built) -> SimpleNamespace:
    return built("sam")


@pytest.fixture(scope="module")
def images(goldens_dir: Path) -> dict[str, np.ndarray]:
    return {
        path.stem: np.array(Image.open(path).convert("RGB")) for path in sorted((goldens_dir / "images").glob("*.png"))
    }




def prompt_kwargs(case: dict, arrays: np.lib.npyio.NpzFile) -> dict:
    prompt = case["prompt"]
    kwargs = {key: np.array(prompt[key]) for key in ("point_coords", "point_labels", "box") if key in prompt}
    if "mask_input" in prompt:
        kwargs["mask_input"] = arrays[f"{case['name']}__mask_input"]
    return kwargs


def array_named(call: dict, suffix: str) -> str | None:
    names = [name for name in call["arrays"] if name.endswith(f"__{suffix}")]
    return names[0] if names else None


# --- goldens ----------------------------------------------------------------------------------
def test_predictor_goldens(family: SimpleNamespace, goldens_dir: Path) -> None:
    predictor = family.predictor
    for image_name, entry in family.spec["predictor"].items():
        arrays = np.load(goldens_dir / entry["npz"])
        image = np.array(Image.open(goldens_dir / entry["image"]).convert("RGB"))
        resized = predictor.transform.apply_image(image)
        assert list(resized.shape) == entry["resized_uint8_shape"], image_name
        assert hashlib.sha256(resized.tobytes()).hexdigest() == entry["resized_uint8_sha256"], image_name

        predictor.set_image(image)
        assert list(predictor.original_size) == entry["original_size"]
        assert list(predictor.input_size) == entry["input_size"]
        features = predictor.get_image_embedding()
        assert list(features.shape) == entry["features_shape"]
        saved = arrays["features"]
        np.testing.assert_allclose(
            features[:, : saved.shape[1]].numpy(), saved, rtol=1e-4, atol=1e-4, err_msg=f"{image_name} features"
        )

        for case in entry["cases"]:
            kwargs = prompt_kwargs(case, arrays)
            low_res_atol = 5e-3 if "mask_input" in kwargs else 2e-3
            for call in case["calls"]:
                where = f"{image_name}/{case['name']}/multimask={call['multimask_output']}"
                masks, iou, low_res = predictor.predict(
                    **kwargs, multimask_output=call["multimask_output"], return_logits=call["return_logits"]
                )
                n_masks = call["masks_shape"][0]
                assert masks.shape == tuple(call["masks_shape"]) and masks.dtype == np.float32, where
                assert iou.shape == (n_masks,) and iou.dtype == np.float32, where
                assert low_res.dtype == np.float32 and low_res.shape[0] == n_masks, where

                np.testing.assert_allclose(iou, arrays[array_named(call, "iou_predictions")], atol=1e-4, err_msg=where)
                np.testing.assert_allclose(
                    low_res, arrays[array_named(call, "low_res_masks")], rtol=1e-4, atol=low_res_atol, err_msg=where
                )
                if array_named(call, "masks_logits"):
                    np.testing.assert_allclose(masks, arrays[array_named(call, "masks_logits")], atol=5e-3, err_msg=where)
                golden_bool = unpack(arrays[array_named(call, "masks_packed")], call["masks_shape"])
                confident = np.abs(masks) > 1e-2
                np.testing.assert_array_equal((masks > 0)[confident], golden_bool[confident], err_msg=where)


def test_boolean_masks_are_thresholded_logits(sam: SimpleNamespace, images: dict[str, np.ndarray]) -> None:
    predictor = sam.predictor
    image = next(iter(images.values()))
    predictor.set_image(image)
    point = dict(point_coords=np.array([[image.shape[1] / 2, image.shape[0] / 3]]), point_labels=np.array([1]))
    logits, iou_logits, low_logits = predictor.predict(**point, return_logits=True)
    masks, iou, low = predictor.predict(**point)
    assert masks.dtype == bool and masks.shape == logits.shape
    np.testing.assert_array_equal(masks, logits > sam.model.mask_threshold)
    np.testing.assert_array_equal(iou, iou_logits)
    np.testing.assert_array_equal(low, low_logits)


# --- batching ---------------------------------------------------------------------------------
def test_predict_batch_equals_single_calls(sam: SimpleNamespace, images: dict[str, np.ndarray]) -> None:
    predictor = sam.predictor
    image = list(images.values())[1]
    h, w = image.shape[:2]
    predictor.set_image(image)
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(0, 1, size=(2, 2, 2)), axis=1).reshape(2, 4) * [w, h, w, h]
    coords = rng.uniform(0, 1, size=(2, 3, 2)) * [w, h]
    labels = np.array([[1, 0, 1], [0, 1, 1]])
    _, _, previous = predictor.predict(point_coords=coords[0], point_labels=labels[0], multimask_output=False)
    mask_inputs = np.stack([previous, -0.5 * previous])

    for kwargs, multimask_output in (
        (dict(boxes=boxes), False),
        (dict(point_coords=coords, point_labels=labels), True),
        (dict(point_coords=coords, point_labels=labels, boxes=boxes, mask_input=mask_inputs), False),
    ):
        masks, iou, low_res = predictor.predict_batch(**kwargs, multimask_output=multimask_output, return_logits=True)
        n_masks = 3 if multimask_output else 1
        assert masks.shape == (2, n_masks, h, w) and iou.shape == (2, n_masks)
        assert low_res.shape[:2] == (2, n_masks)
        for i in range(2):
            single = predictor.predict(
                point_coords=kwargs["point_coords"][i] if "point_coords" in kwargs else None,
                point_labels=kwargs["point_labels"][i] if "point_labels" in kwargs else None,
                box=kwargs["boxes"][i] if "boxes" in kwargs else None,
                mask_input=kwargs["mask_input"][i] if "mask_input" in kwargs else None,
                multimask_output=multimask_output,
                return_logits=True,
            )
            np.testing.assert_allclose(masks[i], single[0], atol=1e-4)
            np.testing.assert_allclose(iou[i], single[1], atol=1e-5)
            np.testing.assert_allclose(low_res[i], single[2], atol=1e-4)

    bool_masks, _, _ = predictor.predict_batch(boxes=boxes)
    assert bool_masks.dtype == bool and bool_masks.shape == (2, 3, h, w)


def test_predict_batch_padding_label(ready: Predictor) -> None:
    coords = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [0.0, 0.0]]])
    masks, iou, _ = ready.predict_batch(point_coords=coords, point_labels=np.array([[1, 0], [1, -1]]))
    assert masks.shape[:2] == iou.shape == (2, 3)
    with pytest.raises(PromptValueError, match="point_labels"):
        ready.predict(point_coords=coords[1], point_labels=np.array([1, -1]))


# --- embedding cache -------------------------------------------------------------------------
def test_cache_skips_the_encoder(sam: SimpleNamespace, images: dict[str, np.ndarray], goldens_dir: Path) -> None:
    calls = []
    hook = sam.model.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        predictor = Predictor(sam.model, cache_size=2)
        (name_a, a), (_, b), (_, c) = list(images.items())[:3]
        predictor.set_image(a)
        features_a = predictor.get_image_embedding()
        prompt = dict(point_coords=np.array([[a.shape[1] / 2, a.shape[0] / 2]]), point_labels=np.array([1]))
        first = predictor.predict(**prompt)
        assert len(calls) == 1
        predictor.set_image(b)
        assert len(calls) == 2 and list(predictor.original_size) == list(b.shape[:2])

        predictor.set_image(a.copy())  # same pixels: no encoder call
        assert len(calls) == 2 and list(predictor.original_size) == list(a.shape[:2])
        assert predictor.get_image_embedding() is features_a
        for ours, before in zip(predictor.predict(**prompt), first):
            np.testing.assert_array_equal(ours, before)
        predictor.set_image(np.ascontiguousarray(a[..., ::-1]), image_format="BGR")
        predictor.set_image(goldens_dir / "images" / f"{name_a}.png")
        predictor.set_image(Image.fromarray(a))
        assert len(calls) == 2

        predictor.set_image(c)  # the cache holds 2: drops b, the least recently used
        assert len(calls) == 3
        predictor.set_image(a)
        assert len(calls) == 3
        predictor.set_image(b)
        assert len(calls) == 4

        uncached = Predictor(sam.model, cache_size=0)
        uncached.set_image(a)
        uncached.set_image(a)
        assert len(calls) == 6
    finally:
        hook.remove()


# --- a box's mask chosen by its fit -----------------------------------------------------------
def test_box_choice_picks_among_all_four_outputs(sam: SimpleNamespace, images: dict[str, np.ndarray]) -> None:
    from zeroseg.segment.box_choice import box_fit_scores

    image = next(iter(images.values()))
    h, w = image.shape[:2]
    box = np.array([w * 0.1, h * 0.15, w * 0.8, h * 0.9])
    plain, choosing = Predictor(sam.model), Predictor(sam.model, box_choice=True)
    assert plain.box_choice is False  # SAM's own preset keeps its single-mask output for a box
    plain.set_image(image)
    choosing.set_image(image)
    single = plain.predict(box=box, multimask_output=False)
    three = plain.predict(box=box, multimask_output=True)
    masks, scores = np.concatenate([single[0], three[0]]), np.concatenate([single[1], three[1]])
    best = int(np.argmax(box_fit_scores(masks, scores, box)))
    chosen, chosen_scores, low_res = choosing.predict(box=box, multimask_output=False)
    assert chosen.shape == (1, h, w) and chosen_scores.shape == (1,) and low_res.shape[0] == 1
    np.testing.assert_array_equal(chosen[0], masks[best])
    assert chosen_scores[0] == pytest.approx(scores[best])
    clicked = dict(point_coords=np.array([[w / 2, h / 2]]), point_labels=np.array([1]), box=box, multimask_output=False)
    np.testing.assert_array_equal(choosing.predict(**clicked)[0], plain.predict(**clicked)[0])  # a box with clicks: as before
    small = np.array([w * 0.4, h * 0.4, w * 0.45, h * 0.45])  # a quarter of 1% of the image
    centre = dict(point_coords=np.array([[w * 0.425, h * 0.425]]), point_labels=np.array([1]), box=small)
    np.testing.assert_array_equal(choosing.predict(box=small, multimask_output=False)[0],
                                  plain.predict(**centre, multimask_output=False)[0])  # a small box: clicked at its centre


# --- validation -------------------------------------------------------------------------------
@pytest.fixture
def ready(sam: SimpleNamespace, images: dict[str, np.ndarray]) -> Predictor:
    sam.predictor.set_image(next(iter(images.values())))
    return sam.predictor


def low_res_shape(predictor: Predictor) -> tuple[int, int]:
    return tuple(predictor.model.prompt_encoder.mask_input_size)


def test_no_image_set(sam: SimpleNamespace) -> None:
    predictor = Predictor(sam.model)
    with pytest.raises(NoImageSetError):
        predictor.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
    with pytest.raises(NoImageSetError):
        predictor.predict_batch(boxes=np.array([[0.0, 0.0, 5.0, 5.0]]))
    with pytest.raises(NoImageSetError):
        predictor.get_image_embedding()
    assert not predictor.is_image_set and predictor.features is None


def test_prompt_shape_errors(ready: Predictor) -> None:
    mh, mw = low_res_shape(ready)
    point, label = np.array([[1.0, 2.0]]), np.array([1])
    cases = [
        (dict(point_coords=np.array([1.0, 2.0]), point_labels=label), "Nx2"),
        (dict(point_coords=np.array([[1.0, 2.0, 3.0]]), point_labels=label), "Nx2"),
        (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), "Nx2"),
        (dict(point_coords=point, point_labels=np.array([1, 0])), "point_labels"),
        (dict(point_coords=point), "point_labels"),
        (dict(point_labels=label), "point_coords"),
        (dict(point_coords=[[1.0, 2.0], [3.0]], point_labels=[1, 1]), "numeric"),
        (dict(box=np.array([1.0, 2.0, 3.0])), "4 values"),
        (dict(box=np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])), "4 values"),
        (dict(mask_input=np.zeros((mh, mw))), f"1x{mh}x{mw}"),
        (dict(mask_input=np.zeros((1, mh // 2, mw // 2))), f"1x{mh}x{mw}"),
    ]
    for kwargs, match in cases:
        with pytest.raises(PromptShapeError, match=match):
            ready.predict(**kwargs)


def test_prompt_value_errors(ready: Predictor) -> None:
    h, w = ready.original_size
    mh, mw = low_res_shape(ready)
    label = np.array([1])
    cases = [
        (dict(point_coords=np.array([[np.nan, 2.0]]), point_labels=label), "NaN"),
        (dict(box=np.array([1.0, 2.0, np.inf, 4.0])), "NaN or infinite"),
        (dict(mask_input=np.full((1, mh, mw), np.nan)), "NaN"),
        (dict(point_coords=np.array([[1.0, 2.0]]), point_labels=np.array([2])), "point_labels"),
        (dict(point_coords=np.array([[1.0, 2.0]]), point_labels=np.array([0.5])), "point_labels"),
        (dict(box=np.array([5.0, 1.0, 4.0, 2.0])), "inverted"),
        (dict(box=np.array([1.0, 5.0, 2.0, 4.0])), "inverted"),
        (dict(box=np.array([3.0, 1.0, 3.0, 4.0])), r"no area \(zero width\)"),
        (dict(box=np.array([[1.0, 2.0, 3.0, 2.0]])), r"no area \(zero height\)"),
        (dict(box=np.array([1.0, 1.0, 1.0, 1.0])), "no area"),
        (dict(point_coords=np.array([[w + 1.0, 2.0]]), point_labels=label), f"width {w} and height {h}"),
        (dict(point_coords=np.array([[1.0, -0.5]]), point_labels=label), "outside the image"),
        (dict(box=np.array([0.0, 0.0, 1.0, h + 0.5])), "outside the image"),
    ]
    for kwargs, match in cases:
        with pytest.raises(PromptValueError, match=match):
            ready.predict(**kwargs)


def test_prompt_bounds_are_inclusive(ready: Predictor) -> None:
    h, w = ready.original_size
    ready.predict(point_coords=np.array([[0.0, 0.0], [w, h]]), point_labels=np.array([1, 0]))
    ready.predict(box=np.array([0.0, 0.0, w, h]))
    ready.predict(box=np.array([[w - 1.0, h - 1.0, w, h]]))  # a one-pixel box in the corner


def test_zero_area_boxes_are_refused_in_batches(ready: Predictor) -> None:
    good = [1.0, 1.0, 4.0, 4.0]
    with pytest.raises(PromptValueError, match=r"box \[2.0, 2.0, 2.0, 5.0\] has no area"):
        ready.predict_batch(boxes=np.array([good, [2.0, 2.0, 2.0, 5.0]]))


def test_batch_shape_errors(ready: Predictor) -> None:
    mh, mw = low_res_shape(ready)
    boxes = lambda n: np.tile([1.0, 1.0, 2.0, 2.0], (n, 1))  # noqa: E731
    cases = [
        (dict(), "at least one"),
        (dict(boxes=np.array([1.0, 2.0, 3.0, 4.0])), "Bx4"),
        (dict(point_coords=np.array([[1.0, 2.0]]), point_labels=np.array([1])), "BxNx2"),
        (dict(point_coords=np.ones((2, 1, 2)), point_labels=np.ones((2, 2))), "point_labels"),
        (dict(point_coords=np.ones((2, 1, 2)), point_labels=np.ones((2, 1)), boxes=boxes(3)), "same batch"),
        (dict(boxes=boxes(2), mask_input=np.zeros((1, 1, mh, mw))), "same batch"),
        (dict(boxes=boxes(1), mask_input=np.zeros((1, mh, mw))), f"Bx1x{mh}x{mw}"),
    ]
    for kwargs, match in cases:
        with pytest.raises(PromptShapeError, match=match):
            ready.predict_batch(**kwargs)


def test_prompt_errors_are_value_errors() -> None:
    assert issubclass(PromptShapeError, ValueError) and issubclass(PromptValueError, ValueError)


def test_set_torch_image_checks_shape(sam: SimpleNamespace) -> None:
    predictor = Predictor(sam.model)
    with pytest.raises(ValueError, match="longest side"):
        predictor.set_torch_image(torch.zeros(1, 3, 10, 10), (10, 10))


def test_top_level_exports_are_lazy() -> None:
    code = (
        "import sys, zeroseg\n"
        "assert 'torch' not in sys.modules\n"
        "from zeroseg import MaskGenerator, Predictor\n"
        "assert Predictor.__module__ == 'zeroseg.segment.predictor'\n"
        "assert MaskGenerator.__module__ == 'zeroseg.segment.mask_generator'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
