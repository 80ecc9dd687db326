"""The embedded default dense embedder: frozen EfficientNet-Lite0 + the zero-shot text head.

Images are resized and padded exactly as for the lite promptable model (longest side ``img_size``,
normalised, zero-padded to a square), so one backbone instance serves both models. The head weights ship
as ``zeroseg/weights/lite_text.safetensors`` next to a JSON sidecar with the head config, the names seen
in training, the calibration (calibrated stacking) and the training metadata and metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.errors import CheckpointMismatchError, WeightsNotFoundError
from zeroseg.models.lite.backbone import PIXEL_MEAN, PIXEL_STD, EfficientNetLite, load_imagenet_lite
from zeroseg.models.lite.text_head import TextHead, TextHeadConfig, head_inputs, input_channels
from zeroseg.models.text import TextEncoder
from zeroseg.models.transforms import ResizeLongestSide
from zeroseg.models.vl.base import DenseEmbedding
from zeroseg.models.weights import read_checkpoint, save_weights
from zeroseg.models.weights import read_sidecar as weights_sidecar

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "lite_text.safetensors"
SIDECAR_FORMAT = "zeroseg-lite-text"


@dataclass
class BackboneFeatures:
    """The frozen backbone's multi-scale features of one padded image and the sizes needed to crop them."""

    features: list[torch.Tensor]  # per scale [1, C, h, w], finest first
    image_size: tuple[int, int]  # original (H, W)
    input_size: tuple[int, int]  # resized (h, w) inside the padded square


def preprocess(image: np.ndarray, img_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """RGB uint8 HxWx3 -> normalised [1, 3, img_size, img_size] tensor (image top-left) and its resized size."""
    resized = ResizeLongestSide(img_size).apply_image(image)
    x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float()
    x = (x - torch.tensor(PIXEL_MEAN).view(3, 1, 1)) / torch.tensor(PIXEL_STD).view(3, 1, 1)
    h, w = resized.shape[:2]
    return F.pad(x, (0, img_size - w, 0, img_size - h))[None], (h, w)


class LiteEmbedder:
    """image -> per-pixel unit MiniLM embeddings on a stride-``out_stride`` grid (DenseEmbedder protocol)."""

    name = "lite"

    def __init__(
        self,
        head: TextHead,
        backbone: EfficientNetLite,
        text_encoder: TextEncoder,
        seen: tuple[str, ...] = (),
        calibration: float = 0.0,
        mask_calibration: float = 0.0,
    ) -> None:
        self.head = head.eval()
        self.backbone = backbone.eval()
        self.text_encoder = text_encoder
        self.seen = seen  # the names whose classes were trained (for calibrated stacking)
        # Calibrated stacking: gamma in cosine units (as the Namer applies it), subtracted from seen names,
        # fitted for labelling pixels and for naming masks (mask-pooled embeddings) respectively.
        self.calibration = calibration
        self.mask_calibration = mask_calibration

    @property
    def temperature(self) -> float:
        return self.head.temperature

    def background(self) -> torch.Tensor | None:
        bg = self.head.background()
        return None if bg is None else bg.detach()

    @torch.inference_mode()
    def backbone_features(self, image: np.ndarray) -> BackboneFeatures:
        x, input_size = preprocess(image, self.head.config.img_size)
        return BackboneFeatures(self.backbone(x), (int(image.shape[0]), int(image.shape[1])), input_size)

    @torch.inference_mode()
    def embed_features(self, bf: BackboneFeatures) -> DenseEmbedding:
        """The head on precomputed backbone features (e.g. shared with the promptable model, or cached)."""
        head = self.backbone.head_features(bf.features[-1].float())  # the classifier's input, computed once
        embeddings = self.head(head_inputs(self.backbone, bf.features, self.head.config, head))[0]
        stride = self.head.config.out_stride
        h, w = (math.ceil(s / stride) for s in bf.input_size)
        # the backbone's ImageNet classifier on each cell of its last features, brought to the same grid
        cells = self.backbone.classify_cells(head)
        cells = F.interpolate(cells, size=embeddings.shape[-2:], mode="bilinear", align_corners=False)[0]
        return DenseEmbedding(
            features=embeddings[:, :h, :w].contiguous(),
            image_size=bf.image_size,
            imagenet=F.log_softmax(cells[:, :h, :w], dim=0).contiguous(),
        )

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        """`image` is RGB uint8 HxWx3 (see zeroseg.io.load_image); features cover the whole image."""
        return self.embed_features(self.backbone_features(image))


# --- weights ---------------------------------------------------------------------------------------------
def save_text_head(head: TextHead, path: str | Path, sidecar: dict[str, Any]) -> None:
    """Write the head weights (safetensors) and the JSON sidecar (config + ``sidecar`` fields), atomically."""
    save_weights(path, head.state_dict(), SIDECAR_FORMAT, {"config": asdict(head.config), **sidecar})


def read_sidecar(weights: str | Path) -> dict[str, Any]:
    return weights_sidecar(weights, SIDECAR_FORMAT, "lite text head")


def build_text_head(config: TextHeadConfig, backbone: EfficientNetLite) -> TextHead:
    """A freshly initialised head fitting ``backbone``."""
    channels, strides = input_channels(backbone, config)
    return TextHead(channels, strides, config)


def load_text_head(path: str | Path, backbone: EfficientNetLite) -> tuple[TextHead, dict[str, Any]]:
    """The head in ``path`` (architecture from its sidecar, weights loaded strictly) and the sidecar."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"lite text head weights {path} not found; train them with `zeroseg train lite-text --out DIR` "
            f"and pass DIR/lite_text.safetensors"
        )
    sidecar = read_sidecar(path)
    head = build_text_head(TextHeadConfig.from_dict(sidecar["config"]), backbone)
    state = read_checkpoint(path, "lite text head weights")
    try:
        head.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointMismatchError(f"lite text head weights {path} do not fit its config: {e}") from None
    return head.eval(), sidecar


def load_lite_embedder(
    checkpoint: str | Path | None = None,
    backbone: EfficientNetLite | None = None,
    *,
    text_encoders: Callable[[str], TextEncoder],
) -> LiteEmbedder:
    """The lite dense embedder: head weights from ``checkpoint`` (default: the shipped ones); pass the lite
    promptable model's ``image_encoder.backbone`` as ``backbone`` to share one backbone instance.
    ``text_encoders`` gives the text encoder the head's config names (``zeroseg.hub.get_text_encoder``)."""
    backbone = backbone if backbone is not None else load_imagenet_lite()
    head, sidecar = load_text_head(checkpoint if checkpoint is not None else DEFAULT_WEIGHTS, backbone)
    return LiteEmbedder(
        head,
        backbone,
        text_encoders(head.config.text_encoder),
        seen=tuple(sidecar.get("seen", ())),
        calibration=float(sidecar.get("calibration", 0.0)),
        mask_calibration=float(sidecar.get("mask_calibration", 0.0)),
    )
