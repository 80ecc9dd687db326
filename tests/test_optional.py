"""The one switch for optional test needs: missing ones skip, or fail under ZEROSEG_REQUIRE=1 (as in CI)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

NEEDS = '''
from optional import import_optional


def test_golden_output(goldens_dir):
    pass


def test_shared_data(data_dir):
    pass


def test_third_party_tool():
    import_optional("no_such_module_for_zeroseg_tests")
'''


def _run(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_needs.py").write_text(NEEDS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the repo's configuration
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSEG_REQUIRE")}
    env.update(ZEROSEG_SHARED=str(tmp_path / "missing"), PYTHONPATH=str(TESTS))
    if require is not None:
        env["ZEROSEG_REQUIRE"] = require
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-rfEs", "-p", "no:cacheprovider",
               str(tmp_path / "test_needs.py")]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("require", [None, "0"])
def test_missing_shared_fixtures_skip_by_default(tmp_path, require):
    result = _run(tmp_path, require)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout and "failed" not in result.stdout


def test_missing_shared_fixtures_fail_under_zeroseg_require(tmp_path):
    result = _run(tmp_path, "1")
    assert result.returncode == 1, result.stdout + result.stderr
    # a failing fixture is an error of the test that uses it: either way the run fails
    assert "1 failed, 2 errors" in result.stdout and "skipped" not in result.stdout
    assert "shared fixtures not found at" in result.stdout and "ZEROSEG_REQUIRE=1 requires it" in result.stdout


def test_one_switch_and_no_optional_zeroseg_modules():
    old_switch = re.compile("ZEROSEG_REQUIRE_[A-Z]")
    own_module_skip = re.compile(r"importorskip\(\s*['\"]zeroseg")
    for path in [*TESTS.glob("*.py"), REPO / ".ci" / "run", REPO / "Makefile"]:
        text = path.read_text()
        assert not old_switch.search(text), path
        assert not own_module_skip.search(text), path
    exports = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("export ZEROSEG")]
    assert any(re.fullmatch(r"export ZEROSEG_REQUIRE=1", line) for line in exports), exports
