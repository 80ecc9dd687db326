"""Weight files: :func:`read_checkpoint`, the one reader of every checkpoint a model loads, and our own
heads' format, safetensors plus a JSON sidecar (format tag, config, metadata)."""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zeroseg.errors import CheckpointReadError, ConfigError, WeightsNotFoundError
from zeroseg.io import atomic_path


def read_checkpoint(path: str | os.PathLike, what: str = "checkpoint", mmap: bool = False) -> Any:
    """What a weight file holds: a safetensors file's tensors, else ``torch.load`` with safe unpickling
    (memory-mapped with ``mmap`` when the format allows). An unreadable file raises :class:`CheckpointReadError` with
    one short line (``what`` names the file's role), never PyTorch's own multi-paragraph message."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{what} not found: {path}")
    try:
        if path.stat().st_size == 0:
            raise CheckpointReadError(f"cannot read {what} {path}: the file is empty")
        if path.suffix == ".safetensors" or _is_safetensors(path):
            return load_file(str(path))
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as err:
            if not mmap or "mmap" not in str(err):  # legacy (pre-zip) files cannot be memory-mapped; others are broken
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointReadError:
        raise
    except Exception as err:  # noqa: BLE001 - zip, pickle and safetensors errors of every kind
        raise CheckpointReadError(f"cannot read {what} {path}: {_unreadable(path, err)}") from None


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its JSON header's length (8 bytes, little-endian), then ``{``."""
    with path.open("rb") as file:
        head = file.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _unreadable(path: Path, err: Exception) -> str:
    """Why a weight file could not be read, in a few words."""
    if isinstance(err, SafetensorError):
        return f"not a safetensors file, or truncated ({' '.join(str(err).split())[:80]})"
    if isinstance(err, OSError) and not isinstance(err, EOFError):
        return err.strerror or type(err).__name__
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if isinstance(err, pickle.UnpicklingError) and unsafe:
        return f"it holds pickled Python objects ({unsafe.group(1)}), not just tensors (save a state_dict)"
    with path.open("rb") as file:
        head = file.read(4096)
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):
        return "truncated or damaged (its zip archive is incomplete)"
    if head.startswith(b"PK\x03\x04"):
        return "damaged, or a zip archive that is not a PyTorch checkpoint"
    if b"\0" not in head and _is_text(head):
        return "a text file, not a PyTorch checkpoint"
    return "truncated, damaged or not a PyTorch checkpoint"


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start >= len(data) - 3  # a multi-byte character cut at the end of the sample
    return True


def sidecar_path(weights: str | Path) -> Path:
    """``head.safetensors`` -> ``head.json``."""
    return Path(weights).with_suffix(".json")


def save_weights(path: str | Path, state: dict[str, torch.Tensor], fmt: str, sidecar: dict[str, Any]) -> None:
    """Write ``state`` (safetensors, tagged ``fmt``) and its sidecar ``{"format": fmt, **sidecar}``, each atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp), metadata={"format": fmt})
    with atomic_path(sidecar_path(path)) as tmp:
        tmp.write_text(json.dumps({"format": fmt, **sidecar}, indent=2) + "\n", encoding="utf-8")


def read_sidecar(weights: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """The JSON sidecar of a weight file; it must carry format ``fmt`` and a ``config`` (``what`` names it
    in errors)."""
    path = sidecar_path(weights)
    if not path.is_file():
        raise WeightsNotFoundError(f"{what} config {path} not found (it must sit next to {Path(weights).name})")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {what} config {path}: {e}") from e
    if not isinstance(sidecar, dict) or sidecar.get("format") != fmt or "config" not in sidecar:
        raise ConfigError(f"{path} is not a {what} config (format {fmt!r} with a 'config')")
    return sidecar
