"""Hugging Face folders: the segmenters ``transformers`` implements (SAM 2.1, SAM-HQ, EdgeTAM, SAM 3).

Such an entry names a repository (``repo``, pinned ``revision``) and the cache folder it is kept in
(``cache_dir()/folder``). :func:`fetch` downloads its config, safetensors and JSON/tokenizer files with
``huggingface_hub.snapshot_download`` and a progress bar. :func:`resolve` gives a builder the folder to load:
an explicit folder in the Hugging Face layout (checked: ``config.json`` of the right ``model_type``, weights),
Meta's SAM 2.1 ``.pt`` (converted once into ``cache_dir()/converted``), or the cached download, fetched on
first use. Offline, gated without a token, or not found: one WeightsNotFoundError says what to do.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeroseg.errors import ConfigError, WeightsNotFoundError
from zeroseg.hub.cache import cache_dir
from zeroseg.hub.entry import ModelEntry
from zeroseg.hub.registry import get, list_models

CONFIG_FILE = "config.json"
ALLOW_PATTERNS = ("*.json", "*.safetensors", "merges.txt")
"""What is downloaded: config, weights (and their index), processor and tokenizer files; not Meta's ``.pt``."""

FAMILIES = ("sam2", "edgetam", "sam_hq", "sam3_tracker", "sam3", "sam3_lite_text")
"""What ``zeroseg.models.hf`` builds from a folder; each family's ``model_type`` values are the adapters'."""

CONCEPT_FAMILIES = ("sam3", "sam3_lite_text")
"""Families built by ``zeroseg.models.hf.sam3.build_sam3`` (text and exemplar prompts, clicks); the others by
``zeroseg.models.hf.build_hf_segmenter``."""


@dataclass(frozen=True)
class HFBuilder:
    """An entry's builder: ``builder(path)`` resolves the folder (:func:`resolve`) and builds ``family`` from it.

    ``meta_size`` (SAM 2.1 only) is the official size whose Meta ``.pt`` may be given instead of a folder.
    """

    name: str
    family: str
    meta_size: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown Hugging Face family {self.family!r}; known: {', '.join(FAMILIES)}")

    def __call__(self, path: Path | None, **options: Any) -> Any:
        return build(self.family, resolve(self.name, path), **options)


def build(family: str, folder: Path, **options: Any) -> Any:
    """The model of ``family`` from a checked folder (``options``, e.g. ``dtype``, go to the adapters)."""
    if family in CONCEPT_FAMILIES:
        from zeroseg.models.hf.sam3 import build_sam3

        if options.pop("compile", False):
            raise ConfigError("compile is for the promptable models (clicks and boxes), not a concept model")
        return build_sam3(folder, **options)
    from zeroseg.models.hf import build_hf_segmenter

    return build_hf_segmenter(family, folder, **options)


def model_types(family: str) -> tuple[str, ...]:
    """The ``config.json`` ``model_type`` values a family loads, as its adapter declares them (a video
    checkpoint holds the image model)."""
    if family in CONCEPT_FAMILIES:
        from zeroseg.models.hf.sam3 import MODEL_TYPES

        return tuple(sorted(t for t, f in MODEL_TYPES.items() if f == family))
    from zeroseg.models.hf import FAMILIES as ADAPTERS

    return tuple(sorted(ADAPTERS[family].model_types))


def builder_of(entry: ModelEntry) -> HFBuilder:
    if not isinstance(entry.builder, HFBuilder):
        raise ConfigError(f"{entry.name!r} is not built from a Hugging Face folder")
    return entry.builder


