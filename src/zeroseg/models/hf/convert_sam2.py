"""Meta's SAM 2.1 checkpoints (``sam2.1_hiera_*.pt``) in the ``transformers`` layout of ``Sam2Model``.

Meta's files hold ``{"model": state_dict}`` in the key layout of the ``sam2`` repository (``image_encoder.trunk``,
``sam_prompt_encoder``, ``sam_mask_decoder``, the video modules). :func:`convert_state_dict` renames the keys the
image model uses by a table of rules (each a bijection between one Meta key pattern and one ``transformers``
pattern), joins Meta's four point embeddings into one matrix, copies the prompt encoder's positional matrix to
the model's shared one, and drops the video-only modules. :func:`to_meta_state_dict` is its inverse.
:func:`write_hf_folder` turns a ``.pt`` into a folder ``Sam2Model.from_pretrained`` (and the hub) can load.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroseg.errors import CheckpointMismatchError, CheckpointReadError

if TYPE_CHECKING:
    import torch
    from transformers import Sam2Config

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# Official SAM 2.1 image encoders (Meta's configs/sam2.1/*.yaml); everything else is transformers' default.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden": 96, "heads": 1, "blocks": [1, 2, 7, 2], "global": [5, 7, 9], "bkg": [7, 7],
             "windows": [8, 4, 14, 7]},
    "small": {"hidden": 96, "heads": 1, "blocks": [1, 2, 11, 2], "global": [7, 10, 13], "bkg": [7, 7],
              "windows": [8, 4, 14, 7]},
    "base_plus": {"hidden": 112, "heads": 2, "blocks": [2, 3, 16, 3], "global": [12, 16, 20], "bkg": [14, 14],
                  "windows": [8, 4, 14, 7]},
    "large": {"hidden": 144, "heads": 2, "blocks": [2, 6, 36, 4], "global": [23, 33, 43], "bkg": [7, 7],
              "windows": [8, 4, 16, 8]},
}
"""Hiera trunk of each size: width and heads of the first stage (both double per stage), blocks per stage,
blocks with global attention, the background size of the windowed position embedding, windows per stage."""

VIDEO_ONLY = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "no_obj_embed_spatial",
    "mask_downsample.",
)
"""Meta keys of the video tracker (memory, object pointers): not part of the image model, dropped."""

_POINT = re.compile(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight")
_HF_POINT = "prompt_encoder.point_embed.weight"
_HF_PE = "prompt_encoder.shared_embedding.positional_embedding"
_HF_SHARED_PE = "shared_image_embedding.positional_embedding"
_MLP3 = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
"""Meta's 3-layer ``MLP`` (``layers.0..2``) -> transformers' ``Sam2FeedForward`` names."""


def _rules() -> list[tuple[str, str]]:
    """(Meta template, transformers template) pairs. ``{n}`` is a number; a template ending in '.' is a module
    whose parameters (``weight``, ``bias``) keep their names, any other is one whole key."""
    enc, hf_enc = "image_encoder.trunk.", "vision_encoder.backbone."
    block, hf_block = enc + "blocks.{n}.", hf_enc + "blocks.{n}."
    rules = [
        (enc + "pos_embed", hf_enc + "pos_embed"),
        (enc + "pos_embed_window", hf_enc + "pos_embed_window"),
        (enc + "patch_embed.proj.", hf_enc + "patch_embed.projection."),
        (block + "norm1.", hf_block + "layer_norm1."),
        (block + "norm2.", hf_block + "layer_norm2."),
        (block + "attn.qkv.", hf_block + "attn.qkv."),
        (block + "attn.proj.", hf_block + "attn.proj."),
        (block + "mlp.layers.0.", hf_block + "mlp.proj_in."),
        (block + "mlp.layers.1.", hf_block + "mlp.proj_out."),
        (block + "proj.", hf_block + "proj."),  # width change at a stage's first block
        ("image_encoder.neck.convs.{n}.conv.", "vision_encoder.neck.convs.{n}."),
        ("no_mem_embed", "no_memory_embedding"),
    ]
    pe, hf_pe = "sam_prompt_encoder.", "prompt_encoder."
    rules += [
        (pe + "pe_layer.positional_encoding_gaussian_matrix", _HF_PE),
        (pe + "not_a_point_embed.", hf_pe + "not_a_point_embed."),
        (pe + "no_mask_embed.", hf_pe + "no_mask_embed."),
    ]
    downscaling = {"0": "conv1", "1": "layer_norm1", "3": "conv2", "4": "layer_norm2", "6": "conv3"}
    rules += [(pe + f"mask_downscaling.{i}.", hf_pe + f"mask_embed.{name}.") for i, name in downscaling.items()]
    md, hf_md = "sam_mask_decoder.", "mask_decoder."
    plain = ("iou_token", "mask_tokens", "obj_score_token", "conv_s0", "conv_s1")
    rules += [(md + f"{name}.", hf_md + f"{name}.") for name in plain]
    upscaling = {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}
    rules += [(md + f"output_upscaling.{i}.", hf_md + f"{name}.") for i, name in upscaling.items()]
    for head in ("output_hypernetworks_mlps.{n}", "iou_prediction_head", "pred_obj_score_head"):
        rules += [(md + f"{head}.layers.{i}.", hf_md + f"{head}.{name}.") for i, name in _MLP3.items()]
    layer, hf_layer = md + "transformer.layers.{n}.", hf_md + "transformer.layers.{n}."
    rules += [(layer + f"norm{k}.", hf_layer + f"layer_norm{k}.") for k in (1, 2, 3, 4)]
    rules += [(layer + "mlp.layers.0.", hf_layer + "mlp.proj_in."),
              (layer + "mlp.layers.1.", hf_layer + "mlp.proj_out.")]
    final = md + "transformer.final_attn_token_to_image."
    hf_final = hf_md + "transformer.final_attn_token_to_image."
    names = ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token")
    attentions = [(layer + a + ".", hf_layer + a + ".") for a in names]
    for meta, hf in [*attentions, (final, hf_final)]:
        rules += [(meta + f"{p}_proj.", hf + f"{p}_proj.") for p in "qkv"]
        rules.append((meta + "out_proj.", hf + "o_proj."))
    rules.append((md + "transformer.norm_final_attn.", hf_md + "transformer.layer_norm_final_attn."))
    return rules


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(re.escape("{n}"), r"(?P<n>\d+)")
    return re.compile(pattern + (r"(?P<param>[a-z_]+)" if template.endswith(".") else ""))


RULES = _rules()
_FORWARD = [(_compile(meta), hf) for meta, hf in RULES]
_BACKWARD = [(_compile(hf), meta) for meta, hf in RULES]


def _apply(key: str, table: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in table:
        match = pattern.fullmatch(key)
        if match is not None:
            groups = match.groupdict()
            return template.format(n=groups.get("n")) + (groups.get("param") or "")
    return None


def meta_to_hf_key(key: str) -> str | None:
    """The ``transformers`` name of a Meta key the rules cover (None for any other)."""
    return _apply(key, _FORWARD)


def hf_to_meta_key(key: str) -> str | None:
    """The Meta name of a ``transformers`` key the rules cover (None for any other)."""
    return _apply(key, _BACKWARD)


def convert_state_dict(meta: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta's SAM 2.1 state dict -> ``Sam2Model``'s. Raises CheckpointMismatchError on keys that are neither
    the image model's nor the video modules'."""
    import torch

    out: dict[str, torch.Tensor] = {}
    points: dict[int, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in meta.items():
        if key.startswith(VIDEO_ONLY):
            continue
        if (point := _POINT.fullmatch(key)) is not None:
            points[int(point.group(1))] = value
        elif (new := meta_to_hf_key(key)) is not None:
            out[new] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointMismatchError(
            f"not a SAM 2.1 checkpoint in Meta's layout: {len(unknown)} unknown key(s), e.g. {', '.join(unknown[:5])}"
        )
    if sorted(points) != list(range(len(points))) or not points:
        raise CheckpointMismatchError(f"SAM 2.1 checkpoint has point embeddings {sorted(points)}, expected 0..3")
    out[_HF_POINT] = torch.cat([points[i] for i in range(len(points))], dim=0)
    if _HF_PE in out:
        out[_HF_SHARED_PE] = out[_HF_PE].clone()
    return out


def to_meta_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``Sam2Model``'s state dict -> Meta's key layout (the image model's keys only): the inverse of
    :func:`convert_state_dict`. The shared positional matrix must equal the prompt encoder's (Meta keeps one)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in hf.items():
        if key == _HF_POINT:
            for i, row in enumerate(value.split(1, dim=0)):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = row
        elif key == _HF_SHARED_PE:
            if _HF_PE in hf and not torch.equal(value, hf[_HF_PE]):
                raise ValueError(f"{_HF_SHARED_PE} differs from {_HF_PE}; Meta's layout keeps only one")
        elif (old := hf_to_meta_key(key)) is not None:
            out[old] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f"no Meta name for {', '.join(unknown[:5])}")
    return out


def official_config(size: str) -> Sam2Config:
    """The ``Sam2Config`` of an official SAM 2.1 size: ``tiny``, ``small``, ``base_plus`` or ``large``."""
    from transformers import Sam2Config

    if size not in SIZES:
        raise ValueError(f"unknown SAM 2.1 size {size!r}; known: {', '.join(SIZES)}")
    spec = SIZES[size]
    widths = [spec["hidden"] * 2**i for i in range(4)]
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": spec["hidden"],
        "num_attention_heads": spec["heads"],
        "embed_dim_per_stage": widths,
        "num_attention_heads_per_stage": [spec["heads"] * 2**i for i in range(4)],
        "blocks_per_stage": spec["blocks"],
        "global_attention_blocks": spec["global"],
        "window_positional_embedding_background_size": spec["bkg"],
        "window_size_per_stage": spec["windows"],
    }
    vision = {"model_type": "sam2_vision_model", "backbone_config": backbone, "backbone_channel_list": widths[::-1]}
    return Sam2Config(vision_config=vision)


