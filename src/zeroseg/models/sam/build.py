"""Build SAM-family models from configs and load official checkpoints.

A config is a dict in the layout of the golden configs (``sam_tiny_config.json``)::

    {"image_encoder": {"class": "ImageEncoderViT" | "TinyViT", <constructor arguments>},
     "prompt_encoder": {<PromptEncoder arguments>},
     "mask_decoder": {<MaskDecoder arguments>, "transformer": {<TwoWayTransformer arguments>}},
     "pixel_mean": [...], "pixel_std": [...], "mask_threshold": 0.0, "image_format": "RGB"}

Keys a constructor does not take (``class``, ``reference``, ``notes``, ``norm_layer`` descriptions, ...)
are informational and ignored; activation names (``"GELU"``, ``"ReLU"``) select the activation.
"""
from __future__ import annotations

import copy
import inspect
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zeroseg.errors import CheckpointMismatchError, ConfigError, UnknownModelError
from zeroseg.models.sam.image_encoder import ImageEncoderViT
from zeroseg.models.sam.mask_decoder import MaskDecoder
from zeroseg.models.sam.prompt_encoder import PromptEncoder
from zeroseg.models.sam.sam import PIXEL_MEAN, PIXEL_STD, Sam
from zeroseg.models.sam.transformer import TwoWayTransformer
from zeroseg.models.weights import read_checkpoint

VIT_SIZES: dict[str, dict[str, Any]] = {
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": [2, 5, 8, 11]},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn_indexes": [5, 11, 17, 23]},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global_attn_indexes": [7, 15, 23, 31]},
}
"""The ViT image encoders of the official SAM checkpoints."""

TINY_VIT: dict[str, Any] = {
    "img_size": 1024,
    "in_chans": 3,
    "num_classes": 1000,
    "embed_dims": [64, 128, 160, 320],
    "depths": [2, 2, 6, 2],
    "num_heads": [2, 4, 5, 10],
    "window_sizes": [7, 7, 14, 7],
    "mlp_ratio": 4.0,
    "drop_rate": 0.0,
    "drop_path_rate": 0.0,
    "use_checkpoint": False,
    "mbconv_expand_ratio": 4.0,
    "local_conv_size": 3,
    "layer_lr_decay": 0.8,
}
"""The TinyViT image encoder of the official MobileSAM checkpoint (model type ``vit_t``)."""

OFFICIAL_MODELS = (*VIT_SIZES, "vit_t")

IMAGE_SIZE = 1024
PATCH_SIZE = 16
PROMPT_EMBED_DIM = 256

_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


def official_config(name: str) -> dict[str, Any]:
    """The config of an official architecture: ``vit_b``, ``vit_l``, ``vit_h`` (SAM) or ``vit_t`` (MobileSAM)."""
    if name in VIT_SIZES:
        image_encoder = {
            "class": "ImageEncoderViT",
            "img_size": IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
            "in_chans": 3,
            **VIT_SIZES[name],
            "mlp_ratio": 4.0,
            "out_chans": PROMPT_EMBED_DIM,
            "qkv_bias": True,
            "use_abs_pos": True,
            "use_rel_pos": True,
            "window_size": 14,
        }
    elif name == "vit_t":
        image_encoder = {"class": "TinyViT", **TINY_VIT}
    else:
        raise UnknownModelError(f"unknown SAM architecture {name!r}; known: {', '.join(OFFICIAL_MODELS)}")
    grid = IMAGE_SIZE // PATCH_SIZE
    return copy.deepcopy(
        {
            "family": "mobilesam" if name == "vit_t" else "sam",
            "image_encoder": image_encoder,
            "prompt_encoder": {
                "embed_dim": PROMPT_EMBED_DIM,
                "image_embedding_size": [grid, grid],
                "input_image_size": [IMAGE_SIZE, IMAGE_SIZE],
                "mask_in_chans": 16,
                "activation": "GELU",
            },
            "mask_decoder": {
                "transformer_dim": PROMPT_EMBED_DIM,
                "num_multimask_outputs": 3,
                "activation": "GELU",
                "iou_head_depth": 3,
                "iou_head_hidden_dim": 256,
                "transformer": {
                    "depth": 2,
                    "embedding_dim": PROMPT_EMBED_DIM,
                    "num_heads": 8,
                    "mlp_dim": 2048,
                    "activation": "ReLU",
                    "attention_downsample_rate": 2,
                },
            },
            "pixel_mean": list(PIXEL_MEAN),
            "pixel_std": list(PIXEL_STD),
        }
    )


def build_sam(name: str, checkpoint: str | os.PathLike | None = None) -> Sam:
    """Build an official architecture (see :func:`official_config`) in eval mode, optionally loading weights.

    Construction respects the default device, so ``with torch.device("meta"): build_sam("vit_h")``
    builds the ViT models without allocating memory.
    """
    return build_from_config(official_config(name), checkpoint)


