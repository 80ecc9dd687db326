"""TinyViT (MobileSAM image encoder): official key layout and the reference's golden image embeddings."""
from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg.models.sam.tiny_vit import TinyViT, relative_offset_index

PREFIX = "image_encoder."
RTOL = ATOL = 1e-4
CONSTRUCTOR_KEYS = (
    "img_size in_chans num_classes embed_dims depths num_heads window_sizes mlp_ratio drop_rate "
    "drop_path_rate use_checkpoint mbconv_expand_ratio local_conv_size layer_lr_decay"
).split()


def _mobilesam(goldens_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = goldens_dir / "mobilesam"
    config = json.loads((folder / "mobilesam_tiny_config.json").read_text())
    goldens = json.loads((folder / "mobilesam_goldens.json").read_text())
    return config, goldens


def _encoder_state(goldens_dir: Path, goldens: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = torch.load(goldens_dir / goldens["checkpoint"], map_location="cpu", weights_only=True)
    return {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}


def _build(config: dict[str, Any]) -> TinyViT:
    return TinyViT(**{k: v for k, v in config["image_encoder"].items() if k in CONSTRUCTOR_KEYS})


def _preprocess(image: np.ndarray, config: dict[str, Any], img_size: int, expected_sha256: str) -> torch.Tensor:
    """Longest side to ``img_size`` (Pillow bilinear, round half up), normalise, zero-pad bottom/right."""
    h, w = image.shape[:2]
    scale = img_size / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    resized = np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    assert hashlib.sha256(resized.tobytes()).hexdigest() == expected_sha256
    x = torch.from_numpy(resized).permute(2, 0, 1).float()
    mean = torch.tensor(config["pixel_mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(config["pixel_std"], dtype=torch.float32)[:, None, None]
    x = (x - mean) / std
    return torch.nn.functional.pad(x, (0, img_size - new_w, 0, img_size - new_h))[None]


def test_full_size_vit_t_matches_official_state_dict_layout(manifests_dir: Path) -> None:
    manifest = json.loads((manifests_dir / "mobile_sam_vit_t.json").read_text())["state_dict"]
    expected = [(k, list(shape)) for k, shape in manifest.items() if k.startswith(PREFIX)]
    model = TinyViT(
        img_size=1024,
        in_chans=3,
        num_classes=1000,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_path_rate=0.0,
        layer_lr_decay=0.8,
    )
    ours = [(PREFIX + k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == expected
    assert model.img_size == 1024


@pytest.mark.parametrize("window_size", [1, 3, 7, 14])
def test_relative_offset_index_follows_reference_first_seen_order(window_size: int) -> None:
    points = list(itertools.product(range(window_size), range(window_size)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(offset, len(offsets)))
    expected = torch.tensor(idxs).view(len(points), len(points))
    assert torch.equal(relative_offset_index(window_size), expected)


def test_golden_features(goldens_dir: Path) -> None:
    config, goldens = _mobilesam(goldens_dir)
    model = _build(config)
    # The reference's pitfall order: eval first, then load. Its cached biases would be stale here.
    model.eval()
    model.load_state_dict(_encoder_state(goldens_dir, goldens), strict=True)
    for name, record in goldens["predictor"].items():
        image = np.array(Image.open(goldens_dir / record["image"]).convert("RGB"))
        x = _preprocess(image, config, model.img_size, record["resized_uint8_sha256"])
        with torch.inference_mode():
            features = model(x)
        golden = np.load(goldens_dir / record["npz"])
        assert list(features.shape) == record["features_shape"], name
        saved = golden["features"]
        np.testing.assert_allclose(features[:, : saved.shape[1]].numpy(), saved, rtol=RTOL, atol=ATOL, err_msg=name)
        per_channel = features[0].flatten(1)
        np.testing.assert_allclose(
            per_channel.mean(1).numpy(), golden["features_channel_mean"], rtol=RTOL, atol=ATOL, err_msg=name
        )
        np.testing.assert_allclose(
            per_channel.std(1, correction=0).numpy(), golden["features_channel_std"], rtol=RTOL, atol=ATOL, err_msg=name
        )


def test_loading_into_eval_model_uses_the_new_attention_biases(goldens_dir: Path) -> None:
    config, goldens = _mobilesam(goldens_dir)
    state = _encoder_state(goldens_dir, goldens)
    changed = {k: -v if k.endswith("attention_biases") else v for k, v in state.items()}  # not a shift
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))

    model = _build(config).eval()
    model.load_state_dict(state)
    with torch.inference_mode():
        before = model(x)
    model.load_state_dict(changed)  # already in eval mode: no train(False) call refreshes anything
    with torch.inference_mode():
        after = model(x)
    fresh = _build(config)
    fresh.load_state_dict(changed)
    with torch.inference_mode():
        expected = fresh.eval()(x)
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_output_grid_follows_input_size(goldens_dir: Path) -> None:
    config, _ = _mobilesam(goldens_dir)
    model = _build(config).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 320, 480))
    assert out.shape == (2, 256, 20, 30)
    assert out.is_contiguous()
