"""The one registry: names -> builders, weight files and presets; the local cache.

Segmenters (:func:`load_model`), text encoders (:func:`get_text_encoder`), dense embedders
(:func:`load_dense_embedder`), the weight files they are built from (:func:`download`, :func:`verify`)
and the lite versions ``zeroseg engine train`` writes (found in the cache by name) all resolve here.
Builders are handed weight paths; ``zeroseg.models`` never looks in the cache itself. Weights live in
``cache_dir()``: ``$ZEROSEG_HOME``, else ``$XDG_CACHE_HOME/zeroseg`` or ``~/.cache/zeroseg``. Nothing
here touches the network unless :func:`download` is called, or :func:`load_model` first builds a model
from a Hugging Face folder that is not cached yet; the hub imports nothing above it.

Modules: ``entry`` (ModelEntry, kinds), ``registry`` (names), ``files`` (cache, download, verify),
``hf`` (Hugging Face folders: download, checks, Meta's SAM 2.1 ``.pt``), ``loading`` (building),
``lite`` (the lite family and trained versions), ``catalog`` (what ships).
"""
from __future__ import annotations

from zeroseg.hub.cache import HOME_ENV, cache_dir, checkpoints_dir
from zeroseg.hub.catalog import DEFAULT_MODEL
from zeroseg.hub.entry import BUILT, DENSE_EMBEDDER, SEGMENTER, TEXT_ENCODER, Builder, ModelEntry
from zeroseg.hub.files import (
    cache_path,
    checkpoint_path,
    download,
    file_sha256,
    folder_path,
    is_cached,
    verify,
)
from zeroseg.hub.lite import LITE_PRESET, next_version, trained_dir, trained_name, trained_path, trained_weights
from zeroseg.hub.loading import get_text_encoder, load_dense_embedder, load_model, preset_of
from zeroseg.hub.registry import get, kinds, list_models, register

__all__ = [
    "BUILT",
    "DEFAULT_MODEL",
    "DENSE_EMBEDDER",
    "HOME_ENV",
    "LITE_PRESET",
    "SEGMENTER",
    "TEXT_ENCODER",
    "Builder",
    "ModelEntry",
    "cache_dir",
    "cache_path",
    "checkpoint_path",
    "checkpoints_dir",
    "download",
    "file_sha256",
    "folder_path",
    "get",
    "get_text_encoder",
    "is_cached",
    "kinds",
    "list_models",
    "load_dense_embedder",
    "load_model",
    "next_version",
    "preset_of",
    "register",
    "trained_dir",
    "trained_name",
    "trained_path",
    "trained_weights",
    "verify",
]
