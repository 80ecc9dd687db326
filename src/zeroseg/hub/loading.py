"""Building what the registry names: segmenters (:func:`load_model`), text encoders, dense embedders."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroseg.errors import ConfigError, UnknownModelError
from zeroseg.hub import hf
from zeroseg.hub.entry import DENSE_EMBEDDER, SEGMENTER, TEXT_ENCODER, ModelEntry
from zeroseg.hub.files import checkpoint_path, existing_checkpoint, file_sha256
from zeroseg.hub.registry import get_built
from zeroseg.preset import SAM, Preset

if TYPE_CHECKING:
    from torch import nn

    from zeroseg.models.text import TextEncoder
    from zeroseg.models.vl import DenseEmbedder

_TEXT_ENCODERS: dict[ModelEntry, TextEncoder] = {}
"""Text encoders built so far, by entry: one shared instance each per process."""


def get_text_encoder(name: str = "minilm") -> TextEncoder:
    """The process-wide shared text encoder registered as ``name``."""
    entry = get_built(name, TEXT_ENCODER)
    if entry not in _TEXT_ENCODERS:
        _TEXT_ENCODERS[entry] = entry.builder(None)
    return _TEXT_ENCODERS[entry]


def load_dense_embedder(name: str = "lite", checkpoint: str | os.PathLike | None = None, **options: Any) -> DenseEmbedder:
    """Build the dense embedder registered as ``name``: weights from the hub cache, or ``checkpoint`` (a file
    or folder, as the embedder takes); ``options`` go to its builder (e.g. ``device``)."""
    entry = get_built(name, DENSE_EMBEDDER)
    path = None if checkpoint is None else Path(checkpoint).expanduser()
    return entry.builder(path, **options)


def load_model(
    name: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | dict[str, Any] | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    compile: bool = False,
) -> nn.Module:
    """Build a segmenter in eval mode on ``device``, stamped with what it is.

    With ``config`` (a dict or the path of a JSON file in the layout of the SAM golden configs), the
    model is built from it and ``checkpoint`` (required); ``name`` is not used. Otherwise ``name`` is
    looked up in the registry: its builder is used for packaged models, ``build_sam`` with the
    cached official weights (or ``checkpoint``, which wins) for the others. A Hugging Face entry
    (SAM 2.1, SAM-HQ, EdgeTAM, SAM 3) takes ``checkpoint`` as a folder in the Hugging Face layout (SAM 2.1
    also Meta's ``.pt``, converted at load); without one its folder is downloaded into the cache on first
    use (:mod:`zeroseg.hub.hf`).

    ``dtype`` ("float32" or "bfloat16") is the weights' type of a Hugging Face entry (float32 when None);
    the other models are float32 only. ``compile`` compiles a promptable Hugging Face model's prompt path
    with ``torch.compile`` and warms it up (slow to load, faster clicks; for the app's long sessions).

    The model gets ``name`` (the registry name; None for a config build), ``version`` (the weights'
    SHA-256 prefix, the Hugging Face commit, or zeroseg's version for packaged weights) and ``preset``
    (:class:`Preset`), and its refinement switches (``refine_edges``, ``graph_cut``, ``zoom_in``, ``box_choice``)
    are the preset's.
    """
    from zeroseg import __version__

    if config is not None:
        if compile:
            raise ConfigError("a model built from a config is not compiled")
        if dtype not in (None, "float32"):
            raise ConfigError("a model built from a config runs in float32 only")
        if checkpoint is None:
            raise ConfigError("a model built from a config needs a checkpoint file")
        settings, weights = _read_config(config), existing_checkpoint(checkpoint)
        from zeroseg.models.sam import build_from_config

        model = build_from_config(settings, weights)
        entry_name, preset, version = None, SAM, _file_version(weights)
    else:
        if name is None:
            raise UnknownModelError("give a model name or a config")
        entry = get_built(name, SEGMENTER)
        if dtype not in (None, "float32") and not isinstance(entry.builder, hf.HFBuilder):
            raise ConfigError(f"{entry.name!r} runs in float32 only (dtype={dtype!r} is for the Hugging Face models)")
        if compile and not isinstance(entry.builder, hf.HFBuilder):
            raise ConfigError(f"{entry.name!r} is not compiled (compile is for the Hugging Face models)")
        if isinstance(entry.builder, hf.HFBuilder):
            given = None if checkpoint is None else Path(checkpoint).expanduser()
            options = ({} if dtype is None else {"dtype": dtype}) | ({"compile": True} if compile else {})
            model = entry.builder(given, **options)
            version = _hf_version(entry, given)
        elif entry.builder is not None:
            given = None if checkpoint is None else existing_checkpoint(checkpoint)
            model = entry.builder(given)
            version = _file_version(given) if given is not None else entry.sha256 or f"zeroseg {__version__}"
        else:
            weights = checkpoint_path(entry.name, checkpoint)
            from zeroseg.models.sam import build_sam

            model = build_sam(entry.arch, checkpoint=weights)
            version = entry.sha256 if checkpoint is None else _file_version(weights)
        entry_name, preset = entry.name, entry.preset
        version = version[:12] if entry.sha256 and version == entry.sha256 else version
    import torch

    try:
        model = model.to(torch.device(device))
    except (RuntimeError, AssertionError) as err:  # unknown device string, or not compiled/available
        raise ConfigError(f"cannot use device {device!r}: {err}") from None
    model.name, model.version, model.preset = entry_name, version, preset
    model.refine_edges, model.graph_cut, model.zoom_in = preset.refine_edges, preset.graph_cut, preset.zoom_in
    model.box_choice = preset.box_choice
    return model.eval()


_HASHED_VERSION_BYTES = 256 << 20


def _file_version(path: Path) -> str:
    """A weight file's version: its SHA-256 prefix, or its name for files too large to hash on every load."""
    return file_sha256(path)[:12] if path.stat().st_size <= _HASHED_VERSION_BYTES else path.name


def _hf_version(entry: ModelEntry, given: Path | None) -> str:
    """A Hugging Face entry's version: the commit of its download, or what was given (a folder's weights'
    SHA-256 prefix, or its name when they are too large to hash on every load; a ``.pt`` like any file)."""
    if given is None:
        commit = hf.downloaded_revision(entry) or entry.revision
        return commit[:12] if commit else f"{entry.repo} (main)"
    if given.is_file():
        return _file_version(given)
    files = [given / hf.CONFIG_FILE, *hf.weight_files(given)]
    if sum(f.stat().st_size for f in files) > _HASHED_VERSION_BYTES:
        return given.name
    digest = hashlib.sha256()
    for f in files:
        digest.update(file_sha256(f).encode())
    return digest.hexdigest()[:12]


def preset_of(model: Any) -> Preset:
    """The preset a model was loaded with (:func:`load_model`); SAM's for a model built by hand."""
    preset = getattr(model, "preset", None)
    return preset if isinstance(preset, Preset) else SAM


def _read_config(config: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    if isinstance(config, dict):
        return config
    path = Path(config).expanduser()
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config {path} must hold a JSON object")
    return loaded
