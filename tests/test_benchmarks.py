"""The benchmark harness: timing, result rows and the generated docs section (no models needed)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` lives at the repo root

from benchmarks.cases import CASES, photo, point_batch  # noqa: E402
from benchmarks.report import (  # noqa: E402
    SECTION_END,
    SECTION_START,
    Machine,
    Row,
    at_least,
    at_most,
    format_seconds,
    replace_section,
    update_docs,
)
from benchmarks.run import parse_args  # noqa: E402
from benchmarks.timing import Repeats, median_seconds  # noqa: E402

MACHINE = Machine(cpu="Test CPU", cores=2, torch_version="2.x", threads=2, date="2024-01-01 00:00 UTC")


def test_median_seconds_runs_warmups_then_timed_runs():
    calls = []
    seconds = median_seconds(lambda: calls.append(1), Repeats(warmup=2, timed=3))
    assert len(calls) == 5
    assert 0 <= seconds < 0.1
    with pytest.raises(ValueError):
        median_seconds(lambda: None, Repeats(warmup=0, timed=0))


def test_targets_and_results():
    assert at_most(0.04, 0.05).passed and at_most(0.04, 0.05).text == "<= 50.0 ms"
    assert not at_most(21.0, 20.0).passed
    assert at_least(3.5, 3.0, "cheaper").passed and not at_least(2.9, 3.0, "cheaper").passed
    assert Row("d", "x", 0.01, at_most(0.01, 0.05)).result == "pass"
    assert Row("d", "x", 0.09, at_most(0.09, 0.05)).result == "FAIL"
    assert Row("d", "x", 1.0).result == ""
    assert Row("lite", "x", note="not importable").result == "skipped"
    assert Row("d", "x", note="boom", error=True).result == "ERROR"
    assert format_seconds(0.0123) == "12.3 ms" and format_seconds(4.567) == "4.57 s"


def test_replace_section_keeps_the_rest_of_the_file():
    text = f"# Title\n\nintro\n\n{SECTION_START}\nold\n{SECTION_END}\n\n## Other tool\nkept\n"
    new = replace_section(text, "new body")
    assert new == f"# Title\n\nintro\n\n{SECTION_START}\nnew body\n{SECTION_END}\n\n## Other tool\nkept\n"
    appended = replace_section("# Title\n", "body")
    assert appended == f"# Title\n\n{SECTION_START}\nbody\n{SECTION_END}\n"


def test_update_docs_creates_file_and_keeps_rows_of_cases_not_rerun(tmp_path):
    path = tmp_path / "docs" / "benchmarks.md"
    order = ["vit_b", "decoder"]
    update_docs(path, [Row("vit_b", "encoder", 5.0), Row("decoder", "one prompt", 0.02, at_most(0.02, 0.05))],
                MACHINE, order)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n") and "Test CPU, 2 cores" in text and "2024-01-01" in text
    assert "| vit_b | encoder | 5.00 s |" in text and "| decoder | one prompt | 20.0 ms | <= 50.0 ms | pass |" in text

    path.write_text(text + "\n## Written by another tool\nkeep me\n")
    update_docs(path, [Row("decoder", "one prompt", 0.08, at_most(0.08, 0.05))], MACHINE, order)
    text = path.read_text()
    assert "| vit_b | encoder | 5.00 s |" in text  # not re-run: kept
    assert "20.0 ms" not in text and "| 80.0 ms | <= 50.0 ms | FAIL |" in text
    assert text.index("vit_b | encoder") < text.index("decoder | one prompt")
    assert text.count(SECTION_START) == 1 and text.endswith("## Written by another tool\nkeep me\n")


def test_inputs_and_cli():
    image = photo()
    assert image.shape == (480, 640, 3) and image.dtype.name == "uint8" and image.std() > 10
    coords, labels = point_batch(64, 640, 480)
    assert coords.shape == (64, 1, 2) and labels.shape == (64, 1)
    assert (coords[..., 0] > 0).all() and (coords[..., 0] < 640).all() and (coords[..., 1] < 480).all()
    assert len({tuple(c) for c in coords[:, 0]}) == 64
    args = parse_args(["--only", "vit_t", "--only", "decoder", "--quick"])
    assert args.only == ["vit_t", "decoder"] and args.quick
    assert set(CASES) == {"vit_b", "vit_t", "decoder", "everything", "lite"}
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])


def test_one_planned_stroke_covers_a_branched_error_region():
    """The simulated person's stroke scribbles over the whole of a branching error (a T of bars) in
    one drag: the brush along the returned path paints most of it (a stroke that stopped at the first
    branch painted 41%)."""
    from benchmarks.app_session import plan_stroke
    from zeroseg.engine.masks import stroke_mask

    gt = np.zeros((60, 60), dtype=bool)
    gt[10:16, 5:55] = True  # the bar of the T
    gt[16:50, 27:33] = True  # its stem
    gt[20:26, 33:50] = True  # and a side branch
    mode, points, radius = plan_stroke(np.zeros_like(gt), gt)
    assert mode == "add"
    painted = stroke_mask(points, radius, *gt.shape)
    assert (painted & gt).sum() / gt.sum() > 0.8
    assert (painted & ~gt).sum() < 0.02 * gt.sum()
    assert all(max(abs(a - c), abs(b - d)) > 0 for (a, b), (c, d) in zip(points, points[1:]))
