"""Image loading, mask encodings and safe file output.

Images come in as paths, bytes, file objects, PIL images or arrays and leave :func:`load_image` as one
validated thing: an HxWx3 uint8 RGB array, EXIF-rotated and size-guarded. Masks are bool HxW arrays in
memory and COCO RLE (pycocotools, ``counts`` as str) on disk and on the wire. Every file zeroseg writes
goes through :func:`atomic_path`, so a crash or a full disk never leaves half a file behind; a result of
several files goes through :func:`staged_output`, so it replaces an earlier one whole or not at all.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pycocotools import mask as mask_utils

from zeroseg.errors import (
    ConfigError,
    DatasetError,
    EmptyImageError,
    ImageReadError,
    ImageTooLargeError,
    OutputError,
    ZerosegError,
)

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray]

# Pillow's own decompression-bomb error threshold (2 x Image.MAX_IMAGE_PIXELS): about 13377 x 13377.
DEFAULT_MAX_PIXELS = 178_956_970
MAX_PIXELS_ENV = "ZEROSEG_MAX_PIXELS"

# Errors Pillow's decoders raise on corrupt or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# Modes Pillow keeps at more than 8 bits per sample; converted by us, not by Image.convert (which clips).
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_EXIF_ORIENTATION = 0x0112


# --- images -------------------------------------------------------------------------------
def max_pixels_limit() -> int:
    """The pixel limit for input images: ``$ZEROSEG_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(raw.replace("_", ""))
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive integer, got {raw!r}")
    return limit


