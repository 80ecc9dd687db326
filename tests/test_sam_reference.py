"""Our SAM against Meta's reference code (the ``segment-anything`` package) on configs the goldens do not have.

The goldens pin one tiny config; acceptance also uses others. Here the reference model and ours are
built from the same randomly drawn weights for the golden config and four variations of it (widths,
depths, head widths under and over the prompt's token count, which take the decoder's different
attention paths, windows with and without padding, relative/absolute positions on and off, another
input size and patch size, 1 or 4 multimask outputs) and must agree to float32 rounding end to end
(``Sam.forward``).

Only ``segment_anything.modeling`` is imported: the package's top level needs torchvision, which
does not install beside our torch.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import sys
import types
from functools import partial
from pathlib import Path

import pytest
import torch
from optional import unavailable
from torch import nn

from zeroseg.models.sam import build_from_config


def _reference_modeling() -> types.ModuleType:
    if "segment_anything" not in sys.modules:
        spec = importlib.util.find_spec("segment_anything")
        if spec is None:
            unavailable("segment-anything (the reference SAM code) is not installed: pip install -e '.[test]'")
        # the package without running its __init__, which would import torchvision
        sys.modules["segment_anything"] = importlib.util.module_from_spec(spec)
    return importlib.import_module("segment_anything.modeling")


def _variant(base: dict, **changes: object) -> dict:
    """The golden config with ``section__key=value`` changes (``__`` separates nesting levels)."""
    config = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value
    return config


def _grid(img_size: int, patch: int) -> dict:
    side = img_size // patch
    return {
        "image_encoder__img_size": img_size,
        "image_encoder__patch_size": patch,
        "prompt_encoder__image_embedding_size": [side, side],
        "prompt_encoder__input_image_size": [img_size, img_size],
    }


def _width(dim: int) -> dict:
    return {
        "image_encoder__out_chans": dim,
        "prompt_encoder__embed_dim": dim,
        "mask_decoder__transformer_dim": dim,
        "mask_decoder__transformer__embedding_dim": dim,
    }


VARIANTS = {
    "golden": {},
    "wider, unpadded windows, 4 outputs, wide decoder heads": {
        **_width(48),
        "image_encoder__embed_dim": 48, "image_encoder__depth": 3, "image_encoder__num_heads": 3,
        "image_encoder__window_size": 8, "image_encoder__global_attn_indexes": [2],
        "mask_decoder__transformer__num_heads": 4, "mask_decoder__transformer__depth": 1,
        "mask_decoder__num_multimask_outputs": 4, "mask_decoder__iou_head_depth": 2,
        "mask_decoder__iou_head_hidden_dim": 40, "prompt_encoder__mask_in_chans": 8,
    },
    "512 input, no positions, 3 blocks, narrow decoder heads": {
        **_grid(512, 16),
        "image_encoder__use_rel_pos": False, "image_encoder__use_abs_pos": False, "image_encoder__window_size": 7,
        "mask_decoder__transformer__depth": 3, "mask_decoder__transformer__attention_downsample_rate": 4,
    },
    "16-wide decoder heads (few-token attention paths), 4 outputs": {
        **_width(64),
        "mask_decoder__num_multimask_outputs": 4, "mask_decoder__iou_head_hidden_dim": 64,
        "mask_decoder__transformer__mlp_dim": 96,
    },
    "patch 8, global attention only, one decoder head, 1 output": {
        **_grid(512, 8),
        "image_encoder__window_size": 0, "image_encoder__global_attn_indexes": [],
        "mask_decoder__transformer__num_heads": 1, "mask_decoder__transformer__mlp_dim": 16,
        "mask_decoder__transformer__attention_downsample_rate": 1, "mask_decoder__num_multimask_outputs": 1,
    },
}


def _reference_sam(modeling: types.ModuleType, config: dict) -> nn.Module:
    encoder, prompt, decoder = config["image_encoder"], config["prompt_encoder"], config["mask_decoder"]
    transformer = decoder["transformer"]
    return modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            img_size=encoder["img_size"], patch_size=encoder["patch_size"], in_chans=encoder["in_chans"],
            embed_dim=encoder["embed_dim"], depth=encoder["depth"], num_heads=encoder["num_heads"],
            mlp_ratio=encoder["mlp_ratio"], out_chans=encoder["out_chans"], qkv_bias=encoder["qkv_bias"],
            norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU, use_abs_pos=encoder["use_abs_pos"],
            use_rel_pos=encoder["use_rel_pos"], window_size=encoder["window_size"],
            global_attn_indexes=tuple(encoder["global_attn_indexes"]),
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=prompt["embed_dim"], image_embedding_size=tuple(prompt["image_embedding_size"]),
            input_image_size=tuple(prompt["input_image_size"]), mask_in_chans=prompt["mask_in_chans"],
        ),
        mask_decoder=modeling.MaskDecoder(
            transformer_dim=decoder["transformer_dim"],
            transformer=modeling.TwoWayTransformer(
                depth=transformer["depth"], embedding_dim=transformer["embedding_dim"],
                num_heads=transformer["num_heads"], mlp_dim=transformer["mlp_dim"],
                attention_downsample_rate=transformer["attention_downsample_rate"],
            ),
            num_multimask_outputs=decoder["num_multimask_outputs"], iou_head_depth=decoder["iou_head_depth"],
            iou_head_hidden_dim=decoder["iou_head_hidden_dim"],
        ),
        pixel_mean=config["pixel_mean"],
        pixel_std=config["pixel_std"],
    ).eval()


def _randomise(model: nn.Module, generator: torch.Generator) -> None:
    """Perturb every weight, so that constants the reference initialises (norms, biases, positions)
    matter too, and scale the hypernetworks' outputs so that mask logits are O(10), as in the goldens."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point and not name.startswith("pixel_"):
                tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(100.0)
            mlp.layers[-1].bias.mul_(100.0)


