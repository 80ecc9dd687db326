"""Weight files: where each lives in the cache, fetching it (``download``), checking it (``verify``).

Nothing here touches the network unless :func:`download` is called. A missing file raises
WeightsNotFoundError saying what to fetch (URL, SHA-256, size) and where to put it.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path
from typing import Any

from zeroseg.errors import ChecksumError, ModelError, WeightsNotFoundError
from zeroseg.hub import hf
from zeroseg.hub.cache import cache_dir, checkpoints_dir
from zeroseg.hub.entry import ModelEntry
from zeroseg.hub.registry import find, get, list_models
from zeroseg.io import atomic_path

CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 30.0
FOLDER_MARKER = "config.json"
"""A Hugging Face folder counts as present once its config is there (the builder checks the rest)."""


def cache_path(name: str) -> Path:
    """Where the weight file of a downloadable entry lives in the cache (whether present or not)."""
    entry = get(name)
    if entry.filename is None:
        raise ModelError(f"{entry.name!r} has no weight file of its own to cache")
    return checkpoints_dir() / entry.filename


def folder_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The Hugging Face folder of a folder entry: ``folder`` if given, else its cache folder (whether present
    or not; the builder says what is missing)."""
    if folder is not None:
        return Path(folder).expanduser()
    entry = get(name)
    if entry.folder is None:
        raise ModelError(f"{entry.name!r} is not a Hugging Face folder")
    return cache_dir() / entry.folder


def is_cached(name: str) -> bool:
    """Whether an entry can be used without fetching anything (packaged, or its files are in the cache)."""
    entry = get(name)
    if entry.downloadable:
        return cache_path(entry.name).is_file()
    if entry.fetchable:
        return hf.folder_complete(hf.cache_folder(entry))
    if entry.repo is not None:
        return (folder_path(entry.name) / FOLDER_MARKER).is_file()
    return all(is_cached(need) for need in entry.needs)


def checkpoint_path(name: str, checkpoint: str | os.PathLike | None = None) -> Path:
    """The weight file to load: ``checkpoint`` if given, else the cached official file.

    Raises WeightsNotFoundError (with the URL, SHA-256 and destination to fetch it by hand) when the
    file is not cached, and ChecksumError when the cached file has the wrong size (a partial copy).
    """
    if checkpoint is not None:
        return existing_checkpoint(checkpoint)
    entry = get(name)
    path = cache_path(entry.name)
    if not path.is_file():
        raise WeightsNotFoundError(_fetch_instructions(entry, path, "not found in the cache"))
    if entry.size is not None and path.stat().st_size != entry.size:
        raise ChecksumError(
            f"{path} has {path.stat().st_size:,} bytes, expected {entry.size:,} (incomplete copy?); "
            f"delete it and run `zeroseg models download {entry.name}`"
        )
    return path


def existing_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """An explicit weight file, expanded; WeightsNotFoundError if it is not a file."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    return path


def _fetch_instructions(entry: ModelEntry, dest: Path, why: str) -> str:
    size_mb = (entry.size or 0) / 1e6
    what = "the file" if entry.kind == "vocab" else "weights"
    return (
        f"{what} for {entry.name!r} {why}. Run `zeroseg models download {entry.name}`, or download "
        f"{entry.url} ({size_mb:,.0f} MB, sha256 {entry.sha256}) and save it as {dest}"
    )


# --- download and verify ------------------------------------------------------------------
def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, progress: bool = True) -> Path | None:
    """Fetch an entry's official weight file into the cache and return its path.

    Streams to a ``.part`` file next to the destination while hashing, then renames it into place
    only if the SHA-256 matches (ChecksumError otherwise, and the partial file is removed). A file
    already cached with the right hash is kept. A segmenter's Hugging Face folder is fetched with
    ``huggingface_hub`` (:func:`zeroseg.hub.hf.fetch`: missing or changed files only) and its path returned.
    Returns None for entries without a file of their own (packaged models; an entry's ``needs`` are
    downloaded by name). Raises WeightsNotFoundError when the URL or the Hub cannot be reached (offline,
    gated), ModelError for other Hugging Face folders (fetched by hand).
    """
    from tqdm import tqdm

    entry = get(name)
    if entry.fetchable:
        return hf.fetch(entry.name, progress=progress)
    if entry.repo is not None:
        raise ModelError(
            f"{entry.name!r} is the Hugging Face repository {entry.repo}: fetch it with "
            f"`huggingface-cli download {entry.repo} --local-dir {folder_path(entry.name)}`"
        )
    if not entry.downloadable:
        return None
    dest = cache_path(entry.name)
    if dest.is_file() and dest.stat().st_size == entry.size and file_sha256(dest) == entry.sha256:
        return dest
    digest = hashlib.sha256()
    with atomic_path(dest) as part:
        try:
            response = urllib.request.urlopen(entry.url, timeout=DOWNLOAD_TIMEOUT_S)
        except OSError as err:  # URLError, HTTPError, timeouts, refused connections
            reason = getattr(err, "reason", err)
            why = f"could not be downloaded ({reason})"
            raise WeightsNotFoundError(_fetch_instructions(entry, dest, why)) from None
        total = int(response.headers.get("Content-Length") or 0) or entry.size
        with response, open(part, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.filename, disable=not progress
        ) as bar:
            while chunk := _read(response, entry, dest):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != entry.sha256:
            raise ChecksumError(
                f"download of {entry.url} has sha256 {digest.hexdigest()}, expected {entry.sha256}; "
                "nothing was saved (try again, or fetch it by hand)"
            )
    return dest


def _read(response: Any, entry: ModelEntry, dest: Path) -> bytes:
    """One chunk of a download; network failures mid-way become WeightsNotFoundError."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as err:
        raise WeightsNotFoundError(_fetch_instructions(entry, dest, f"download was interrupted ({err})")) from None


def verify(name_or_path: str | os.PathLike) -> ModelEntry:
    """Check a weight file's SHA-256 against the registry; return the entry it belongs to.

    A registered name checks that entry's cached file. Any other value is a path, which must match
    the hash of some registered file (and of the entry whose filename it has, if any).
    Raises WeightsNotFoundError (no such file) or ChecksumError (hash mismatch).
    """
    entry = find(name_or_path) if isinstance(name_or_path, str) else None
    if entry is not None:
        if not entry.downloadable:
            return entry
        path = cache_path(entry.name)
        if not path.is_file():
            raise WeightsNotFoundError(_fetch_instructions(entry, path, "not found in the cache"))
        expected: list[ModelEntry] = [entry]
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"no registered model or file named {str(name_or_path)!r}")
        files = [e for e in list_models() if e.downloadable]
        expected = [e for e in files if e.filename == path.name] or files
    actual = file_sha256(path)
    for candidate in expected:
        if candidate.sha256 == actual:
            return candidate
    if len(expected) == 1:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected[0].sha256} for {expected[0].name!r} "
            f"(corrupt or not the official file); delete it and run `zeroseg models download {expected[0].name}`"
        )
    raise ChecksumError(f"{path} has sha256 {actual}, which matches no registered model")