def load_meta_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in one of Meta's ``.pt`` files (``{"model": ...}``, or a bare state dict), read without
    unpickling objects. Raises CheckpointReadError for anything else."""
    import torch

    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors for damaged or foreign files
        raise CheckpointReadError(f"cannot read {path} as a SAM 2.1 checkpoint: {err}") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointReadError(f"{path} holds no state dict (expected Meta's {{'model': state_dict}})")
    return state


def check_against(state: Mapping[str, torch.Tensor], config: Sam2Config) -> None:
    """Raise CheckpointMismatchError unless ``state`` has exactly ``Sam2Model(config)``'s keys and shapes."""
    import torch
    from transformers import Sam2Model

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Sam2Model(config).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in sorted(set(state) & set(expected))
              if tuple(state[k].shape) != expected[k]]
    parts = [f"missing {', '.join(missing[:5])}" if missing else "",
             f"unexpected {', '.join(extra[:5])}" if extra else "",
             f"shapes {'; '.join(shapes[:3])}" if shapes else ""]
    if any(parts):
        raise CheckpointMismatchError(
            "the SAM 2.1 checkpoint does not fit the model's config (another size?): "
            + "; ".join(p for p in parts if p)
        )


def write_hf_folder(checkpoint: str | os.PathLike, config: Sam2Config, dest: str | os.PathLike) -> Path:
    """Convert a Meta ``.pt`` into ``dest`` (created): ``config.json`` and ``model.safetensors``."""
    from safetensors.torch import save_file

    state = convert_state_dict(load_meta_checkpoint(checkpoint))
    check_against(state, config)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(dest)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest / WEIGHTS_FILE), metadata={"format": "pt"})
    return dest
