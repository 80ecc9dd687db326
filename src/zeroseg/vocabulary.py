"""Vocabularies: the free-text names a user gives for naming (torch-free, so the CLI starts fast)."""
from __future__ import annotations

from collections.abc import Sequence


def clean_names(names: Sequence[str] | str) -> list[str]:
    """Accept "sky, grass, cow" or a list; strip blanks; keep order and drop duplicates."""
    items = names.split(",") if isinstance(names, str) else list(names)
    seen: dict[str, None] = {}
    for item in items:
        item = " ".join(str(item).replace("_", " ").split())
        if item:
            seen.setdefault(item, None)
    return list(seen)


ARTICLES = frozenset({"a", "an", "the"})


def strip_article(name: str) -> str:
    """A name without its leading article and closing full stop ("a cup." -> "cup"): the noun a text
    prompt is about."""
    words = name.strip().rstrip(".!?;:").split()
    return " ".join(words[1:] if len(words) > 1 and words[0].lower() in ARTICLES else words)


def name_key(name: str) -> str:
    """What two names are compared by when deciding they name the same thing: lower case, no
    leading article or closing full stop, a plain English plural made singular ("A Cup.", "cups" -> "cup";
    "bus" stays)."""
    key = strip_article(" ".join(name.replace("_", " ").lower().split()))
    if key.endswith("es") and key[:-2].endswith(("ch", "sh", "x", "ss")):
        return key[:-2]
    if key.endswith("s") and not key.endswith(("ss", "us", "is")) and len(key) > 3:
        return key[:-1]
    return key
