"""Head weight files of our own models: safetensors plus a JSON sidecar (format tag, config, metadata)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from zeroseg.errors import ConfigError, WeightsNotFoundError
from zeroseg.io import atomic_path


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