def _inputs(config: dict, generator: torch.Generator) -> list[dict]:
    """Three images (in the resized frame) with batched prompts of every kind."""
    size = config["image_encoder"]["img_size"]
    low = [4 * s for s in config["prompt_encoder"]["image_embedding_size"]]
    records = []
    for kind, ((height, width), original) in enumerate(
        [((size * 3 // 4, size), (300, 400)), ((size, size // 2), (500, 250)), ((size, size * 5 // 8), (640, 400))]
    ):
        image = torch.randint(0, 256, (3, height, width), generator=generator).float()

        def uniform(*shape: int) -> torch.Tensor:
            """(x, y) points inside the resized image, shape ``(*shape, 2)``."""
            return torch.rand(*shape, 2, generator=generator) * torch.tensor([width, height]).float()

        corners = uniform(3, 2).sort(dim=1).values.reshape(3, 4)
        record = {"image": image, "original_size": original}
        if kind == 0:  # points, a padding label among them
            record |= {"point_coords": uniform(3, 2), "point_labels": torch.tensor([[1, 0], [1, 1], [1, -1]])}
        elif kind == 1:  # boxes
            record |= {"boxes": corners}
        else:  # boxes, points and a mask prompt per prompt
            record |= {"boxes": corners[:2], "point_coords": uniform(2, 1), "point_labels": torch.tensor([[0], [1]]),
                       "mask_inputs": torch.randn(2, 1, *low, generator=generator) * 5}
        records.append(record)
    return records


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_matches_reference(variant: str, goldens_dir: Path, tmp_path: Path) -> None:
    modeling = _reference_modeling()
    base = json.loads((goldens_dir / "sam" / "sam_tiny_config.json").read_text())
    config = _variant(base, **VARIANTS[variant])
    generator = torch.Generator().manual_seed(len(variant))
    torch.manual_seed(len(variant))
    reference = _reference_sam(modeling, config)
    _randomise(reference, generator)
    torch.save(reference.state_dict(), tmp_path / "sam.pth")
    ours = build_from_config(config, tmp_path / "sam.pth")

    records = _inputs(config, generator)
    for multimask in (True, False):
        with torch.no_grad():
            expected = reference(records, multimask)
        found = ours(records, multimask)
        for want, got in zip(expected, found):
            for key in ("low_res_logits", "iou_predictions"):
                scale = want[key].abs().max().clamp(min=1e-6)
                assert (got[key] - want[key]).abs().max() <= 1e-4 * scale, (variant, multimask, key)
            # masks are logits > 0 at the original size: only pixels within rounding of 0 may flip
            assert got["masks"].shape == want["masks"].shape
            assert (got["masks"] != want["masks"]).float().mean() <= 1e-4, (variant, multimask)