def load_image(src: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """Read an image into a C-contiguous HxWx3 uint8 RGB array.

    ``src`` is a path, encoded bytes, a binary file object, a PIL image or an array. Files are
    EXIF-rotated and fully decoded here, so truncated files fail now and not halfway through a model.
    Grayscale, palette, CMYK and other modes become RGB; alpha is dropped (not composited); 16-bit
    grayscale samples are scaled to 8 bits (v * 255 / 65535, rounded; 48-bit RGB files are reduced
    by Pillow, which keeps the high byte). Arrays may be HxW, HxWx1, HxWx3 or HxWx4 of uint8,
    uint16, or float in [0, 1]; a uint8 HxWx3 array is returned as is (no copy).

    ``max_pixels`` (default ``$ZEROSEG_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`) is checked against the
    file header before any pixel is decoded.

    Raises ImageReadError (missing, unreadable, truncated, not an image, unsupported array),
    ImageTooLargeError (more than ``max_pixels`` pixels) and EmptyImageError (zero width or height).
    """
    limit = max_pixels_limit() if max_pixels is None else max_pixels
    if isinstance(src, np.ndarray):
        return _array_to_rgb(src, limit)
    if isinstance(src, Image.Image):
        return _pil_to_rgb(src, "<PIL image>", limit)
    name = _describe(src)
    with _open(src, name) as image:
        return _pil_to_rgb(image, name, limit)


def image_key(image: np.ndarray) -> tuple[str, tuple[int, ...]]:
    """A cache key of an image array by its pixels: content hash and shape."""
    return hashlib.sha256(np.ascontiguousarray(image).data).hexdigest(), tuple(image.shape)


def _describe(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return str(getattr(src, "name", "<file object>"))


def _open(src: Any, name: str) -> Image.Image:
    """Open ``src`` with Pillow, reading only the header."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise ImageReadError(f"image not found: {path}")
        if not path.is_file():
            raise ImageReadError(f"not a file: {path}")
        fp: Any = path
    elif isinstance(src, (bytes, bytearray, memoryview)):
        fp = BytesIO(bytes(src))
    elif hasattr(src, "read"):
        fp = src
    else:
        raise ImageReadError(f"cannot read an image from a {type(src).__name__}")
    try:
        with warnings.catch_warnings():
            # We apply our own limit below; Pillow's hard limit still raises DecompressionBombError.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{name}: {err}") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image (or a format Pillow cannot read)") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except _DECODE_ERRORS as err:
        raise ImageReadError(f"{name}: cannot read image: {err}") from None


def _check_size(width: int, height: int, name: str, limit: int) -> None:
    if width == 0 or height == 0:
        raise EmptyImageError(f"{name}: image is empty ({width}x{height} pixels)")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} = {width * height:,} pixels is more than the limit of {limit:,} "
            f"(raise it with {MAX_PIXELS_ENV})"
        )


def _pil_to_rgb(image: Image.Image, name: str, limit: int) -> np.ndarray:
    _check_size(image.width, image.height, name, limit)
    try:
        image.load()  # full decode: truncated or corrupt data fails here
        if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
        if image.mode in _HIGH_DEPTH_MODES:
            return _array_to_rgb(_high_depth_samples(image, name), limit, name)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.ascontiguousarray(np.asarray(image))
    except ZerosegError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageReadError(f"{name}: cannot decode image: {err}") from None


def _high_depth_samples(image: Image.Image, name: str) -> np.ndarray:
    """Pixels of a 16/32-bit integer or float image as uint16 (16-bit data) or float (0..1 data)."""
    samples = np.asarray(image)
    if image.mode == "I":  # how Pillow holds 16-bit PNG/TIFF data in some paths
        if samples.size and (samples.min() < 0 or samples.max() > 65535):
            raise ImageReadError(f"{name}: 32-bit integer image with values outside 0..65535")
        return samples.astype(np.uint16)
    return samples.astype(np.uint16) if samples.dtype.kind == "u" else samples


def _array_to_rgb(array: np.ndarray, limit: int, name: str | None = None) -> np.ndarray:
    name = name or f"<{array.dtype} array of shape {array.shape}>"
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        height, width = array.shape[:2]
    elif array.ndim == 2:
        height, width = array.shape
    else:
        raise ImageReadError(f"{name}: expected HxW, HxWx1, HxWx3 or HxWx4")
    _check_size(width, height, name, limit)
    pixels = _to_uint8(array, name)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(pixels)


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "u" and array.dtype.itemsize == 2:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v * 255 / 65535)
    if kind == "f":
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ImageReadError(f"{name}: float images must hold finite values in [0, 1]")
        return np.rint(array * 255.0).astype(np.uint8)
    if kind == "b":
        raise ImageReadError(f"{name}: a bool array is a mask, not an image (use uint8 RGB)")
    raise ImageReadError(f"{name}: unsupported dtype (use uint8, uint16 or float in [0, 1])")


# --- safe output --------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    The temporary file (``.<stem>.<random>.part<suffix>``, same directory so the rename is atomic,
    same extension so writers can infer the format) is removed on any failure. Parent directories
    are created. OS errors (disk full, permissions, ...) become :class:`OutputError`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise _output_error(path, err) from None
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, ZerosegError):
            raise _output_error(path, err) from None
        raise


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and its parents) up front, so a bad destination fails before any work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _output_error(path, err) from None
    return path


@contextmanager
def staged_output(folder: str | os.PathLike, stale: str = "", last: str = "") -> Iterator[Path]:
    """Yield an empty hidden folder inside ``folder`` to write one result's files into; on success they
    replace their namesakes in ``folder``, on any failure they are deleted and ``folder`` is left as it was.

    The commit removes ``last`` (the file that says a result is complete, e.g. ``result.json``) first, moves
    the other files in, removes the files of an earlier result that this one lacks (names fully matching the
    regex ``stale``) and moves ``last`` in at the end, so ``last`` never describes files of another run.
    Other files in ``folder`` are kept. OS errors (disk full, permissions, ...) become :class:`OutputError`.
    """
    folder = Path(folder)
    stage = folder / f".staged.{secrets.token_hex(4)}.part"
    try:
        stage.mkdir(parents=True)
    except OSError as err:
        raise _output_error(folder, err) from None
    try:
        yield stage
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(err, OutputError):  # from atomic_path in the stage: name the file the user asked for
            raise OutputError(str(err).replace(str(stage), str(folder))) from None
        if isinstance(err, OSError) and not isinstance(err, ZerosegError):
            where = str(err.filename).replace(str(stage), str(folder)) if err.filename else folder
            raise _output_error(Path(where), err) from None
        raise
    names = sorted(p.name for p in stage.iterdir())
    try:
        if last in names:
            (folder / last).unlink(missing_ok=True)
        for name in names:
            if name != last:
                os.replace(stage / name, folder / name)
        for old in folder.iterdir():
            if stale and old.name not in names and re.fullmatch(stale, old.name) and old.is_file():
                old.unlink()
        if last in names:
            os.replace(stage / last, folder / last)
        stage.rmdir()
    except OSError as err:  # renames and unlinks in a folder just written to: unlikely, but not atomic
        shutil.rmtree(stage, ignore_errors=True)
        missing = f": no {last}" if last else ""
        message = f"cannot finish writing to {folder}: {_reason(err)} (the result is incomplete{missing})"
        raise OutputError(message) from None


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write ``data`` (str is encoded with ``encoding``) to ``path`` atomically; return the path."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def save_png(path: str | os.PathLike, image: Image.Image | np.ndarray) -> Path:
    """Write an image (PIL, or an HxW / HxWx3 uint8 array) as PNG, atomically."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def save_mask_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a bool HxW mask as an 8-bit grayscale PNG (0 = background, 255 = mask), atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an HxW mask, got shape {mask.shape}")
    return save_png(path, np.where(mask.astype(bool), np.uint8(255), np.uint8(0)))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _output_error(path: Path, err: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {_reason(err)} (nothing was written)")


def _reason(err: OSError) -> str:
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a parent of the path is not a directory",
    }
    return reasons.get(err.errno, err.strerror or str(err))


# --- masks --------------------------------------------------------------------------------
def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a bool HxW mask as a JSON-ready COCO RLE ``{"size": [h, w], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def masks_to_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode an NxHxW bool stack in one pycocotools call."""
    masks = np.asarray(masks, dtype=np.uint8)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed str/bytes counts or uncompressed list counts) to bool HxW."""
    if isinstance(rle.get("counts"), list):
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def polygon_to_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a polygon (Nx2 pixel xy, N >= 3) to a bool HxW mask exactly as COCO does (pycocotools).

    COCO coordinates are continuous with pixel ``(i, j)`` covering ``[j, j+1) x [i, i+1)``, so the square
    with corners (0, 0) and (10, 10) covers 100 pixels.
    """
    polygon = np.asarray(polygon, dtype=np.float64)
    if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
        raise DatasetError(f"a polygon needs at least 3 xy vertices, got shape {polygon.shape}")
    rles = mask_utils.frPyObjects([polygon.ravel().tolist()], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE without decoding it."""
    if isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(rle))


def rle_bbox(rle: dict[str, Any]) -> list[int]:
    """Tight XYWH box (COCO convention) of a COCO RLE without decoding it; [0, 0, 0, 0] if empty."""
    if isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return [int(v) for v in mask_utils.toBbox(rle)]
