"""Load OpenAI CLIP checkpoints (TorchScript archives or plain state dicts) and CLIP's text encoder.

Like the official ``build_model``, every hyper-parameter is read from the tensor shapes of the
checkpoint (heads = width // 64); the weights, stored in float16 by OpenAI, are converted to float32.
The hub hands these builders their files (``clip_vit_b16`` and the BPE vocabulary ``clip_vocab``).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from zeroseg.errors import CheckpointMismatchError, CheckpointReadError, WeightsNotFoundError
from zeroseg.models.clip.model import CLIP, HEAD_WIDTH, ClipConfig
from zeroseg.models.clip.tokenizer import ClipTokenizer
from zeroseg.models.sam.build import _mismatch
from zeroseg.models.text import DEFAULT_TEMPLATES, CachedTemplateEncoder
from zeroseg.models.weights import read_checkpoint

METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")
"""Integer entries of OpenAI's archives that are not model tensors (``build_model`` deletes them)."""
TEXT_BATCH = 256
"""Sentences encoded per forward pass by the text encoder."""


def load_clip(checkpoint: str | os.PathLike, vocab: str | os.PathLike) -> tuple[CLIP, ClipTokenizer]:
    """(model in eval mode, float32 on CPU; its tokenizer) from a checkpoint and a BPE vocabulary file.

    Raises WeightsNotFoundError (file missing), CheckpointReadError (unreadable file) and
    CheckpointMismatchError (not a CLIP ViT checkpoint, or keys/shapes off).
    """
    model = load_clip_model(checkpoint)
    if not Path(vocab).is_file():
        raise WeightsNotFoundError(f"CLIP vocabulary not found: {vocab}")
    tokenizer = ClipTokenizer(vocab, context_length=model.config.context_length, vocab_size=model.config.vocab_size)
    return model, tokenizer


def load_clip_model(path: str | os.PathLike) -> CLIP:
    """Build the CLIP described by a checkpoint file's shapes and load its weights strictly."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"CLIP checkpoint not found: {path}")
    return clip_from_state_dict(read_state_dict(path), source=path.name)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a CLIP checkpoint: ``state_dict()`` of a TorchScript archive (OpenAI's release
    format) or a ``torch.save``-d dict."""
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is OpenAI's release format
                warnings.simplefilter("ignore", DeprecationWarning)
                return dict(torch.jit.load(path, map_location="cpu").state_dict())
        except Exception as err:  # noqa: BLE001 - TorchScript errors of every kind: a damaged archive
            raise CheckpointReadError(
                f"cannot read CLIP checkpoint {path}: a damaged TorchScript archive ({type(err).__name__})"
            ) from None
    state = read_checkpoint(path, "CLIP checkpoint")
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``constants.pkl`` record (torch.save files have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def clip_from_state_dict(state: Mapping[str, torch.Tensor], source: str = "state dict") -> CLIP:
    """A float32 CLIP in eval mode with ``state``'s weights (metadata entries dropped, strict keys)."""
    tensors = {key: value for key, value in state.items() if key not in METADATA_KEYS}
    config = config_from_state_dict(tensors, source)
    with torch.device("meta"):  # no memory and no random init for weights that are replaced anyway
        model = CLIP(config)
    problem = _mismatch(model.state_dict(), tensors)
    if problem:
        raise CheckpointMismatchError(f"{source} does not fit the CLIP its shapes describe: {problem}")
    model.load_state_dict({key: value.float() for key, value in tensors.items()}, strict=True, assign=True)
    return model.eval()


def config_from_state_dict(state: Mapping[str, torch.Tensor], source: str = "state dict") -> ClipConfig:
    """The constructor arguments, inferred from shapes exactly as the official ``build_model`` does."""
    if "visual.proj" not in state and any(key.startswith("visual.layer1.") for key in state):
        raise CheckpointMismatchError(f"{source} is a ResNet CLIP; only the ViT image tower is supported")
    try:
        patch = state["visual.conv1.weight"].shape
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        text_width = state["ln_final.weight"].shape[0]
        config = ClipConfig(
            embed_dim=state["text_projection"].shape[1],
            image_resolution=patch[-1] * grid,
            vision_layers=sum(key.startswith("visual.") and key.endswith(".attn.in_proj_weight") for key in state),
            vision_width=patch[0],
            vision_patch_size=patch[-1],
            context_length=state["positional_embedding"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            transformer_width=text_width,
            transformer_heads=text_width // HEAD_WIDTH,
            transformer_layers=len({key.split(".")[2] for key in state if key.startswith("transformer.resblocks.")}),
        )
    except (KeyError, IndexError) as err:
        raise CheckpointMismatchError(f"{source} is not a CLIP ViT checkpoint (no usable {err})") from None
    for tower, width in (("image", config.vision_width), ("text", config.transformer_width)):
        if width < HEAD_WIDTH or width % (width // HEAD_WIDTH):
            raise CheckpointMismatchError(f"{source}: {tower} width {width} cannot be split into heads of {HEAD_WIDTH}")
    return config


class ClipTextEncoder(CachedTemplateEncoder):
    """Names -> unit vectors with CLIP's text tower (templates averaged, cached per name)."""

    name = "clip"

    def __init__(self, model: CLIP, tokenizer: ClipTokenizer, templates: Sequence[str] = DEFAULT_TEMPLATES) -> None:
        super().__init__(templates)
        self.model = model
        self.tokenizer = tokenizer
        self.dim = model.config.embed_dim

    def _encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        device = self.model.text_projection.device
        batches = (sentences[i : i + TEXT_BATCH] for i in range(0, len(sentences), TEXT_BATCH))
        return torch.cat([self.model.encode_text(self.tokenizer.tokenize(b).to(device)).cpu() for b in batches])


def load_clip_text_encoder(
    checkpoint: str | os.PathLike, vocab: str | os.PathLike, templates: Sequence[str] = DEFAULT_TEMPLATES
) -> ClipTextEncoder:
    """CLIP's text encoder from a checkpoint and a BPE vocabulary file (see :func:`load_clip`)."""
    return ClipTextEncoder(*load_clip(checkpoint, vocab), templates=templates)
