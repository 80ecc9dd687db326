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


ZERO_SHOT_SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    # MSRC-21: horse and mountain are dropped (treated as void), as in the usual protocol.
    "msrc21": {
        "unseen": ("cow", "sheep", "cat", "boat", "bicycle"),
        "dropped": ("horse", "mountain"),
    },
    # CamVid classes are all seen.
    "camvid": {"unseen": (), "dropped": ()},
    # COCO 65/15 split of ZSI (Zheng et al. 2021): the 15 unseen classes.
    "coco128": {
        "unseen": (
            "airplane", "train", "parking meter", "cat", "bear", "suitcase", "frisbee", "snowboard", "fork",
            "sandwich", "hot dog", "toilet", "mouse", "toaster", "hair drier",
        ),
        "dropped": (),
    },
}
"""Default seen/unseen splits per dataset: unseen names never reach a training step."""
