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
