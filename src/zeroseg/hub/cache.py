"""Where zeroseg keeps what it fetches and makes: one cache root."""
from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ZEROSEG_HOME"


def cache_dir() -> Path:
    """zeroseg's cache root: ``$ZEROSEG_HOME``, else ``$XDG_CACHE_HOME/zeroseg``, else ``~/.cache/zeroseg``."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "zeroseg"


def checkpoints_dir() -> Path:
    """Where downloaded weight files are kept."""
    return cache_dir() / "checkpoints"
