"""The layering of DESIGN.md, enforced: the import-linter contracts in pyproject.toml (lazy imports count)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import zeroseg

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(sys.argv[1], no_cache=True, no_logo=True))"


def lint(package_parent: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the project's contracts on zeroseg (or on the copy of it in ``package_parent``)."""
    env = dict(os.environ)
    if package_parent is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package_parent), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", LINT, str(PYPROJECT)], capture_output=True, text=True, env=env, check=False
    )


def test_the_import_contracts_are_kept() -> None:
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_a_lazy_import_of_the_engine_in_the_hub_breaks_them(tmp_path: Path) -> None:
    """The check can fail: a copy of zeroseg whose hub imports the engine inside a function."""
    copy = tmp_path / "zeroseg"
    shutil.copytree(Path(zeroseg.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__", "weights", "static"))
    with (copy / "hub" / "registry.py").open("a", encoding="utf-8") as module:
        module.write("\n\ndef _circle() -> None:\n    from zeroseg.engine import train  # noqa: F401\n")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "zeroseg.hub.registry -> zeroseg.engine.train" in result.stdout


def test_the_hub_and_the_cli_listing_load_no_torch() -> None:
    """The registry (every entry and its preset) is plain data: listing models needs no torch."""
    code = "import sys, zeroseg.hub as h; h.list_models(); assert 'torch' not in sys.modules, 'torch loaded'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
