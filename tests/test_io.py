"""Image loading: every bad input fails early with the right error; atomic writes leave nothing partial."""
from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zeroseg import io as zio
from zeroseg.errors import EmptyImageError, ImageReadError, ImageTooLargeError, OutputError


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


# --- good inputs --------------------------------------------------------------------------
def test_all_source_kinds_give_the_same_pixels(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    sources = [path, str(path), data, io.BytesIO(data), Image.open(path), rgb]
    for src in sources:
        out = zio.load_image(src)
        assert out.dtype == np.uint8 and out.shape == (37, 53, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb)


def test_golden_image_matches_its_recorded_shape(goldens_dir: Path) -> None:
    import json

    meta = json.loads((goldens_dir / "images" / "images.json").read_text())
    for entry in meta.values():
        out = zio.load_image(goldens_dir / entry["file"])
        assert list(out.shape) == entry["shape_hwc"]


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 128, 129, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = zio.load_image(path)
    expected = np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert out.shape == (1, 6, 3)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_grayscale_palette_rgba_la_cmyk_become_rgb(tmp_path: Path, rgb: np.ndarray) -> None:
    gray = Image.fromarray(rgb[..., 0])
    out = zio.load_image(_png_bytes(gray))
    assert out.shape == (37, 53, 3)
    np.testing.assert_array_equal(out[..., 1], rgb[..., 0])

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    out = zio.load_image(_png_bytes(Image.fromarray(rgba)))
    np.testing.assert_array_equal(out, rgb)  # alpha dropped, colour untouched

    palette = Image.fromarray(rgb).quantize(16)
    out = zio.load_image(_png_bytes(palette))
    np.testing.assert_array_equal(out, np.asarray(palette.convert("RGB")))

    la = Image.fromarray(rgba[..., [0, 3]], mode="LA")
    np.testing.assert_array_equal(zio.load_image(_png_bytes(la))[..., 2], rgb[..., 0])

    cmyk = Image.fromarray(rgb).convert("CMYK")
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, quality=95)
    assert zio.load_image(path).shape == (37, 53, 3)


def test_exif_orientation_6_rotates(tmp_path: Path) -> None:
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, :10] = 255  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    out = zio.load_image(path)
    assert out.shape == (60, 20, 3)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the left band is now on top


def test_arrays(rgb: np.ndarray) -> None:
    assert zio.load_image(rgb) is rgb  # already right: no copy
    np.testing.assert_array_equal(zio.load_image(rgb[..., 0])[..., 2], rgb[..., 0])
    np.testing.assert_array_equal(zio.load_image(rgb[..., :1])[..., 1], rgb[..., 0])
    np.testing.assert_array_equal(zio.load_image(np.dstack([rgb, rgb[..., :1]])), rgb)
    np.testing.assert_array_equal(zio.load_image(rgb.astype(np.float32) / 255.0), rgb)
    np.testing.assert_array_equal(zio.load_image(rgb.astype(np.uint16) * 257), rgb)


# --- bad inputs ---------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        zio.load_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="not a file"):
        zio.load_image(tmp_path)


def test_unreadable_file(tmp_path: Path, rgb: np.ndarray, monkeypatch) -> None:
    import os

    path = tmp_path / "locked.png"
    Image.fromarray(rgb).save(path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root ignores permissions: make the open fail the same way

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(ImageReadError, match="permission denied"):
        zio.load_image(path)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(ImageReadError, match="not an image"):
        zio.load_image(path)
    with pytest.raises(ImageReadError):
        zio.load_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_fails_at_load(tmp_path: Path, rgb: np.ndarray, fmt: str) -> None:
    big = np.repeat(np.repeat(rgb, 8, axis=0), 8, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="cannot decode"):
        zio.load_image(path)


def test_too_many_pixels_is_refused_from_the_header(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (4000, 3000)).save(path)  # 12 Mpx, a few KB on disk
    assert path.stat().st_size < 20_000

    def no_decode(self, *args, **kwargs):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decode)
    with pytest.raises(ImageTooLargeError, match="12,000,000 pixels"):
        zio.load_image(path, max_pixels=10_000_000)
    monkeypatch.setenv("ZEROSEG_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError):
        zio.load_image(np.zeros((40, 30, 3), np.uint8))


def test_bad_max_pixels_env(monkeypatch) -> None:
    from zeroseg.errors import ConfigError

    monkeypatch.setenv("ZEROSEG_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="ZEROSEG_MAX_PIXELS"):
        zio.load_image(np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0), (0, 0, 1)])
def test_empty_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(EmptyImageError):
        zio.load_image(np.zeros(shape, np.uint8))


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4), bool), "mask, not an image"),
        (np.zeros((4, 4, 3), np.int64), "unsupported dtype"),
        (np.full((4, 4, 3), 2.0), r"\[0, 1\]"),
        (np.full((4, 4, 3), np.nan, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4, 2), np.uint8), "expected HxW"),
        (np.zeros((2, 4, 4, 3), np.uint8), "expected HxW"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(ImageReadError, match=message):
        zio.load_image(array)


def test_unsupported_source_type() -> None:
    with pytest.raises(ImageReadError, match="cannot read an image from a int"):
        zio.load_image(42)  # type: ignore[arg-type]


# --- atomic output ------------------------------------------------------------------------
def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "result.json"
    zio.atomic_write(target, "first")
    zio.atomic_write(target, b"second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "mask.png"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with zio.atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("writer crashed mid-way")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]


def test_disk_full_becomes_output_error(tmp_path: Path) -> None:
    target = tmp_path / "overlay.png"
    with pytest.raises(OutputError, match="no space left on device"):
        with zio.atomic_path(target) as tmp:
            tmp.write_bytes(b"\x89PNG")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination_becomes_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        zio.atomic_write(blocker / "out.json", "{}")
    with pytest.raises(OutputError, match="not a directory"):
        zio.ensure_dir(blocker / "sub")
    assert zio.ensure_dir(tmp_path / "a" / "b").is_dir()


def test_save_mask_png_round_trip(tmp_path: Path) -> None:
    mask = np.zeros((9, 11), bool)
    mask[2:5, 3:8] = True
    path = zio.save_mask_png(tmp_path / "mask_0.png", mask)
    stored = np.asarray(Image.open(path))
    assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 255}
    np.testing.assert_array_equal(stored > 0, mask)


def test_rle_bbox_and_area() -> None:
    mask = np.zeros((9, 11), bool)
    mask[2:5, 3:8] = True
    rle = zio.mask_to_rle(mask)
    assert zio.rle_bbox(rle) == [3, 2, 5, 3]
    assert zio.rle_area(rle) == 15
    assert zio.rle_bbox(zio.mask_to_rle(np.zeros((4, 4), bool))) == [0, 0, 0, 0]
