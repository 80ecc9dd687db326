"""SAM model: official state-dict layout, golden equivalence with the reference, checkpoint errors."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from goldens import unpack
import pytest
import torch
from PIL import Image

from zeroseg.errors import (
    CheckpointMismatchError,
    CheckpointReadError,
    ConfigError,
    UnknownModelError,
    WeightsNotFoundError,
)
from zeroseg.models.sam import Sam, build_from_config, build_sam, official_config

# --- reference preprocessing, as described in the goldens README ----------------------------


def resized_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(H, W) after scaling the longest side to ``long_side``, rounding half up."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_uint8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow BILINEAR resize of an HxWx3 uint8 image to ``size`` = (H, W)."""
    return np.array(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def to_input_frame(coords: list, original_size: list[int], input_size: list[int]) -> torch.Tensor:
    """(x, y) pixels of the original image -> pixels of the resized image, float32 (Nx2)."""
    xy = np.array(coords, dtype=np.float64).reshape(-1, 2)
    xy[:, 0] *= input_size[1] / original_size[1]
    xy[:, 1] *= input_size[0] / original_size[0]
    return torch.as_tensor(xy, dtype=torch.float32)


def read_image(goldens_dir: Path, name: str) -> np.ndarray:
    return np.array(Image.open(goldens_dir / name).convert("RGB"))




# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam_goldens(goldens_dir: Path) -> dict:
    return json.loads((goldens_dir / "sam" / "sam_goldens.json").read_text())


@pytest.fixture(scope="module")
def golden_sam(goldens_dir: Path, sam_goldens: dict) -> Sam:
    config = json.loads((goldens_dir / sam_goldens["config"]).read_text())
    return build_from_config(config, goldens_dir / sam_goldens["checkpoint"])


def golden_arrays(goldens_dir: Path, image_name: str) -> np.lib.npyio.NpzFile:
    return np.load(goldens_dir / "sam" / f"sam_{image_name}.npz")


# --- official layout ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_state_dict_matches_official_manifest(name: str, manifests_dir: Path) -> None:
    manifest = json.loads((manifests_dir / f"sam_{name}.json").read_text())["state_dict"]
    with torch.device("meta"):
        model = build_sam(name)
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert list(ours) == list(manifest)
    assert ours == manifest
    assert model.image_encoder.img_size == 1024
    assert not model.training


def test_mobile_sam_state_dict_matches_official_manifest(manifests_dir: Path) -> None:
    manifest = json.loads((manifests_dir / "mobile_sam_vit_t.json").read_text())["state_dict"]
    ours = {key: list(value.shape) for key, value in build_sam("vit_t").state_dict().items()}
    assert ours == manifest
    assert list(ours) == list(manifest)


def test_official_config_is_a_fresh_dict_and_names_are_checked() -> None:
    config = official_config("vit_b")
    config["image_encoder"]["depth"] = 1
    assert official_config("vit_b")["image_encoder"]["depth"] == 12
    assert official_config("vit_t")["image_encoder"]["class"] == "TinyViT"
    with pytest.raises(UnknownModelError):
        official_config("vit_x")


def test_bad_config_raises_config_error(goldens_dir: Path) -> None:
    config = json.loads((goldens_dir / "sam" / "sam_tiny_config.json").read_text())
    with pytest.raises(ConfigError, match="image encoder"):
        build_from_config({**config, "image_encoder": {"class": "Hiera"}})
    with pytest.raises(ConfigError, match="prompt_encoder"):
        build_from_config({key: value for key, value in config.items() if key != "prompt_encoder"})
    with pytest.raises(ConfigError, match="activation"):
        build_from_config({**config, "prompt_encoder": {**config["prompt_encoder"], "activation": "Swish"}})
    with pytest.raises(ConfigError, match="image_format"):
        build_from_config({**config, "image_format": "YUV"})


def test_config_sets_mask_threshold_and_image_format(goldens_dir: Path) -> None:
    config = json.loads((goldens_dir / "sam" / "sam_tiny_config.json").read_text())
    model = build_from_config({**config, "mask_threshold": 0.5, "image_format": "BGR"})
    assert (model.mask_threshold, model.image_format) == (0.5, "BGR")
    assert (build_from_config(config).mask_threshold, Sam.mask_threshold) == (config["mask_threshold"], 0.0)


# --- golden equivalence -------------------------------------------------------------------


def test_image_embeddings_match_goldens(golden_sam: Sam, goldens_dir: Path, sam_goldens: dict) -> None:
    img_size = golden_sam.image_encoder.img_size
    for name, record in sam_goldens["predictor"].items():
        image = read_image(goldens_dir, record["image"])
        assert list(image.shape[:2]) == record["original_size"]
        size = resized_size(*image.shape[:2], img_size)
        assert list(size) == record["input_size"]
        resized = resize_uint8(image, size)
        assert hashlib.sha256(resized.tobytes()).hexdigest() == record["resized_uint8_sha256"], name

        x = torch.as_tensor(resized).permute(2, 0, 1)[None]
        with torch.inference_mode():
            features = golden_sam.image_encoder(golden_sam.preprocess(x))
        expected = golden_arrays(goldens_dir, name)["features"]
        np.testing.assert_allclose(features.numpy(), expected, rtol=1e-4, atol=1e-4, err_msg=name)


def iter_calls(sam_goldens: dict):
    """(image name, record, case, call, array prefix) for every golden predictor call."""
    for name, record in sam_goldens["predictor"].items():
        for case in record["cases"]:
            for call in case["calls"]:
                mode = "mm" if call["multimask_output"] else "single"
                yield name, record, case, call, f"{case['name']}__{mode}__"


def decode(sam: Sam, features: torch.Tensor, arrays, record: dict, case: dict, multimask: bool):
    """The reference predictor's prompt handling, straight from the golden image embedding."""
    prompt = case["prompt"]
    points = boxes = masks = None
    if "point_coords" in prompt:
        coords = to_input_frame(prompt["point_coords"], record["original_size"], record["input_size"])
        labels = torch.as_tensor(prompt["point_labels"], dtype=torch.int)
        points = (coords[None], labels[None])
    if "box" in prompt:
        boxes = to_input_frame(prompt["box"], record["original_size"], record["input_size"]).reshape(1, 4)
    if prompt.get("mask_input") is not None:
        masks = torch.as_tensor(arrays[f"{case['name']}__mask_input"])[None]
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return sam.mask_decoder(
            image_embeddings=features,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )


def test_decoder_matches_goldens(golden_sam: Sam, goldens_dir: Path, sam_goldens: dict) -> None:
    checked = 0
    for name, record, case, call, prefix in iter_calls(sam_goldens):
        arrays = golden_arrays(goldens_dir, name)
        features = torch.as_tensor(arrays["features"])
        low_res, iou = decode(golden_sam, features, arrays, record, case, call["multimask_output"])
        atol = 5e-3 if case["name"] == "mask_point" else 2e-3
        np.testing.assert_allclose(
            low_res[0].numpy(), arrays[prefix + "low_res_masks"], rtol=1e-4, atol=atol, err_msg=prefix
        )
        np.testing.assert_allclose(iou[0].numpy(), arrays[prefix + "iou_predictions"], rtol=0, atol=1e-4)

        logits = golden_sam.postprocess_masks(low_res, record["input_size"], record["original_size"])[0]
        assert list(logits.shape) == call["masks_shape"]
        if prefix + "masks_logits" in arrays:
            np.testing.assert_allclose(logits.numpy(), arrays[prefix + "masks_logits"], rtol=0, atol=5e-3)
        expected = unpack(arrays[prefix + "masks_packed"], call["masks_shape"])
        confident = logits.abs().numpy() > 1e-2
        np.testing.assert_array_equal((logits.numpy() > golden_sam.mask_threshold)[confident], expected[confident])
        checked += 1
    assert checked >= 3


def test_batched_prompts_equal_single_prompts(golden_sam: Sam, goldens_dir: Path, sam_goldens: dict) -> None:
    """B prompt sets against one image embedding give the same masks as B separate calls."""
    name = next(iter(sam_goldens["predictor"]))
    features = torch.as_tensor(golden_arrays(goldens_dir, name)["features"])
    boxes = torch.tensor([[100.0, 80.0, 600.0, 500.0], [10.0, 20.0, 300.0, 200.0]])
    points = (torch.tensor([[[300.0, 200.0]], [[50.0, 60.0]]]), torch.tensor([[1], [0]]))
    masks = torch.randn(2, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        pe = golden_sam.prompt_encoder.get_dense_pe()
        sparse, dense = golden_sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
        batched = golden_sam.mask_decoder(features, pe, sparse, dense, multimask_output=True)
        for i in range(2):
            sparse, dense = golden_sam.prompt_encoder(
                points=(points[0][i : i + 1], points[1][i : i + 1]), boxes=boxes[i : i + 1], masks=masks[i : i + 1]
            )
            single = golden_sam.mask_decoder(features, pe, sparse, dense, multimask_output=True)
            torch.testing.assert_close(batched[0][i : i + 1], single[0], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(batched[1][i : i + 1], single[1], rtol=1e-4, atol=1e-5)
    assert batched[0].shape == (2, 3, 256, 256) and batched[1].shape == (2, 3)


def test_forward_end_to_end_matches_goldens(golden_sam: Sam, goldens_dir: Path, sam_goldens: dict) -> None:
    """The reference-compatible ``Sam.forward`` on the first image with a point case."""
    name, record, case, call, prefix = next(
        item for item in iter_calls(sam_goldens) if set(item[2]["prompt"]) == {"point_coords", "point_labels"}
    )
    image = read_image(goldens_dir, record["image"])
    resized = resize_uint8(image, tuple(record["input_size"]))
    prompt = case["prompt"]
    batched_input = [
        {
            "image": torch.as_tensor(resized).permute(2, 0, 1),
            "original_size": tuple(record["original_size"]),
            "point_coords": to_input_frame(prompt["point_coords"], record["original_size"], record["input_size"])[None],
            "point_labels": torch.as_tensor(prompt["point_labels"])[None],
        }
    ]
    (output,) = golden_sam(batched_input, multimask_output=call["multimask_output"])
    arrays = golden_arrays(goldens_dir, name)
    np.testing.assert_allclose(
        output["low_res_logits"][0].numpy(), arrays[prefix + "low_res_masks"], rtol=1e-4, atol=2e-3
    )
    np.testing.assert_allclose(output["iou_predictions"][0].numpy(), arrays[prefix + "iou_predictions"], atol=1e-4)
    masks = output["masks"][0].numpy()
    expected = unpack(arrays[prefix + "masks_packed"], call["masks_shape"])
    assert masks.dtype == bool and masks.shape == expected.shape
    assert (masks != expected).mean() < 1e-3


def test_mobile_sam_features_after_checkpoint_load(goldens_dir: Path) -> None:
    """TinyViT caches attention biases in eval mode: loading must refresh them (stale-bias pitfall)."""
    meta = json.loads((goldens_dir / "mobilesam" / "mobilesam_goldens.json").read_text())
    config = json.loads((goldens_dir / meta["config"]).read_text())
    sam = build_from_config(config, goldens_dir / meta["checkpoint"])
    name, record = next(iter(meta["predictor"].items()))
    resized = resize_uint8(read_image(goldens_dir, record["image"]), tuple(record["input_size"]))
    with torch.inference_mode():
        features = sam.image_encoder(sam.preprocess(torch.as_tensor(resized).permute(2, 0, 1)[None]))
    expected = np.load(goldens_dir / "mobilesam" / f"mobilesam_{name}.npz")["features"]
    np.testing.assert_allclose(features[:, : expected.shape[1]].numpy(), expected, rtol=1e-4, atol=1e-4)


# --- checkpoint errors --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_config(goldens_dir: Path) -> dict:
    return json.loads((goldens_dir / "sam" / "sam_tiny_config.json").read_text())


def test_wrapped_state_dict_loads(tiny_config: dict, goldens_dir: Path, tmp_path: Path) -> None:
    state = torch.load(goldens_dir / "sam" / "sam_tiny.pth", map_location="cpu", weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": state, "epoch": 3}, wrapped)
    model = build_from_config(tiny_config, wrapped)
    assert torch.equal(model.image_encoder.pos_embed, state["image_encoder.pos_embed"])
    assert not model.training


def test_checkpoint_of_another_model_is_rejected(tiny_config: dict, goldens_dir: Path) -> None:
    with pytest.raises(CheckpointMismatchError, match="MobileSAM") as info:
        build_from_config(tiny_config, goldens_dir / "mobilesam" / "mobilesam_tiny.pt")
    message = str(info.value)
    assert "\n" not in message
    assert "missing keys (image_encoder.pos_embed" in message
    assert "unexpected keys (image_encoder.patch_embed.seq.0" in message
    assert "the model is SAM ViT (embed_dim 32, depth 4)" in message


def test_shape_mismatch_is_rejected(tiny_config: dict, goldens_dir: Path, tmp_path: Path) -> None:
    state = torch.load(goldens_dir / "sam" / "sam_tiny.pth", map_location="cpu", weights_only=True)
    state["mask_decoder.mask_tokens.weight"] = torch.zeros(5, 32)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=r"mask_decoder\.mask_tokens\.weight \[5, 32\] vs \[4, 32\]"):
        build_from_config(tiny_config, path)


def test_official_size_checkpoint_is_named(tiny_config: dict, tmp_path: Path) -> None:
    with torch.device("meta"):
        vit_b = build_sam("vit_b")
    path = tmp_path / "vit_b_shapes.pth"
    zero = torch.zeros(1)  # expanded views keep the file tiny while carrying the official shapes
    torch.save({key: zero.expand(value.shape) for key, value in vit_b.state_dict().items()}, path)
    with pytest.raises(CheckpointMismatchError, match="looks like SAM vit_b"):
        build_from_config(tiny_config, path)


@pytest.mark.parametrize("content", ["truncated", "garbage", "empty"])
def test_unreadable_checkpoint_is_rejected(
    content: str, tiny_config: dict, goldens_dir: Path, tmp_path: Path
) -> None:
    data = (goldens_dir / "sam" / "sam_tiny.pth").read_bytes()
    path = tmp_path / "broken.pth"
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[content])
    reason = {"truncated": "truncated or damaged", "garbage": "a text file", "empty": "the file is empty"}[content]
    with pytest.raises(CheckpointReadError, match=f"cannot read checkpoint file .*broken.pth: {reason}"):
        build_from_config(tiny_config, path)


def test_missing_checkpoint_file(tiny_config: dict, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError):
        build_from_config(tiny_config, tmp_path / "nowhere.pth")


@pytest.mark.parametrize("input_size, original_size", [((768, 1024), (480, 640)), ((1024, 723), (371, 262)),
                                                       ((1024, 1024), (500, 500)), ((5, 1024), (3, 700))])
def test_postprocess_is_bit_identical_to_the_reference_resizes(golden_sam: Sam, input_size, original_size) -> None:
    size = golden_sam.image_encoder.img_size
    logits = torch.randn(2, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(0)) * 10
    padded = torch.nn.functional.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
    cropped = padded[..., : input_size[0], : input_size[1]]
    expected = torch.nn.functional.interpolate(cropped, original_size, mode="bilinear", align_corners=False)
    assert torch.equal(golden_sam.postprocess_masks(logits, input_size, original_size), expected)


def _textbook_attention(attn: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The reference's attention: project all three sides, softmax(q k^T / sqrt(d)) v, project out."""
    heads = attn.num_heads
    qh, kh, vh = (attn._separate_heads(p(x)) for p, x in ((attn.q_proj, q), (attn.k_proj, k), (attn.v_proj, v)))
    batch = max(qh.shape[0], kh.shape[0])
    qh, kh, vh = (x.expand(batch, -1, -1, -1) for x in (qh, kh, vh))
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5, dim=-1)
    return attn.out_proj((weights @ vh).transpose(1, 2).reshape(batch, -1, heads * qh.shape[-1]))


@pytest.mark.parametrize(
    ("queries", "keys", "batch_q", "batch_k"),
    [(7, 300, 3, 3), (300, 7, 3, 3), (300, 7, 1, 3), (7, 300, 3, 1), (20, 300, 3, 3), (300, 20, 3, 3)],
    ids=["few-queries", "few-keys", "few-keys-shared-queries", "shared-keys", "many-queries", "many-keys"],
)
def test_reassociated_attention_equals_textbook_attention(queries: int, keys: int, batch_q: int, batch_k: int) -> None:
    from zeroseg.models.sam.transformer import Attention

    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, downsample_rate=2)  # head width 8: 7 tokens take the folded paths
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.2)
    q, k = torch.randn(batch_q, queries, 64), torch.randn(batch_k, keys, 64)
    with torch.no_grad():
        expected = _textbook_attention(attn, q, k, k)
        got = attn(q, k, k)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
