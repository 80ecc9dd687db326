"""Files the app serves and receives, kept inside the dataset root.

Every image file is resolved (following symlinks) and must lie under the resolved dataset root;
a path that is absolute, climbs with '..' or leads out through a symlink is refused with 403.
Uploads are size-limited (and the app limits request bodies before they are parsed), must decode as one of a few
image types with Pillow, and are written under ``<root>/uploads`` with a sanitised name. An image whose header
declares more pixels than the limit (a decompression bomb) is refused as too large (413) before it is decoded.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path, PurePosixPath

from PIL import Image

from zeroseg.errors import DatasetError, ImageReadError, ImageTooLargeError, ZerosegError
from zeroseg.io import load_image, max_pixels_limit

DEFAULT_MAX_UPLOAD_BYTES = 32 * 2**20
UPLOAD_FOLDER = "uploads"
UPLOAD_TYPES = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
"""Pillow format -> file suffix of the image types an upload may be."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class OutsideRootError(DatasetError):
    """A path leads outside the dataset root (absolute, '..', or a symlink out)."""

    http_status = 403


class UploadTooLargeError(ZerosegError):
    """A request body is larger than the server accepts."""

    exit_code = 50
    http_status = 413


def resolve_inside(root: Path, relative: str) -> Path:
    """The existing file at ``relative`` ('/'-separated) under ``root``, refusing any way out of it."""
    rel = PurePosixPath(relative)
    if not relative or rel.is_absolute() or ".." in rel.parts or "\\" in relative:
        raise OutsideRootError(f"{relative!r} is not a path inside the dataset root")
    root = root.resolve()
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise OutsideRootError(f"{relative!r} leads outside the dataset root")
    if not full.is_file():
        raise ImageReadError(f"image file {relative!r} is missing from the dataset root")
    return full


def check_upload(data: bytes, max_bytes: int) -> str:
    """The file suffix for an uploaded image, after checking its size, type and pixels."""
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"the upload has {len(data):,} bytes; the limit is {max_bytes:,}")
    limit = max_pixels_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"the upload is too large: it declares more than {limit:,} pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise ImageReadError("the upload is not an image Pillow can read") from None
    if width * height > limit:
        raise ImageTooLargeError(f"the upload is too large: {width}x{height} pixels, the limit is {limit:,}")
    if kind not in UPLOAD_TYPES:
        raise ImageReadError(f"{kind} images are not accepted; send one of {', '.join(UPLOAD_TYPES)}")
    load_image(data)  # decodes every pixel: truncated files and empty images fail here
    return UPLOAD_TYPES[kind]


def save_upload(root: Path, filename: str, data: bytes, suffix: str) -> Path:
    """Write ``data`` under ``root/uploads`` as a new file named after ``filename`` (sanitised).

    The folder is checked to be inside the root; a file already there with the same bytes is
    reused, otherwise a free name is taken (``name-1.jpg``, ...) with an exclusive create.
    """
    root = root.resolve()
    folder = root / UPLOAD_FOLDER
    folder.mkdir(exist_ok=True)
    if not folder.resolve().is_relative_to(root) or folder.is_symlink():
        raise OutsideRootError(f"{folder} leads outside the dataset root")
    stem = _UNSAFE.sub("_", PurePosixPath(filename.replace("\\", "/")).stem).strip("_")[:80] or "upload"
    digest = hashlib.sha256(data).digest()
    for n in range(10_000):
        path = folder / f"{stem}{f'-{n}' if n else ''}{suffix}"
        try:
            with open(path, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            return path
        except FileExistsError:
            if path.is_file() and not path.is_symlink() and hashlib.sha256(path.read_bytes()).digest() == digest:
                return path
    raise DatasetError(f"no free file name for {stem}{suffix} in {folder}")
