"""SAM 3 concept prompts without weights: a tiny random ``Sam3Model`` saved with ``save_pretrained``.

zeroseg's adapter (its own preprocessing, the model's forward passes on cached embeddings, its own
post-processing) must give what transformers' model gives on the reference preprocessing, on a real
photo, for a text prompt, exemplar boxes and both. The text tower runs once per phrase of a
vocabulary, whatever the number of images. Segments, the engine's automatic stage and the CLI run
on the tiny folder.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as skimage_data
from typer.testing import CliRunner

from zeroseg import cli, hub
from zeroseg.errors import PromptShapeError, PromptValueError, UnknownModelError
from zeroseg.models.hf.sam3 import (
    ConceptInstances,
    Sam3Concepts,
    build_sam3,
    install_roi_align,
    roi_align,
)
from zeroseg.segment import text_to_masks
from zeroseg.segment.concept import ConceptLabeller, concept_masks, is_concept_model

IMAGE_SIZE = 112  # the tiny model's square input (patch 14 -> 8 x 8 tokens)
MERGES = [("c", "o"), ("co", "w</w>"), ("p", "e"), ("pe", "r"), ("per", "s"), ("a", "s"), ("t", "r")]


# --- a tiny checkpoint folder ------------------------------------------------------------------
def byte_symbols() -> list[str]:
    """GPT-2's byte -> printable character table, which CLIP's BPE vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in symbols)
    symbols.update({b: chr(256 + i) for i, b in enumerate(shifted)})
    return [symbols[b] for b in range(256)]


def write_tokenizer(folder: Path) -> int:
    """A tiny CLIP tokenizer (bytes, a few merges, start/end tokens) saved to ``folder``; its vocab size."""
    from transformers import CLIPTokenizer

    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in MERGES) + "\n")
    CLIPTokenizer.from_pretrained(str(folder)).save_pretrained(str(folder))
    return len(tokens)