def build_from_config(config: Mapping[str, Any], checkpoint: str | os.PathLike | None = None) -> Sam:
    """Build a :class:`Sam` in eval mode from a config dict (layout in the module docstring) and, when
    given, load a checkpoint in the official key layout (see :func:`load_checkpoint`)."""
    try:
        decoder_config = dict(config["mask_decoder"])
        transformer = _construct(TwoWayTransformer, decoder_config.pop("transformer"))
        sam = Sam(
            image_encoder=_build_image_encoder(config["image_encoder"]),
            prompt_encoder=_construct(PromptEncoder, config["prompt_encoder"]),
            mask_decoder=_construct(MaskDecoder, {**decoder_config, "transformer": transformer}),
            pixel_mean=config.get("pixel_mean", PIXEL_MEAN),
            pixel_std=config.get("pixel_std", PIXEL_STD),
        )
    except KeyError as err:
        raise ConfigError(f"SAM config is missing the {err.args[0]!r} section") from None
    sam.mask_threshold = float(config.get("mask_threshold", Sam.mask_threshold))
    sam.image_format = config.get("image_format", Sam.image_format)
    if sam.image_format not in ("RGB", "BGR"):
        raise ConfigError(f"image_format must be 'RGB' or 'BGR', got {sam.image_format!r}")
    sam.eval()
    if checkpoint is not None:
        load_checkpoint(sam, checkpoint)
    return sam


def _build_image_encoder(config: Mapping[str, Any]) -> nn.Module:
    name = config.get("class", "ImageEncoderViT")
    if name == "ImageEncoderViT":
        return _construct(ImageEncoderViT, config)
    if name == "TinyViT":
        from zeroseg.models.sam.tiny_vit import TinyViT

        return _construct(TinyViT, config)
    raise ConfigError(f"unknown image encoder class {name!r} (expected 'ImageEncoderViT' or 'TinyViT')")


def _construct(cls: Callable[..., nn.Module], config: Mapping[str, Any]) -> nn.Module:
    """``cls(**config)`` with the keys its constructor takes; activation names become modules."""
    parameters = inspect.signature(cls).parameters
    kwargs = {
        key: _activation(value) if key in ("activation", "act_layer") else value
        for key, value in config.items()
        if key in parameters
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {getattr(cls, '__name__', cls)} config: {err}") from None


def _activation(spec: Any) -> Any:
    """``"GELU"``, ``"GELU (exact erf)"``, ``"nn.ReLU"``, ... -> the module class; other values pass through."""
    if not isinstance(spec, str):
        return spec
    name = re.split(r"[\s(]", spec.strip(), maxsplit=1)[0].rsplit(".", 1)[-1].lower()
    if name not in _ACTIVATIONS:
        raise ConfigError(f"unknown activation {spec!r} (known: GELU, ReLU)")
    return _ACTIVATIONS[name]


# --- checkpoints --------------------------------------------------------------------------
def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an official-layout checkpoint strictly into ``model`` and return it in eval mode.

    Accepts a plain state dict or a dict wrapping it under ``model`` or ``state_dict``. Missing or
    unexpected keys and shape mismatches raise :class:`CheckpointMismatchError`, an unreadable file
    :class:`CheckpointReadError` and a missing one :class:`WeightsNotFoundError`.

    ``eval()`` is called after loading so that a module which caches tensors derived from its weights
    when switched to eval mode (the official TinyViT attention biases, see the goldens README) can
    never keep a cache computed from the weights it had before loading.
    """
    path = Path(path)
    # memory-mapped: a large checkpoint is not held in memory twice while it is copied into the model
    state = read_checkpoint(path, "checkpoint file", mmap=True)
    for wrapper in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")

    problem = _mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointMismatchError(
            f"checkpoint {path.name} does not fit the model: it looks like {looks_like(state)}, the model is "
            f"{looks_like(model.state_dict())}; {problem}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointMismatchError(f"checkpoint {path.name} does not fit the model: {_first_line(err)}") from None
    return model.eval()


def _mismatch(expected: Mapping[str, Any], found: Mapping[str, Any], shown: int = 3) -> str:
    """One-line summary of missing / unexpected / wrongly shaped keys (empty when the dicts fit)."""

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")

    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    wrong = [
        f"{key} {_shape(found[key])} vs {_shape(expected[key])} in the model"
        for key in expected
        if key in found and _shape(found[key]) != _shape(expected[key])
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({some(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({some(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatches ({some(wrong)})")
    return "; ".join(parts)


def looks_like(state: Mapping[str, Any]) -> str:
    """A short guess of which architecture a state dict belongs to, e.g. ``"SAM vit_b"``."""
    if any(key.startswith("image_encoder.layers.") for key in state):
        return "MobileSAM (TinyViT encoder)"
    patch = state.get("image_encoder.patch_embed.proj.weight")
    if patch is not None:
        embed_dim = _shape(patch)[0]
        depth = len({key.split(".")[2] for key in state if key.startswith("image_encoder.blocks.")})
        for name, size in VIT_SIZES.items():
            if (size["embed_dim"], size["depth"]) == (embed_dim, depth):
                return f"SAM {name}"
        return f"SAM ViT (embed_dim {embed_dim}, depth {depth})"
    first = ", ".join(list(state)[:2])
    return f"no SAM model ({len(state)} keys such as {first})" if state else "an empty state dict"


def _shape(value: Any) -> list[int] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else list(shape)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
