"""Where the labelled data lives, for training recipes and evaluation alike."""
from __future__ import annotations

import os
from pathlib import Path

from zeroseg.errors import DatasetError


def data_root() -> Path:
    """The shared data folder: ``$ZEROSEG_DATA``, else ``<repo>/../shared/data`` next to this checkout."""
    env = os.environ.get("ZEROSEG_DATA")
    if env:
        root = Path(env).expanduser()
    else:
        here = Path(__file__).resolve()
        repo = next((p for p in here.parents if (p / "pyproject.toml").is_file()), None)
        if repo is None:
            raise DatasetError(f"cannot locate the data from {here}: set ZEROSEG_DATA to the data folder")
        root = repo.parent / "shared" / "data"
    if not root.is_dir():
        raise DatasetError(f"data folder {root} not found: set ZEROSEG_DATA to the data folder")
    return root
