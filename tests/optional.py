"""What the tests may do without: shared fixtures, PostgreSQL, a browser, Ray, Meta's reference SAM code.

Each is skipped when missing, unless ``ZEROSEG_REQUIRE=1`` (CI, ``.ci/run``) makes that a failure.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ENV = "ZEROSEG_REQUIRE"


def required() -> bool:
    """Whether missing optional things fail the run (``ZEROSEG_REQUIRE=1``)."""
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it under ``ZEROSEG_REQUIRE=1``."""
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_optional(name: str, hint: str = "") -> ModuleType:
    """Import a third-party module the test needs, or :func:`unavailable` (never for zeroseg's own)."""
    assert not name.startswith("zeroseg"), "zeroseg's own modules are never optional"
    try:
        return importlib.import_module(name)
    except ImportError as err:
        unavailable(f"{name} cannot be imported: {err}" + (f" ({hint})" if hint else ""))