# --- the folder ------------------------------------------------------------------------------
def cache_folder(entry: ModelEntry) -> Path:
    """Where the hub keeps an entry's download (whether present or not)."""
    if entry.folder is None:
        raise ConfigError(f"{entry.name!r} is not a Hugging Face folder")
    return cache_dir() / entry.folder


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files a folder's model needs: the shards of its index, else every ``*.safetensors``."""
    for index in sorted(folder.glob("*.safetensors.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        return [folder / shard for shard in sorted(shards)]
    return sorted(folder.glob("*.safetensors"))


def folder_complete(folder: Path) -> bool:
    """Whether a folder has its config and all its weights (an interrupted download has not)."""
    files = weight_files(folder)
    return (folder / CONFIG_FILE).is_file() and bool(files) and all(f.is_file() for f in files)


def check_folder(folder: Path, entry: ModelEntry) -> Path:
    """``folder`` if it holds ``entry``'s model in the Hugging Face layout; else WeightsNotFoundError (config
    or weights missing) or ConfigError (another model)."""
    family = builder_of(entry).family
    config = folder / CONFIG_FILE
    if not config.is_file():
        raise WeightsNotFoundError(
            f"{folder} is not a model folder in the Hugging Face layout (no {CONFIG_FILE}): give the folder "
            f"`save_pretrained` or `hf download {entry.repo}` writes, with {CONFIG_FILE} and *.safetensors"
        )
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
        raise ConfigError(f"cannot read {config}: {err}") from None
    expected = model_types(family)
    if model_type not in expected:
        others = [e.name for e in list_models() if isinstance(e.builder, HFBuilder)
                  and model_type in model_types(e.builder.family)]
        hint = f"; it fits {', '.join(others)}" if others else ""
        raise ConfigError(
            f"{folder} holds a {model_type!r} model, not {entry.name!r} (model_type "
            f"{' or '.join(repr(t) for t in expected)}){hint}"
        )
    files = weight_files(folder)
    if not files or not all(f.is_file() for f in files):
        missing = [f.name for f in files if not f.is_file()] or ["*.safetensors"]
        raise WeightsNotFoundError(f"{folder} has {CONFIG_FILE} but no weights ({', '.join(missing[:3])} missing)")
    return folder


def resolve(name: str, path: Path | None = None, progress: bool = True) -> Path:
    """The folder to build entry ``name`` from: ``path`` (a folder, or for SAM 2.1 Meta's ``.pt``), else the
    cached download, fetched first if it is not complete (or updated if its pinned revision changed)."""
    entry = get(name)
    if path is None:
        folder = cache_folder(entry)
        if not folder_complete(folder):
            fetch(entry.name, progress=progress)
        elif entry.revision is not None and downloaded_revision(entry) not in (None, entry.revision):
            try:  # the pin moved since this folder was downloaded
                fetch(entry.name, progress=progress)
            except WeightsNotFoundError as err:
                warnings.warn(f"using the cached {entry.name!r} of another revision: {err}", stacklevel=2)
        return check_folder(folder, entry)
    path = Path(path).expanduser()
    if path.is_dir():
        return check_folder(path, entry)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    meta_size = builder_of(entry).meta_size
    if meta_size is None:
        raise ConfigError(
            f"{entry.name!r} loads a folder in the Hugging Face layout ({CONFIG_FILE} and *.safetensors); "
            f"{path} is a file"
        )
    return converted_folder(entry, path, meta_size)


# --- Meta's SAM 2.1 .pt ------------------------------------------------------------------------
SOURCE_FILE = "zeroseg_source.json"
"""In a converted folder: which ``.pt`` it was made from (path, size, mtime), to redo it when that changes."""


def official_sam2_config(size: str) -> Any:
    """The ``Sam2Config`` a Meta ``.pt`` of this size is loaded with (the official one)."""
    from zeroseg.models.hf import convert_sam2

    return convert_sam2.official_config(size)


def converted_folder(entry: ModelEntry, checkpoint: Path, size: str) -> Path:
    """A Hugging Face folder made from Meta's ``checkpoint`` for ``entry`` (converted once, then reused)."""
    from zeroseg.models.hf import convert_sam2

    source = checkpoint.resolve()
    stat = source.stat()
    stamp = {"source": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    dest = cache_dir() / "converted" / entry.name / source.stem
    if (dest / SOURCE_FILE).is_file() and folder_complete(dest):
        try:
            if json.loads((dest / SOURCE_FILE).read_text(encoding="utf-8")) == stamp:
                return check_folder(dest, entry)
        except (OSError, ValueError):
            pass
    part = dest.parent / f".{dest.name}.{os.getpid()}.part"
    shutil.rmtree(part, ignore_errors=True)
    try:
        convert_sam2.write_hf_folder(source, official_sam2_config(size), part)
        (part / SOURCE_FILE).write_text(json.dumps(stamp), encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(part, dest)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return check_folder(dest, entry)


# --- download ----------------------------------------------------------------------------------
def _progress_class(progress: bool) -> type:
    """huggingface_hub's tqdm (a bar on stderr, unless HF_HUB_DISABLE_PROGRESS_BARS), or a silent subclass."""
    from huggingface_hub.utils import tqdm

    if progress:
        return tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _has_token() -> bool:
    from huggingface_hub import get_token

    return bool(get_token())


def instructions(entry: ModelEntry, why: str) -> str:
    """The one message for weights that are not here: why, then what to do."""
    dest = cache_folder(entry)
    revision = f" --revision {entry.revision}" if entry.revision else ""
    steps = []
    if entry.gated:
        steps.append(
            f"{entry.repo} is gated: accept its licence at https://huggingface.co/{entry.repo} (signed in), "
            "set HF_TOKEN to a read token of that account (https://huggingface.co/settings/tokens), "
            f"then run `zeroseg models download {entry.name}`"
        )
    else:
        steps.append(f"run `zeroseg models download {entry.name}` when online")
    steps.append(
        f"or put the folder ({CONFIG_FILE} and *.safetensors, e.g. from `hf download {entry.repo}{revision} "
        f"--local-dir DIR`) at {dest}"
    )
    steps.append(f"or pass --checkpoint DIR (Python: load_model({entry.name!r}, checkpoint=DIR))")
    return f"weights for {entry.name!r} {why}. To get them: " + "; ".join(steps) + "."


_NETWORK_MODULES = ("httpx", "huggingface_hub", "requests", "urllib3")


def fetch(name: str, progress: bool = True, downloader: Callable[..., Any] | None = None) -> Path:
    """Download entry ``name``'s folder into the cache (resuming a partial one) and return it, checked.

    ``downloader`` replaces ``huggingface_hub.snapshot_download`` (tests). Raises WeightsNotFoundError with
    :func:`instructions` when the Hub cannot be reached, the repository is gated without access, or the
    pinned revision is gone.
    """
    from huggingface_hub import errors

    entry = get(name)
    if not entry.fetchable:
        raise ConfigError(f"{entry.name!r} is not a Hugging Face folder the hub downloads")
    if downloader is None:
        from huggingface_hub import snapshot_download as downloader
    dest = cache_folder(entry)
    try:
        downloader(
            repo_id=entry.repo,
            revision=entry.revision,
            allow_patterns=list(ALLOW_PATTERNS),
            local_dir=dest,
            tqdm_class=_progress_class(progress),
        )
    except errors.GatedRepoError:
        why = "are in a gated repository " + (
            "your Hugging Face token has no access to yet" if _has_token() else "and no Hugging Face token is set"
        )
        raise WeightsNotFoundError(instructions(entry, why)) from None
    except errors.RevisionNotFoundError:
        why = f"could not be downloaded: revision {entry.revision} of {entry.repo} was not found"
        raise WeightsNotFoundError(instructions(entry, why)) from None
    except errors.RepositoryNotFoundError:
        why = f"could not be downloaded: {entry.repo} was not found" + ("" if _has_token() else " (or needs a token)")
        raise WeightsNotFoundError(instructions(entry, why)) from None
    except Exception as err:
        if not (isinstance(err, OSError) or type(err).__module__.startswith(_NETWORK_MODULES)):
            raise
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        why = f"are not in the cache and could not be downloaded from Hugging Face ({reason})"
        raise WeightsNotFoundError(instructions(entry, why)) from None
    if not folder_complete(dest):
        why = f"are incomplete in {dest} and the download did not complete them (offline?)"
        raise WeightsNotFoundError(instructions(entry, why))
    return check_folder(dest, entry)


def downloaded_revision(entry: ModelEntry) -> str | None:
    """The commit huggingface_hub recorded for the cached download's config (None: not downloaded by it).

    ``snapshot_download(local_dir=...)`` keeps, per file, ``.cache/huggingface/download/<file>.metadata``
    whose first line is the commit."""
    metadata = cache_folder(entry) / ".cache" / "huggingface" / "download" / f"{CONFIG_FILE}.metadata"
    try:
        with metadata.open(encoding="utf-8") as f:
            commit = f.readline().strip()
    except OSError:
        return None
    return commit or None
