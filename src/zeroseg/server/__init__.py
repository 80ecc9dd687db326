"""The annotation web app (``zeroseg serve DATASET``): a FastAPI JSON API and a static page."""
from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:  # imported on first use: the CLI stays fast to start
    if name == "create_app":
        from zeroseg.server.app import create_app

        return create_app
    raise AttributeError(f"module 'zeroseg.server' has no attribute {name!r}")
