"""Shared test fixtures: where the read-only shared fixtures and data live.

Missing shared fixtures skip the tests that need them, or fail them under ``ZEROSEG_REQUIRE=1``
(see ``optional.py``; CI sets it).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from optional import unavailable

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZEROSEG_SHARED", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        unavailable(f"shared fixtures not found at {path} (set ZEROSEG_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def goldens_dir() -> Path:
    return _need(SHARED / "fixtures" / "goldens")


@pytest.fixture(scope="session")
def manifests_dir() -> Path:
    return _need(SHARED / "fixtures" / "manifests")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(SHARED / "data")


@pytest.fixture
def scratch_hub(monkeypatch):
    """A private copy of the hub's registry for one test; returns ``add(name, builder, kind)``, which
    registers a builder there (a dense embedder unless ``kind`` says otherwise)."""
    from zeroseg import hub
    from zeroseg.hub import registry

    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))

    def add(name: str, builder, kind: str = hub.DENSE_EMBEDDER) -> None:
        entry = hub.ModelEntry(name=name, kind=kind, builder=builder, description=f"test {kind}", licence="-")
        hub.register(entry, replace=True)

    return add
