"""`ModelEntry`: one thing the hub can load or fetch, and the kinds of things there are."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zeroseg.preset import SAM, Preset

SEGMENTER = "segmenter"
"""Promptable segmentation models: what :func:`zeroseg.hub.load_model` builds."""
TEXT_ENCODER = "text_encoder"
"""Names -> unit vectors (``zeroseg.models.text.TextEncoder``): :func:`zeroseg.hub.get_text_encoder`."""
DENSE_EMBEDDER = "dense_embedder"
"""Image -> per-pixel embeddings (``zeroseg.models.vl.DenseEmbedder``): :func:`zeroseg.hub.load_dense_embedder`."""
BUILT = (SEGMENTER, TEXT_ENCODER, DENSE_EMBEDDER)
"""Kinds the hub builds; every other kind names files that builders are handed (``"clip"`` weights, CLIP's
``"vocab"``, a Hugging Face ``"groupvit"`` folder)."""

Builder = Callable[..., Any]
"""``builder(path, **options)``: ``path`` is an explicit weight file (or folder) or None for the default."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model or weight file.

    Segmenters have either ``arch`` (an architecture name for ``build_sam``, with a downloadable
    weight file: ``filename``, ``url``, ``sha256``, ``size``) or ``builder``. Text encoders and dense
    embedders have a ``builder``; it resolves the files it needs through the hub and hands their
    paths to ``zeroseg.models``; ``needs`` names the file entries it uses. Other kinds are files: a
    download (``url`` ...) or a Hugging Face folder (``repo``, kept in the cache folder ``folder``).

    A segmenter with a ``repo`` is built from that Hugging Face folder, which the hub downloads itself
    (:mod:`zeroseg.hub.hf`): ``revision`` pins the commit (None: the repository's main branch), ``size``
    is the approximate download in bytes, ``gated`` says the repository needs an accepted licence and a token.

    ``preset`` holds a segmenter's inference defaults (segment-everything thresholds, refinement,
    naming); every face starts from it. It means nothing for the other kinds.
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
    repo: str | None = None
    folder: str | None = None
    needs: tuple[str, ...] = ()
    revision: str | None = None
    gated: bool = False

    def __post_init__(self) -> None:
        weight_fields = (self.filename, self.url, self.sha256, self.size)
        if any(f is not None for f in weight_fields[:3]) and None in weight_fields:
            raise ValueError(f"model {self.name!r}: filename, url, sha256 and size go together")
        if self.size is not None and self.url is None and self.repo is None:
            raise ValueError(f"model {self.name!r}: a size belongs to a download (url=) or a folder (repo=)")
        if (self.repo is None) != (self.folder is None):
            raise ValueError(f"model {self.name!r}: repo and folder go together")
        if (self.revision is not None or self.gated) and self.repo is None:
            raise ValueError(f"model {self.name!r}: revision and gated describe a Hugging Face repo (repo=)")
        if self.kind == SEGMENTER:
            if (self.arch is None) == (self.builder is None):
                raise ValueError(f"model {self.name!r}: give exactly one of arch= or builder=")
            if self.arch is not None and self.url is None:
                raise ValueError(f"model {self.name!r}: an arch= entry needs its weight file (url, sha256, ...)")
        elif self.kind in BUILT:
            if self.builder is None or self.arch is not None:
                raise ValueError(f"model {self.name!r}: a {self.kind} entry needs a builder= (and no arch=)")
        elif self.arch is not None or self.builder is not None or (self.url is None) == (self.repo is None):
            raise ValueError(f"model {self.name!r}: a {self.kind!r} entry is a download (url=) or a folder (repo=)")

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    @property
    def fetchable(self) -> bool:
        """A Hugging Face folder the hub downloads itself (segmenters); other folders are fetched by hand."""
        return self.repo is not None and self.kind == SEGMENTER

    @property
    def packaged(self) -> bool:
        """Built from files that ship with zeroseg or its dependencies (nothing to fetch)."""
        return self.url is None and self.repo is None and not self.needs

    def source(self) -> str:
        """Where the weights come from, for listings."""
        if self.url is not None:
            return self.url
        if self.repo is not None:
            return f"Hugging Face {self.repo}" + (f" @ {self.revision[:12]}" if self.revision else "")
        return f"needs {', '.join(self.needs)}" if self.needs else "packaged"

