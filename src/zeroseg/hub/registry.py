"""The registry: names (and aliases) -> :class:`ModelEntry`, one namespace per kind.

Names are case-insensitive and '-' equals '_'. A name may mean one thing of each kind ("lite" is
both the segmenter and its dense embedder); :func:`get` without a kind prefers the kind registered
first (segmenters). Versions trained by the engine are found in the cache when asked for
(:mod:`zeroseg.hub.lite`), never registered, so they follow ``$ZEROSEG_HOME``.
"""
from __future__ import annotations

import difflib

from zeroseg.errors import ModelError, UnknownModelError
from zeroseg.hub.entry import DENSE_EMBEDDER, SEGMENTER, TEXT_ENCODER, ModelEntry
from zeroseg.hub.lite import find_trained, trained_entries

_ENTRIES: dict[tuple[str, str], ModelEntry] = {}
"""(kind, name key) -> entry, in registration order."""
_ALIASES: dict[tuple[str, str], str] = {}
"""(kind, alias key) -> name key."""

_WHAT = {SEGMENTER: "model", TEXT_ENCODER: "text encoder", DENSE_EMBEDDER: "dense embedder"}
"""How an unknown name of each kind is reported."""
_NOUN = {SEGMENTER: "segmentation model", TEXT_ENCODER: "text encoder", DENSE_EMBEDDER: "dense embedder"}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(entry: ModelEntry, replace: bool = False) -> None:
    """Add an entry (and its aliases) under its kind; ``replace=True`` overrides an existing name."""
    kind = entry.kind
    names = [_key(entry.name), *(_key(a) for a in entry.aliases)]
    if not replace:
        taken = [n for n in names if (kind, n) in _ENTRIES or (kind, n) in _ALIASES]
        if taken:
            raise ValueError(f"{kind} name(s) already registered: {', '.join(taken)}")
    old = _ENTRIES.get((kind, names[0]))
    if old is not None:
        for alias in old.aliases:
            _ALIASES.pop((kind, _key(alias)), None)
    _ENTRIES[(kind, names[0])] = entry
    for alias in names[1:]:
        _ALIASES[(kind, alias)] = names[0]


def kinds() -> list[str]:
    """The kinds registered, in the order they were first registered."""
    return list(dict.fromkeys(kind for kind, _ in _ENTRIES))


def list_models(kind: str | None = None) -> list[ModelEntry]:
    """Every entry (of ``kind``), in registration order, then the trained versions in the cache."""
    entries = [entry for (k, _), entry in _ENTRIES.items() if kind in (None, k)]
    if kind in (None, SEGMENTER):
        known = {_key(e.name) for e in entries}
        entries += [e for e in trained_entries() if _key(e.name) not in known]
    return entries


def find(name: str, kind: str | None = None) -> ModelEntry | None:
    """The entry called ``name`` (of ``kind``), or None."""
    key = _key(name)
    for k in [kind] if kind is not None else kinds():
        entry = _ENTRIES.get((k, _ALIASES.get((k, key), key)))
        if entry is not None:
            return entry
    return find_trained(name) if kind in (None, SEGMENTER) else None


def get(name: str, kind: str | None = None) -> ModelEntry:
    """The entry for a name or alias (of ``kind``; any kind, segmenters first, if None).

    Raises UnknownModelError naming the closest known name.
    """
    entry = find(name, kind)
    if entry is not None:
        return entry
    key = _key(name)
    known = sorted({_key(e.name) for e in list_models(kind)})
    aliases = sorted({a for (k, a) in _ALIASES if kind in (None, k)})
    close = difflib.get_close_matches(key, [*known, *aliases], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    what = _WHAT.get(kind or SEGMENTER, kind)
    raise UnknownModelError(
        f"unknown {what} {name!r}{hint} Known {what}s: {', '.join(known)} (aliases: {', '.join(aliases) or '-'})"
    )


def get_built(name: str, kind: str) -> ModelEntry:
    """:func:`get` for a kind the hub builds; a name of another kind says what it is instead."""
    entry = find(name, kind)
    if entry is None and (other := find(name)) is not None:
        what = _NOUN.get(other.kind, f"{other.kind} file")
        raise ModelError(
            f"{other.name!r} is a {what}, not a {_NOUN[kind]}; "
            f"give one of: {', '.join(e.name for e in list_models(kind))}"
        )
    return entry if entry is not None else get(name, kind)
