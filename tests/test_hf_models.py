"""The adapters over transformers' SAM 2.1, SAM-HQ and SAM 3 tracker models against the models' own forward
passes on the reference preprocessing, on a real photo; EdgeTAM's missing dependency.

Tiny random configurations at the real input sizes (1024, 1008) are saved with ``save_pretrained`` and loaded
through ``build_hf_segmenter``. The reference side never calls zeroseg: it preprocesses as the official
processors document (SAM-HQ: transformers' own ``SamHQProcessor`` with its Pillow image processor; SAM 2 and
SAM 3: their torchvision-based processors' steps, written out here), runs ``model(pixel_values=...)`` and
upscales as their ``post_process_masks``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from skimage import data

from zeroseg.errors import CheckpointMismatchError, ConfigError, ModelError, WeightsNotFoundError
from zeroseg.models.hf import SAM2_PRESET, SAM_HQ_PRESET, build_hf_segmenter
from zeroseg.segment.mask_generator import MaskGenerator
from zeroseg.segment.pipeline import Everything
from zeroseg.segment.predictor import Predictor

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY_DECODER = {"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32}


# --- tiny models -------------------------------------------------------------------------------------------
def _sam2_config() -> transformers.Sam2Config:
    from transformers.models.sam2 import configuration_sam2 as c

    backbone = c.Sam2HieraDetConfig(
        hidden_size=8,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 8, 4],
        global_attention_blocks=[3],
    )
    vision = c.Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8], fpn_hidden_size=32)
    return transformers.Sam2Config(
        vision_config=vision,
        prompt_encoder_config=c.Sam2PromptEncoderConfig(hidden_size=32),
        mask_decoder_config=c.Sam2MaskDecoderConfig(**TINY_DECODER),
    )


def _sam_hq_config() -> transformers.SamHQConfig:
    from transformers.models.sam_hq import configuration_sam_hq as c

    vision = c.SamHQVisionConfig(
        hidden_size=16, output_channels=32, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1],
        mlp_dim=32, num_pos_feats=16,
    )
    return transformers.SamHQConfig(
        vision_config=vision,
        prompt_encoder_config=c.SamHQPromptEncoderConfig(hidden_size=32),
        mask_decoder_config=c.SamHQMaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32, vit_dim=16
        ),
    )


def _sam3_tracker_config() -> transformers.Sam3TrackerConfig:
    from transformers.models.sam3 import configuration_sam3 as s3
    from transformers.models.sam3_tracker import configuration_sam3_tracker as c

    vit = s3.Sam3ViTConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, window_size=8,
        global_attn_indexes=[1],
    )
    vision = s3.Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=32)
    return transformers.Sam3TrackerConfig(
        vision_config=vision,
        prompt_encoder_config=c.Sam3TrackerPromptEncoderConfig(hidden_size=32),
        mask_decoder_config=c.Sam3TrackerMaskDecoderConfig(**TINY_DECODER),
    )


@dataclass(frozen=True)
class Family:
    name: str
    model_class: type
    config: object
    side: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sam2_like: bool  # stretched square input, masks upscaled straight (Sam2ImageProcessor); else SAM's frame


FAMILIES = {
    "sam2": lambda: Family("sam2", transformers.Sam2Model, _sam2_config(), 1024, IMAGENET_MEAN, IMAGENET_STD, True),
    "sam_hq": lambda: Family(
        "sam_hq", transformers.SamHQModel, _sam_hq_config(), 1024, IMAGENET_MEAN, IMAGENET_STD, False
    ),
    "sam3_tracker": lambda: Family(
        "sam3_tracker", transformers.Sam3TrackerModel, _sam3_tracker_config(), 1008, (0.5,) * 3, (0.5,) * 3, True
    ),
}


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Weights large enough that the logits spread over several units (the default init gives ~1e-4)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=generator) * (1.5 / math.sqrt(fan_in)))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


@dataclass
class Built:
    family: Family
    folder: Path
    reference: torch.nn.Module  # the transformers model, loaded on its own
    predictor: Predictor
    image: np.ndarray


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[40:440])  # 400 x 512: not square, so the frames differ


@pytest.fixture(scope="module", params=list(FAMILIES))
def built(request, tmp_path_factory, image) -> Built:
    family = FAMILIES[request.param]()
    torch.manual_seed(0)
    model = family.model_class(family.config).eval()
    _randomize(model, seed=1)
    folder = tmp_path_factory.mktemp(family.name)
    model.save_pretrained(folder)
    reference = family.model_class.from_pretrained(folder).eval()
    predictor = Predictor(build_hf_segmenter(family.name, folder))
    predictor.set_image(image)
    return Built(family, folder, reference, predictor, image)


# --- the reference side --------------------------------------------------------------------------------------
def _torchvision_resize(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """torchvision's ``resize`` of a uint8 CHW tensor, bilinear with antialias (the processors' resampler): on a
    CPU with AVX2 it runs PyTorch's native uint8 kernel, elsewhere float32 then rounding."""
    pixels = torch.from_numpy(image).permute(2, 0, 1).contiguous()[None]
    if "AVX2" in torch.backends.cpu.get_cpu_capability():
        return F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
    out = F.interpolate(pixels.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round().to(torch.uint8)


def _sam2_pixel_values(family: Family, image: np.ndarray) -> torch.Tensor:
    """``Sam2ImageProcessor`` / ``Sam3ImageProcessor``: resize to side x side, rescale 1/255, normalise."""
    x = _torchvision_resize(image, (family.side, family.side)).float() / 255.0
    mean, std = torch.tensor(family.mean)[:, None, None], torch.tensor(family.std)[:, None, None]
    return (x - mean) / std


def _sam2_scale(coords: np.ndarray, family: Family, size: tuple[int, int]) -> torch.Tensor:
    """``Sam2Processor._normalize_coordinates``: x * side / width, y * side / height (float32)."""
    coords = torch.tensor(np.asarray(coords, dtype=np.float32))
    shape = coords.shape
    coords = coords.reshape(*shape[:-1], -1, 2).clone()
    coords[..., 0] *= family.side / size[1]
    coords[..., 1] *= family.side / size[0]
    return coords.reshape(shape)


@torch.no_grad()
def reference(
    built: Built,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
    multimask: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image, B prompts (points BxNx2, labels BxN, boxes Bx4, mask_input Bx1xhxw): the model's own
    forward pass -> low-res logits BxCxhxw, IoU BxC, upscaled logits BxCxHxW. Mask inputs go one prompt per
    forward call (each image then has its own dense prompt)."""
    if mask_input is not None and len(mask_input) > 1:
        parts = [
            reference(
                built,
                None if points is None else points[i : i + 1],
                None if labels is None else labels[i : i + 1],
                None if boxes is None else boxes[i : i + 1],
                mask_input[i : i + 1],
                multimask,
            )
            for i in range(len(mask_input))
        ]
        return tuple(torch.cat(t) for t in zip(*parts))
    family, image, model = built.family, built.image, built.reference
    size = image.shape[:2]
    masks_arg = {} if mask_input is None else {"input_masks": torch.tensor(mask_input)}
    if family.sam2_like:
        inputs = {"pixel_values": _sam2_pixel_values(family, image)}
        if points is not None:
            inputs["input_points"] = _sam2_scale(points, family, size)[None]
            inputs["input_labels"] = torch.tensor(labels, dtype=torch.int64)[None]
        if boxes is not None:
            inputs["input_boxes"] = _sam2_scale(boxes, family, size)[None]
        out = model(**inputs, **masks_arg, multimask_output=multimask)
        low, iou = out.pred_masks[0], out.iou_scores[0]
        # Sam2ImageProcessor.post_process_masks
        upscaled = F.interpolate(low, size, mode="bilinear", align_corners=False)
        return low, iou, upscaled
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    processor = transformers.SamHQProcessor(image_processor=SamImageProcessorPil())
    prompts = {}
    if points is not None:
        prompts["input_points"] = [np.asarray(points, dtype=np.float64).tolist()]
        prompts["input_labels"] = [np.asarray(labels).astype(int).tolist()]
    if boxes is not None:
        prompts["input_boxes"] = [np.asarray(boxes, dtype=np.float64).tolist()]
    inputs = processor(images=image, return_tensors="pt", **prompts)
    forward = {k: inputs[k] for k in ("pixel_values", "input_points", "input_labels", "input_boxes") if k in inputs}
    out = model(**forward, **masks_arg, multimask_output=multimask)
    upscaled = processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"], binarize=False
    )[0]
    return out.pred_masks[0], out.iou_scores[0], upscaled


def _check(built: Built, got: tuple[np.ndarray, ...], want: tuple[torch.Tensor, ...], logits: bool = False) -> None:
    masks, iou, low = (torch.as_tensor(np.asarray(a)) for a in got)
    want_low, want_iou, want_up = want
    if built.family.sam2_like:  # Meta's SAM 2 predictors return the low-res logits clamped to +/-32
        want_low = want_low.clamp(-32, 32)
    scale = max(1.0, float(want_up.abs().max()))
    torch.testing.assert_close(low, want_low.float(), atol=1e-5 * scale, rtol=1e-5)
    torch.testing.assert_close(iou, want_iou.float(), atol=1e-5, rtol=1e-5)
    if logits:
        torch.testing.assert_close(masks, want_up.float(), atol=1e-5 * scale, rtol=1e-5)
    else:
        assert masks.dtype == torch.bool and masks.shape == want_up.shape
        differ = masks != (want_up > 0)
        # only where the reference logit is within rounding of the threshold
        assert not differ.any() or float(want_up[differ].abs().max()) < 1e-4 * scale, int(differ.sum())
    assert float(want_up.abs().max()) > 1.0  # the random weights make real masks, not near-zero logits


# --- the tests -----------------------------------------------------------------------------------------------
def test_one_click_three_masks(built: Built) -> None:
    points, labels = np.array([[260.0, 150.0]]), np.array([1])
    got = built.predictor.predict(points, labels, multimask_output=True)
    assert got[0].shape == (3, 400, 512) and got[1].shape == (3,) and got[0].dtype == bool
    _check(built, got, _first(reference(built, points[None], labels[None], multimask=True)))


def _first(result: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t[0] for t in result)


def test_points_and_box_one_mask(built: Built) -> None:
    points, labels = np.array([[260.0, 150.0], [100.0, 300.0]]), np.array([1, 0])
    box = np.array([180.0, 40.0, 400.0, 390.0])
    got = built.predictor.predict(points, labels, box, multimask_output=False)
    assert got[0].shape == (1, 400, 512)
    _check(built, got, _first(reference(built, points[None], labels[None], box[None], multimask=False)))


def test_box_alone_logits(built: Built) -> None:
    box = np.array([20.0, 10.0, 300.0, 260.0])
    got = built.predictor.predict(box=box, multimask_output=True, return_logits=True)
    assert got[0].dtype == np.float32
    _check(built, got, _first(reference(built, boxes=box[None], multimask=True)), logits=True)


def test_batch_of_prompts(built: Built) -> None:
    points = np.array(
        [[[260.0, 150.0], [300.0, 200.0]], [[50.0, 50.0], [480.0, 380.0]], [[200.0, 300.0], [10.0, 390.0]]]
    )
    labels = np.array([[1, 1], [1, 0], [1, -1]])  # -1: a padding point ("not a point")
    boxes = np.array([[180.0, 40.0, 400.0, 390.0], [0.0, 0.0, 511.0, 399.0], [100.0, 200.0, 300.0, 399.0]])
    got = built.predictor.predict_batch(points, labels, boxes, multimask_output=True)
    assert got[0].shape == (3, 3, 400, 512) and got[1].shape == (3, 3)
    _check(built, got, reference(built, points, labels, boxes, multimask=True))
    got = built.predictor.predict_batch(points, labels, multimask_output=False)
    _check(built, got, reference(built, points, labels, multimask=False))


def test_mask_input(built: Built) -> None:
    predictor = built.predictor
    side = tuple(predictor.model.mask_input_size)
    points, labels = np.array([[260.0, 150.0]]), np.array([1])
    _, _, low = predictor.predict(points, labels, multimask_output=False)
    assert low.shape == (1, *side)
    got = predictor.predict(points, labels, mask_input=low, multimask_output=False)
    _check(built, got, _first(reference(built, points[None], labels[None], mask_input=low[None], multimask=False)))

    rng = np.random.default_rng(0)
    masks = rng.normal(0, 4, (2, 1, *side)).astype(np.float32)
    points2, labels2 = np.array([[[260.0, 150.0]], [[100.0, 100.0]]]), np.array([[1], [1]])
    got = predictor.predict_batch(points2, labels2, mask_input=masks, multimask_output=True)
    _check(built, got, reference(built, points2, labels2, mask_input=masks, multimask=True))
    # a mask alone
    got = predictor.predict_batch(mask_input=masks, multimask_output=False)
    _check(built, got, reference(built, mask_input=masks, multimask=False))


def test_preprocessing_matches_the_processor(built: Built) -> None:
    """The pixels zeroseg feeds the encoder equal the reference preprocessing's."""
    adapter, family = built.predictor.model, built.family
    resized = torch.as_tensor(adapter.transform.apply_image(built.image)).permute(2, 0, 1)[None]
    from zeroseg.models.hf.common import model_input

    ours = model_input(resized, adapter.spec)
    if family.sam2_like:
        want = _sam2_pixel_values(family, built.image)
    else:
        from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

        want = SamImageProcessorPil()(built.image, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours, want.float(), atol=1e-5, rtol=1e-5)


def test_embedding_cache_and_reset(built: Built) -> None:
    predictor = built.predictor
    embedding = predictor.get_image_embedding()
    assert embedding.ndim == 4 and embedding.shape[0] == 1
    calls = []
    adapter = predictor.model
    original = adapter.embed
    adapter.embed = lambda image: calls.append(1) or original(image)
    try:
        predictor.set_image(built.image[:, ::-1].copy())
        predictor.set_image(built.image)  # cached: no encoder run
    finally:
        del adapter.embed
    assert len(calls) == 1
    assert torch.equal(predictor.get_image_embedding(), embedding)
    mask = np.zeros(built.image.shape[:2], bool)
    mask[100:200, 150:300] = True
    assert predictor.mask_to_input(mask).shape == (1, *tuple(predictor.model.mask_input_size))


def test_segment_everything_runs_with_the_sam2_preset(tmp_path, image) -> None:
    family = FAMILIES["sam2"]()
    model = family.model_class(family.config).eval()
    _randomize(model, seed=2)
    model.save_pretrained(tmp_path)
    adapter = build_hf_segmenter("sam2", tmp_path)
    assert adapter.preset == SAM2_PRESET and SAM2_PRESET.pred_iou_thresh == 0.8
    records = MaskGenerator(adapter, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0).generate(image)
    assert records and all(r["segmentation"].shape == image.shape[:2] for r in records)
    loose = SAM2_PRESET.override(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    segments = Everything(adapter, loose)(image)
    assert segments and segments[0].mask.shape == image.shape[:2]


def test_segment_everything_on_each_model(built: Built) -> None:
    """MaskGenerator through the model's Predictor (sharing its cache): records at the image's size whose
    predicted IoU is the model's own for the grid point that made them."""
    predictor = built.predictor
    records = MaskGenerator(predictor, points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0).generate(
        built.image
    )
    predictor.set_image(built.image)  # the generator resets the image; the other tests use it
    assert records and all(r["segmentation"].shape == built.image.shape[:2] for r in records)
    record = records[0]
    point = np.array(record["point_coords"])
    _, ious, _ = predictor.predict(point, np.array([1]), multimask_output=True)
    assert np.isclose(ious, record["predicted_iou"], atol=1e-5).any()


def test_bfloat16_opt_in(built: Built) -> None:
    adapter = build_hf_segmenter(built.family.name, built.folder, dtype="bfloat16")
    assert next(adapter.parameters()).dtype == torch.bfloat16
    predictor = Predictor(adapter)
    predictor.set_image(built.image)
    masks, iou, low = predictor.predict(np.array([[260.0, 150.0]]), np.array([1]))
    assert masks.shape == (3, 400, 512) and iou.dtype == np.float32 and low.dtype == np.float32
    assert np.isfinite(low).all()


def test_presets() -> None:
    assert SAM_HQ_PRESET.pred_iou_thresh == 0.88 and SAM2_PRESET.stability_score_thresh == 0.95


def test_build_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown model family"):
        build_hf_segmenter("sam9", tmp_path)
    with pytest.raises(WeightsNotFoundError, match="no config.json"):
        build_hf_segmenter("sam2", tmp_path)
    model = transformers.Sam2Model(_sam2_config())
    model.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="'sam2' model, not a sam_hq one"):
        build_hf_segmenter("sam_hq", tmp_path)
    with pytest.raises(ConfigError, match="dtype"):
        build_hf_segmenter("sam2", tmp_path, dtype="int8")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises((WeightsNotFoundError, CheckpointMismatchError)):
        build_hf_segmenter("sam2", tmp_path)


def test_edgetam_says_what_it_needs(tmp_path) -> None:
    """EdgeTAM's RepViT encoder is timm's, and timm imports torchvision: without timm a clear error."""
    import importlib.util

    (tmp_path / "config.json").write_text('{"model_type": "edgetam"}')
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(ModelError, match="timm"):
            build_hf_segmenter("edgetam", tmp_path)
    else:  # pragma: no cover - timm present: the folder is incomplete, and it says so
        with pytest.raises(ModelError):
            build_hf_segmenter("edgetam", tmp_path)


HUB_NAMES = {"sam2": "sam2.1_hiera_tiny", "sam_hq": "sam_hq_vit_b", "sam3_tracker": "sam3_tracker"}


def test_through_the_hub_with_a_checkpoint_folder(built: Built) -> None:
    """``load_model(name, checkpoint=DIR)`` builds the same adapter, stamped with the family's preset."""
    from zeroseg import hub
    from zeroseg.models.hf import preset_for

    name = HUB_NAMES[built.family.name]
    model = hub.load_model(name, checkpoint=built.folder)
    assert model.name == name and hub.preset_of(model) == preset_for(built.family.name)
    predictor = Predictor(model)
    predictor.set_image(built.image)
    points, labels = np.array([[260.0, 150.0]]), np.array([1])
    got = predictor.predict(points, labels, multimask_output=True)
    _check(built, got, _first(reference(built, points[None], labels[None], multimask=True)))


def test_compiled_prompt_path_gives_the_same_masks(built: Built) -> None:
    """``load_model(..., compile=True)`` compiles the prompt path and warms it up; its masks are the model's."""
    from zeroseg import hub

    model = hub.load_model(HUB_NAMES[built.family.name], checkpoint=built.folder, compile=True)
    assert model.model._compiled_call_impl is not None  # nn.Module.compile's
    predictor = Predictor(model)
    predictor.set_image(built.image)
    points, labels = np.array([[260.0, 150.0]]), np.array([1])
    got = predictor.predict(points, labels, multimask_output=True)
    _check(built, got, _first(reference(built, points[None], labels[None], multimask=True)))
    low = got[2][:1]
    points, labels = np.array([[260.0, 150.0], [100.0, 300.0], [300.0, 200.0]]), np.array([1, 0, 1])
    got = predictor.predict(points, labels, mask_input=low, multimask_output=False)
    want = reference(built, points[None], labels[None], mask_input=low[None], multimask=False)
    _check(built, got, _first(want))


def test_compile_is_for_the_hugging_face_models() -> None:
    from zeroseg import hub

    with pytest.raises(ConfigError, match="compile is for the Hugging Face models"):
        hub.load_model("lite", compile=True)