def tiny_config(vocab_size: int):
    from transformers.models.sam3.configuration_sam3 import Sam3Config

    grid = IMAGE_SIZE // 14
    small = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    return Sam3Config(
        vision_config={
            "backbone_config": {"model_type": "sam3_vit_model", **small, "num_hidden_layers": 2,
                                "image_size": IMAGE_SIZE, "patch_size": 14, "window_size": 4,
                                "global_attn_indexes": [1], "pretrain_image_size": 56},
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
        },
        text_config={"model_type": "clip_text_model", **small, "vocab_size": vocab_size, "projection_dim": 32,
                     "num_hidden_layers": 1, "max_position_embeddings": 32, "bos_token_id": vocab_size - 2,
                     "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1},
        geometry_encoder_config={**small, "num_layers": 1},
        detr_encoder_config={**small, "num_layers": 1},
        detr_decoder_config={**small, "num_layers": 1, "num_queries": 16},
        mask_decoder_config={"hidden_size": 32, "num_attention_heads": 2},
    )  # fmt: skip


def write_tiny_sam3(folder: Path, seed: int = 0) -> Path:
    """A tiny random Sam3Model + tokenizer in the Hugging Face layout. Its instance logits are spread
    wide and its presence score is near 1, so that some instances pass the 0.5 score bar and some do
    not, differently for each phrase."""
    from transformers.models.sam3.modeling_sam3 import Sam3Model

    vocab_size = write_tokenizer(folder)
    torch.manual_seed(seed)
    model = Sam3Model(tiny_config(vocab_size)).eval()
    with torch.no_grad():
        model.dot_product_scoring.query_proj.weight.mul_(40.0)
        model.detr_decoder.presence_head.layer3.bias.fill_(8.0)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_tiny_sam3(tmp_path_factory.mktemp("tiny_sam3"))


@pytest.fixture(scope="module")
def concepts(folder) -> Sam3Concepts:
    return build_sam3(folder)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skimage_data.astronaut()[:480, 16:]  # 480 x 496: not square


# --- the reference: transformers' processor steps, written out from its source ------------------
def reference_pixels(image: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Sam3ImageProcessor (torchvision backend, CPU): uint8 CHW -> antialiased bilinear resize (the
    native uint8 kernel where torchvision takes it, else float32 then round) -> fused rescale and
    normalise with mean = std = 0.5."""
    pixels = torch.from_numpy(image).permute(2, 0, 1).contiguous()[None]
    if "AVX2" in torch.backends.cpu.get_cpu_capability():
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    else:
        pixels = F.interpolate(pixels.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        pixels = pixels.round().to(torch.uint8)
    mean = torch.tensor([0.5, 0.5, 0.5]) * (1.0 / (1 / 255))
    std = torch.tensor([0.5, 0.5, 0.5]) * (1.0 / (1 / 255))
    return (pixels.float() - mean[:, None, None]) / std[:, None, None]


def reference_boxes(boxes: list[list[float]], height: int, width: int) -> torch.Tensor:
    """Sam3Processor: XYXY pixels / (w, h, w, h) -> (cx, cy, w, h), one image."""
    xyxy = torch.tensor(boxes, dtype=torch.float32) / torch.tensor([width, height, width, height])
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    return torch.stack([cx, cy, xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], -1)[None]


def reference_instances(outputs, height: int, width: int, threshold: float) -> ConceptInstances:
    """Sam3ImageProcessor.post_process_instance_segmentation for one image, then best score first."""
    scores = outputs.pred_logits.sigmoid() * outputs.presence_logits.sigmoid()
    keep = scores[0] > threshold
    boxes = outputs.pred_boxes[0][keep] * torch.tensor([width, height, width, height])
    masks = outputs.pred_masks.sigmoid()[0][keep]
    if len(masks):
        masks = F.interpolate(masks[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    masks = masks > 0.5
    order = torch.argsort(-scores[0][keep], stable=True)
    return ConceptInstances(masks[order].numpy(), boxes[order].numpy(), scores[0][keep][order].numpy())


def reference_forward(concepts: Sam3Concepts, image: np.ndarray, text: str, boxes=None, labels=None):
    tokens = concepts.tokenizer([text], padding="max_length", max_length=32, return_tensors="pt")
    extra = {}
    if boxes is not None:
        extra = {"input_boxes": reference_boxes(boxes, *image.shape[:2]), "input_boxes_labels": torch.tensor([labels])}
    with torch.inference_mode():
        return concepts.model(pixel_values=reference_pixels(image), input_ids=tokens["input_ids"],
                              attention_mask=tokens["attention_mask"], **extra)  # fmt: skip


def assert_same(found: ConceptInstances, expected: ConceptInstances) -> None:
    assert len(expected) > 0, "the test prompt should find something"
    np.testing.assert_array_equal(found.scores, expected.scores)
    np.testing.assert_array_equal(found.boxes, expected.boxes)
    np.testing.assert_array_equal(found.masks, expected.masks)


def middle_score(outputs) -> float:
    """A threshold that some of the prompt's instances pass and some do not."""
    scores = (outputs.pred_logits.sigmoid() * outputs.presence_logits.sigmoid())[0].sort().values
    return float(scores[len(scores) // 2])


# --- adapter == transformers -------------------------------------------------------------------
def test_preprocessing_is_the_processors(concepts, photo):
    ours = concepts.preprocess(photo)
    assert ours.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference_pixels(photo), rtol=0, atol=0)
    # and PIL's bilinear (the slow processors' resampling) agrees up to rounding
    pil = np.asarray(Image.fromarray(photo).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
    ours_uint8 = (ours[0].permute(1, 2, 0) * 127.5 + 127.5).round().numpy()
    assert np.abs(ours_uint8 - pil).max() <= 2


def test_text_prompt_equals_the_models_forward(concepts, photo):
    expected_outputs = reference_forward(concepts, photo, "a cow")
    threshold = middle_score(expected_outputs)
    expected = reference_instances(expected_outputs, *photo.shape[:2], threshold)
    concepts.clear_cache()
    (found,) = concepts.find(photo, "a cow", threshold=threshold)
    assert_same(found, expected)
    assert found.masks.shape[1:] == photo.shape[:2] and (np.diff(found.scores) <= 0).all()


def test_exemplar_boxes_equal_the_models_forward(concepts, photo):
    boxes, labels = [[150.0, 20.0, 330.0, 200.0], [20.5, 300.0, 120.0, 470.0]], [1, 0]
    expected_outputs = reference_forward(concepts, photo, "visual", boxes, labels)
    threshold = middle_score(expected_outputs)
    expected = reference_instances(expected_outputs, *photo.shape[:2], threshold)
    (found,) = concepts.find(photo, None, exemplar_boxes=boxes, exemplar_labels=labels, threshold=threshold)
    assert_same(found, expected)


def test_text_and_exemplars_together_equal_the_models_forward(concepts, photo):
    boxes, labels = [[150.0, 20.0, 330.0, 200.0]], [1]
    expected_outputs = reference_forward(concepts, photo, "persons", boxes, labels)
    threshold = middle_score(expected_outputs)
    expected = reference_instances(expected_outputs, *photo.shape[:2], threshold)
    (found,) = concepts.find(photo, "persons", exemplar_boxes=boxes, exemplar_labels=labels, threshold=threshold)
    assert_same(found, expected)
    (text_only,) = concepts.find(photo, "persons", threshold=threshold)
    assert not np.array_equal(text_only.scores, found.scores)  # the exemplar changed the prompt


def test_vocabulary_text_runs_once_for_all_images(folder, photo):
    model = build_sam3(folder)
    calls = {"text": 0, "vision": 0}
    model.model.text_encoder.register_forward_hook(lambda *_: calls.__setitem__("text", calls["text"] + 1))
    model.model.vision_encoder.register_forward_hook(lambda *_: calls.__setitem__("vision", calls["vision"] + 1))
    names = ["a cow", "persons", "a tree"]
    images = [photo, photo[:, ::-1].copy(), photo[::2, ::2].copy()]
    results = [model.find(image, names, threshold=0.0) for image in images]
    assert calls == {"text": len(names), "vision": len(images)}
    assert [len(r) for r in results] == [len(names)] * len(images)
    # each name's result is the single-prompt result
    (alone,) = build_sam3(folder).find(images[1], "persons", threshold=0.0)
    np.testing.assert_array_equal(results[1][1].scores, alone.scores)
    model.find(images[-1], names, threshold=0.0)  # the last image again: both caches hit
    assert calls == {"text": len(names), "vision": len(images)}


def test_lite_text_tower_equals_its_models_forward(tmp_path, photo):
    """SAM3-LiteText (a MobileCLIP text tower on SAM 3) through the same adapter."""
    from transformers.models.sam3_lite_text.configuration_sam3_lite_text import Sam3LiteTextConfig
    from transformers.models.sam3_lite_text.modeling_sam3_lite_text import Sam3LiteTextModel

    vocab_size = write_tokenizer(tmp_path)
    parts = tiny_config(vocab_size).to_dict()
    text = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
            "num_hidden_layers": 3, "num_attention_heads": 2, "repmixer_kernel_size": 3}  # fmt: skip
    config = Sam3LiteTextConfig(text_config=text, **{k: v for k, v in parts.items() if k.endswith("_config") and k != "text_config"})
    torch.manual_seed(1)
    Sam3LiteTextModel(config).eval().save_pretrained(str(tmp_path))
    concepts = build_sam3(tmp_path)
    assert type(concepts.model).__name__ == "Sam3LiteTextModel"
    boxes, labels = [[150.0, 20.0, 330.0, 200.0]], [1]
    expected_outputs = reference_forward(concepts, photo, "a cow", boxes, labels)
    threshold = middle_score(expected_outputs)
    expected = reference_instances(expected_outputs, *photo.shape[:2], threshold)
    (found,) = concepts.find(photo, "a cow", exemplar_boxes=boxes, exemplar_labels=labels, threshold=threshold)
    assert_same(found, expected)


def test_a_video_layout_folder_loads_its_detector(tmp_path, folder, photo):
    """A ``sam3_video`` folder (detector weights under ``detector_model.``, tracker weights beside them)
    gives the image model's results."""
    from safetensors.torch import load_file, save_file

    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    detector = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam3_video", "detector_config": detector}))
    weights = {f"detector_model.{k}": v for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file({**weights, "tracker_model.any": torch.zeros(1)}, str(tmp_path / "model.safetensors"), {"format": "pt"})
    (video,) = build_sam3(tmp_path).find(photo, "a cow", threshold=0.0)
    (image,) = build_sam3(folder).find(photo, "a cow", threshold=0.0)
    np.testing.assert_array_equal(video.scores, image.scores)


def test_bfloat16_runs_and_stays_close(folder, photo):
    model = build_sam3(folder, dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    (found,) = model.find(photo, "a cow", exemplar_boxes=[[150, 20, 330, 200]], threshold=0.0)
    (exact,) = build_sam3(folder).find(photo, "a cow", exemplar_boxes=[[150, 20, 330, 200]], threshold=0.0)
    assert len(found) == len(exact)
    assert np.abs(np.sort(found.scores) - np.sort(exact.scores)).max() < 0.1


def test_clicks_on_a_concept_model_say_what_to_use(concepts):
    from zeroseg.models.hf.sam3 import NotPromptableError
    from zeroseg.segment import Predictor

    with pytest.raises(NotPromptableError, match="sam3_tracker"):
        Predictor(concepts)


def test_prompt_errors(concepts, photo):
    with pytest.raises(PromptValueError):
        concepts.find(photo, None)
    with pytest.raises(PromptShapeError):
        concepts.find(photo, "a cow", exemplar_boxes=[[0, 0, 10, 10]], exemplar_labels=[1, 0])
    with pytest.raises(PromptValueError):
        concepts.find(photo, "a cow", exemplar_boxes=[[0, 0, 10, 10]], exemplar_labels=[2])


# --- roi_align: torchvision's CPU kernel, loop by loop ------------------------------------------
def roi_align_loops(features: torch.Tensor, rois: torch.Tensor, out: int) -> torch.Tensor:
    """torchvision's roi_align CPU kernel (aligned=False, adaptive sampling), one sample at a time."""
    _, channels, height, width = features.shape
    result = torch.zeros(len(rois), channels, out, out, dtype=torch.float64)
    for k, (b, x0, y0, x1, y1) in enumerate(rois.tolist()):
        roi_w, roi_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        bin_h, bin_w = roi_h / out, roi_w / out
        grid_h, grid_w = math.ceil(roi_h / out), math.ceil(roi_w / out)
        plane = features[int(b)].double()
        for ph in range(out):
            for pw in range(out):
                total = torch.zeros(channels, dtype=torch.float64)
                for iy in range(grid_h):
                    y = y0 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = x0 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        if y < -1.0 or y > height or x < -1.0 or x > width:
                            continue
                        yy, xx = max(y, 0.0), max(x, 0.0)
                        y_low, x_low = int(yy), int(xx)
                        if y_low >= height - 1:
                            y_low = y_high = height - 1
                            yy = float(y_low)
                        else:
                            y_high = y_low + 1
                        if x_low >= width - 1:
                            x_low = x_high = width - 1
                            xx = float(x_low)
                        else:
                            x_high = x_low + 1
                        ly, lx = yy - y_low, xx - x_low
                        total += ((1 - ly) * (1 - lx) * plane[:, y_low, x_low] + (1 - ly) * lx * plane[:, y_low, x_high]
                                  + ly * (1 - lx) * plane[:, y_high, x_low] + ly * lx * plane[:, y_high, x_high])  # fmt: skip
                result[k, :, ph, pw] = total / max(grid_h * grid_w, 1)
    return result.float()


def test_roi_align_matches_torchvisions_kernel():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 9, 11)
    boxes = [
        torch.tensor([[0.0, 0.0, 11.0, 9.0], [2.3, 1.7, 7.9, 6.2], [3.0, 3.0, 3.4, 3.2]]),  # whole, inside, tiny
        torch.tensor([[-2.0, -1.5, 4.0, 5.0], [8.0, 6.0, 13.5, 12.0], [10.6, 8.6, 11.0, 9.0]]),  # over the edges
    ]
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    ours = roi_align(features, boxes, 7)
    torch.testing.assert_close(ours, roi_align_loops(features, rois, 7), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(roi_align(features, rois, 7), ours)
    half = roi_align(features.half(), [b.half() for b in boxes], 7)  # what the model does in bfloat16
    assert half.dtype == torch.float16 and torch.allclose(half.float(), ours, atol=1e-2)


def test_roi_align_is_given_to_the_modelling_module_only_when_torchvision_is_absent():
    from transformers.models.sam3 import modeling_sam3

    install_roi_align()
    assert modeling_sam3.torchvision.ops.roi_align is roi_align
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401  (zeroseg never installs or fakes it)


# --- Segment records ----------------------------------------------------------------------------
def test_text_to_masks_gives_every_instance_as_segments(concepts, photo):
    assert is_concept_model(concepts)
    (expected,) = concepts.find(photo, "a cow")
    expected_scores = [s for s, m in zip(expected.scores, expected.masks) if m.any()]
    segments = text_to_masks(photo, "a  cow", model=concepts)
    assert len(segments) == len(expected_scores) > 1
    assert [s.predicted_iou for s in segments] == pytest.approx(expected_scores)
    for segment in segments:
        assert segment.label == "a cow" and segment.label_score == segment.predicted_iou
        assert segment.prompt == {"text": "a cow"} and segment.source == "assisted"
        assert segment.size == photo.shape[:2] and segment.area > 0
    assert text_to_masks(photo, "a cow", model=concepts, threshold=0.999999) == []
    assert len(text_to_masks(photo, "a cow", model=concepts, max_instances=1)) == 1


def test_exemplars_combine_with_text_in_one_path(concepts, photo):
    exemplars = [((150, 20, 330, 200), True), ((20, 300, 120, 470), False)]
    both = concept_masks(photo, concepts, "persons", exemplars)
    (expected,) = concepts.find(photo, "persons", exemplar_boxes=[e[0] for e in exemplars], exemplar_labels=[1, 0])
    assert [s.predicted_iou for s in both] == pytest.approx([s for s, m in zip(expected.scores, expected.masks) if m.any()])
    assert both[0].prompt == {"text": "persons", "exemplars": [[150, 20, 330, 200, 1], [20, 300, 120, 470, 0]]}
    alone = text_to_masks(photo, None, model=concepts, exemplars=exemplars[:1])
    assert alone and all(s.label is None and s.label_score is None for s in alone)
    with pytest.raises(PromptValueError, match="inverted"):
        concept_masks(photo, concepts, "a cow", [((50, 50, 10, 10), True)])
    with pytest.raises(PromptValueError):
        concept_masks(photo, concepts, None, [])


def test_the_promptable_path_of_text_to_masks_still_needs_its_namer(photo):
    with pytest.raises(PromptValueError, match="namer"):
        text_to_masks(photo, "a cow")
    with pytest.raises(PromptValueError, match="concept model"):
        text_to_masks(photo, "a cow", exemplars=[((0, 0, 5, 5), True)])


def test_concept_labeller_names_every_instance_and_drops_cross_name_duplicates(concepts, photo):
    labeller = ConceptLabeller(concepts, "a cow, persons, a cow", threshold=0.5, dedupe_iou=1.0)
    assert labeller.names == ["a cow", "persons"]
    segments = labeller(photo)
    per_name = [concept_masks(photo, concepts, name) for name in labeller.names]
    assert sorted((s.label, s.predicted_iou) for s in segments) == sorted(
        (s.label, s.predicted_iou) for found in per_name for s in found
    )
    assert [s.predicted_iou for s in segments] == sorted((s.predicted_iou for s in segments), reverse=True)
    assert all(s.source == "auto" for s in segments)
    deduped = ConceptLabeller(concepts, ["a cow", "persons"], threshold=0.5, dedupe_iou=0.0)(photo)
    labels = [s.label for s in deduped]
    for i, a in enumerate(deduped):  # no two masks of different names overlap at all
        for b in deduped[i + 1 :]:
            assert a.label == b.label or not (a.mask & b.mask).any()
    assert len(deduped) <= len(segments) and set(labels) <= {"a cow", "persons"}
    assert len(ConceptLabeller(concepts, ["a cow"], threshold=0.5, max_masks=2)(photo)) <= 2


# --- faces: the engine's automatic stage and the CLI ------------------------------------------
@pytest.fixture
def tiny_entry(scratch_hub, folder):
    """A registered segmenter built from the tiny folder (``tiny_sam3``)."""
    scratch_hub("tiny_sam3", lambda checkpoint=None: build_sam3(checkpoint or folder), kind=hub.SEGMENTER)
    return "tiny_sam3"


def test_engine_auto_labels_every_instance_of_every_name(tmp_path, tiny_entry, photo):
    from zeroseg.engine import Store, stages

    images = tmp_path / "images"
    images.mkdir()
    for k, image in enumerate([photo, photo[:, ::-1]]):
        Image.fromarray(np.ascontiguousarray(image)).save(images / f"img{k}.png")
    config = stages.AutoConfig(model=tiny_entry, names="a cow, persons")
    models = stages.load_models(config)
    assert isinstance(models.pipeline, ConceptLabeller) and models.pipeline.model.name == "tiny_sam3"
    with Store.open(tmp_path / "db") as store:
        stages.add_images(store, "d", [images])
        summary = stages.auto(store, "d", config, progress=False, models=models)
        assert summary.processed == 2 and summary.annotations > 0
        first = store.images("d")[0]
        stored = store.annotations_for(first.id)
        expected = models.pipeline(stages.read_image(first.file, first.height, first.width))
        assert [(a.label, a.predicted_iou, a.rle["counts"]) for a in stored] == [
            (s.label, s.predicted_iou, s.rle["counts"]) for s in expected
        ]
        assert {a.label for a in stored} <= {"a cow", "persons"} and {a.source.value for a in stored} == {"auto"}
    with pytest.raises(PromptValueError, match="names"):
        stages.load_models(stages.AutoConfig(model=tiny_entry))


def test_cli_segment_text_and_exemplars_end_to_end(tmp_path, folder, photo, tiny_entry):
    image = tmp_path / "photo.png"
    Image.fromarray(photo).save(image)
    try:  # the hub's own entry, with the folder as --checkpoint, once it exists
        hub.get("sam3")
        model = ["--model", "sam3", "--checkpoint", folder]
    except UnknownModelError:
        model = ["--model", tiny_entry]
    out = tmp_path / "out"
    args = ["segment", image, *model, "--text", "a cow", "--exemplar", "150,20,330,200", "-e", "20,300,120,470,neg",
            "-o", out]  # fmt: skip
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "result.json").read_text())
    assert written["prompts"]["text"] == ["a cow"]
    assert written["prompts"]["exemplars"] == [[150, 20, 330, 200, 1], [20, 300, 120, 470, 0]]
    expected = concept_masks(photo, build_sam3(folder), "a cow", [((150, 20, 330, 200), True), ((20, 300, 120, 470), False)])
    assert [m["score"] for m in written["masks"]] == pytest.approx([s.predicted_iou for s in expected])
    assert all(m["label"] == "a cow" for m in written["masks"]) and (out / "overlay.png").is_file()

    if model[1] == "sam3":  # the hub's entry takes --dtype
        half = CliRunner().invoke(cli.app, [str(a) for a in [*args, "--dtype", "bfloat16"]])
        assert half.exit_code == 0, half.output
    nothing = CliRunner().invoke(cli.app, [str(a) for a in ["segment", image, *model, "-p", "10,10", "-o", out]])
    assert nothing.exit_code != 0 and "--point" in nothing.output
    wrong = CliRunner().invoke(cli.app, [str(a) for a in ["segment", image, *model, "-e", "1,2,3", "-o", out]])
    assert wrong.exit_code != 0 and "--exemplar" in wrong.output


def test_names_masks_through_the_namer(concepts, photo):
    """A concept model names masks through the Namer API: a mask that is one of a name's instances scores at
    least that instance's score for the name (IoU 1)."""
    from zeroseg.segment.concept_naming import ConceptNamer
    from zeroseg.segment.naming import load_namer

    assert isinstance(load_namer(["a cow", "grass"], concepts), ConceptNamer)
    namer = ConceptNamer(concepts, ["a cow", "grass"], threshold=0.0)  # random weights: every query's instance
    found = concepts.find(photo, ["a cow", "grass"], threshold=0.0)
    picks = [(k, i) for k, f in enumerate(found) for i in range(len(f)) if f.masks[i].any()][:3]
    assert picks
    masks = np.stack([found[k].masks[i] for k, i in picks])
    logits, present = namer.mask_logits(photo, masks)
    assert logits.shape == (len(picks), 3) and present.all()
    for row, (k, i) in enumerate(picks):
        assert float(logits[row, k].exp()) >= float(found[k].scores[i]) - 1e-4
    names = namer.name_masks(photo, masks)
    assert all(label in (None, "a cow", "grass") and 0 <= score <= 1 for label, score in names)
    assert namer.label_pixels(photo).shape == photo.shape[:2]
