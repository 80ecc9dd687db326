"""The zeroseg CLI end to end on the golden tiny SAM, and its one-line errors with exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from zeroseg import hub
from zeroseg.cli import app
from zeroseg.io import rle_area, rle_to_mask
from zeroseg.segment.record import Segment

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_sam(goldens_dir: Path) -> list[str]:
    """CLI options that build the golden tiny SAM."""
    config = goldens_dir / "sam" / "sam_tiny_config.json"
    return ["--config", str(config), "--checkpoint", str(goldens_dir / "sam" / "sam_tiny.pth")]


@pytest.fixture(scope="module")
def image(goldens_dir: Path) -> Path:
    return goldens_dir / "images" / "img_a.png"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty weight cache and no network."""
    import urllib.error
    import urllib.request

    home = tmp_path / "zeroseg_home"
    monkeypatch.setenv("ZEROSEG_HOME", str(home))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return home


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _no_partial_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def _check_mask_records(out: Path, result: dict, size: tuple[int, int]) -> None:
    for record in result["masks"]:
        mask = rle_to_mask(record["segmentation"])
        png = np.asarray(Image.open(out / record["file"])) > 0
        assert mask.shape == size
        np.testing.assert_array_equal(mask, png)
        assert record["area"] == rle_area(record["segmentation"]) == int(mask.sum())
        if record["area"]:
            ys, xs = np.nonzero(mask)
            assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


# --- segment ------------------------------------------------------------------------------
def test_segment_point_and_box(tmp_path: Path, tiny_sam: list[str], image: Path) -> None:
    out = tmp_path / "out"
    prompts = ["--point", "173.46,154.55", "--box", "61.95,56.2,289.1,252.9"]
    result = run("segment", image, *prompts, *tiny_sam, "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "result.json").read_text())
    assert data["size"] == {"height": 281, "width": 413}
    assert data["prompts"]["points"] == [[173.46, 154.55, 1.0]]
    assert data["prompts"]["boxes"] == [[61.95, 56.2, 289.1, 252.9]]
    assert data["prompts"]["multimask_output"] is False
    assert data["model"]["config"].endswith("sam_tiny_config.json") and data["model"]["name"] is None
    assert len(data["masks"]) == 1 and data["masks"][0]["file"] == "mask_0.png"
    assert isinstance(data["masks"][0]["score"], float)
    _check_mask_records(out, data, (281, 413))
    assert Image.open(out / "overlay.png").size == (413, 281)
    _no_partial_files(out)
    assert "mask_0.png" in result.stdout


def test_single_point_gives_three_candidates_best_first(tmp_path: Path, tiny_sam: list[str], image: Path) -> None:
    out = tmp_path / "out"
    assert run("segment", image, "-p", "173.46,154.55", *tiny_sam, "-o", out).exit_code == 0
    data = json.loads((out / "result.json").read_text())
    scores = [m["score"] for m in data["masks"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert data["prompts"]["multimask_output"] is True
    _check_mask_records(out, data, (281, 413))

    single = tmp_path / "single"
    assert run("segment", image, "-p", "173.46,154.55", "--single", *tiny_sam, "-o", single).exit_code == 0
    best = json.loads((single / "result.json").read_text())["masks"]
    assert len(best) == 1 and best[0]["score"] == pytest.approx(scores[0])
    assert best[0]["segmentation"] == data["masks"][0]["segmentation"]


def test_several_boxes_give_one_mask_each(tmp_path: Path, tiny_sam: list[str], image: Path) -> None:
    out = tmp_path / "out"
    boxes = ["61.95,56.2,289.1,252.9", "41.3,14.05,227.15,168.6", "200,100,400,280"]
    args = [a for b in boxes for a in ("--box", b)]
    result = run("segment", image, *args, "--point", "136.29,87.11,0", *tiny_sam, "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "result.json").read_text())
    assert [m["prompt"] for m in data["masks"]] == [0, 1, 2]
    assert data["prompts"]["points"] == [[136.29, 87.11, 0.0]]
    for mask, box in zip(data["masks"], boxes):  # each mask records its own prompt, as a Segment does
        assert mask["prompt_used"] == {"points": [[136.29, 87.11, 0.0]], "box": [float(v) for v in box.split(",")]}
        assert mask["predicted_iou"] == mask["score"] and mask["source"] == "assisted"
        segment = Segment.from_dict({**mask, "prompt": mask["prompt_used"]})
        assert segment.rle == mask["segmentation"] and segment.bbox == mask["bbox"]
    _check_mask_records(out, data, (281, 413))
    assert sorted(p.name for p in out.iterdir()) == [
        "mask_0.png", "mask_1.png", "mask_2.png", "overlay.png", "result.json"
    ]


# --- everything ---------------------------------------------------------------------------
def test_everything_writes_coco(tmp_path: Path, tiny_sam: list[str], goldens_dir: Path) -> None:
    from pycocotools.coco import COCO

    image = goldens_dir / "images" / "img_d.png"
    out = tmp_path / "out"
    result = run(
        "everything", image, "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
        *tiny_sam, "--out", out,
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "annotations.json").read_text())
    assert data["images"] == [{"id": 1, "file_name": "img_d.png", "path": str(image), "height": 157, "width": 203}]
    assert data["info"]["parameters"]["points_per_side"] == 4
    annotations = data["annotations"]
    assert 1 <= len(annotations) <= 4 * 4 * 3
    scores = [a["score"] for a in annotations]
    assert scores == sorted(scores, reverse=True)
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    for ann in annotations:
        mask = coco.annToMask(ann)
        assert mask.shape == (157, 203) and int(mask.sum()) == ann["area"]
        assert len(ann["bbox"]) == 4 and ann["category_id"] == 1
    assert Image.open(out / "overlay.png").size == (203, 157)
    _no_partial_files(out)


def test_everything_annotations_import_into_the_engine_with_their_scores(
    tmp_path: Path, tiny_sam: list[str], goldens_dir: Path
) -> None:
    from zeroseg.engine import Source, Store

    out = tmp_path / "out"
    result = run(
        "everything", goldens_dir / "images" / "img_d.png", "--points-per-side", "4", "--pred-iou-thresh", "0",
        "--stability-score-thresh", "0", *tiny_sam, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = json.loads((out / "annotations.json").read_text())["annotations"]
    db = tmp_path / "db"
    result = run("engine", "import", out / "annotations.json", "--dataset", "auto", "--root", goldens_dir / "images",
                 "--db", db)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"imported {len(written)} mask(s) into auto" in result.output
    with Store.open(db) as store:
        (image,) = store.images("auto")
        stored = store.annotations_for(image.id)
    assert len(stored) == len(written) >= 1
    for ann, record in zip(written, sorted(stored, key=lambda a: a.id)):
        assert record.rle == ann["segmentation"] and record.source == Source.AUTO and record.label is None
        assert (record.predicted_iou, record.stability_score) == (ann["score"], ann["stability_score"])
        assert (record.model_name, record.model_version) == (ann.get("model_name"), ann.get("model_version"))


# --- models -------------------------------------------------------------------------------
def test_models_list_shows_cache_state(cache: Path) -> None:
    result = run("models")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "not cached" in lines["mobile_sam"] and "sam_vit_h" in lines
    path = hub.cache_path("vit_t")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    lines = {line.split()[0]: line for line in run("models").stdout.splitlines() if line.strip()}
    assert " cached" in lines["mobile_sam"] and "not cached" not in lines["mobile_sam"]
    assert str(cache / "checkpoints") in run("models").stdout


def test_models_lists_every_kind_and_trained_versions_without_the_engine(cache: Path) -> None:
    """Segmenters, text encoders, dense embedders, files and a version made by `engine train`, by kind."""
    from zeroseg.models.lite.build import DEFAULT_HEAD_WEIGHTS

    weights = hub.trained_path("lite-toys-v1")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(DEFAULT_HEAD_WEIGHTS.read_bytes())
    sidecar = json.loads(DEFAULT_HEAD_WEIGHTS.with_suffix(".json").read_text())
    sidecar["training"]["engine"] = {"dataset": "toys", "objects": 3, "steps": 2, "base": "lite"}
    weights.with_suffix(".json").write_text(json.dumps(sidecar))
    code = (
        "import sys; from typer.testing import CliRunner; from zeroseg.cli import app\n"
        "result = CliRunner().invoke(app, ['models'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'zeroseg.engine.train' not in sys.modules\n"
        "print(result.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    kinds = {tuple(line.split()[:2]) for line in done.stdout.splitlines() if line.strip()}
    assert {("lite-toys-v1", "segmenter"), ("lite", "segmenter"), ("mobile_sam", "segmenter")} <= kinds
    assert {("minilm", "text_encoder"), ("clip", "text_encoder")} <= kinds
    assert {("lite", "dense_embedder"), ("maskclip", "dense_embedder"), ("groupvit", "dense_embedder")} <= kinds
    assert {("clip_vit_b16", "clip"), ("clip_vocab", "vocab"), ("groupvit_gcc_yfcc", "groupvit")} <= kinds
    line = next(line for line in done.stdout.splitlines() if line.startswith("lite-toys-v1"))
    assert "trained" in line and "'toys'" in line
    shown = run("models", "show", "lite-toys-v1")
    assert shown.exit_code == 0 and str(weights) in shown.stdout and f"pred_iou_thresh: {hub.LITE_PRESET.pred_iou_thresh}" in shown.stdout
    shown = run("models", "show", "lite", "--kind", "dense_embedder")
    assert "kind: dense_embedder" in shown.stdout and "preset:" not in shown.stdout


def test_models_download_offline_and_verify(cache: Path, tmp_path: Path) -> None:
    result = run("models", "download", "vit_t", "-q")
    assert result.exit_code == 32
    assert "network is unreachable" in result.stderr and "mobile_sam.pt" in result.stderr
    stranger = tmp_path / "weights.pth"
    stranger.write_bytes(b"not a model")
    result = run("models", "verify", stranger)
    assert result.exit_code == 33 and "matches no registered model" in result.stderr
    assert run("models", "verify", "vit_b").exit_code == 32


# --- errors -------------------------------------------------------------------------------
def _assert_one_line_error(result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_model(tmp_path: Path, image: Path) -> None:
    result = run("segment", image, "--point", "10,10", "--model", "sam_vit_bb", "--out", tmp_path)
    _assert_one_line_error(result, 31, "unknown model 'sam_vit_bb'", "did you mean 'sam_vit_b'")


def test_missing_image(tmp_path: Path) -> None:
    result = run("segment", tmp_path / "nope.jpg", "--point", "10,10", "--out", tmp_path / "out")
    _assert_one_line_error(result, 11, "image not found", "nope.jpg")
    assert not (tmp_path / "out").exists()


def test_point_outside_the_image(tmp_path: Path, image: Path) -> None:
    result = run("segment", image, "--point", "500,10", "--out", tmp_path)
    _assert_one_line_error(result, 22, "(500, 10) is outside the image", "width 413")


def test_inverted_box(tmp_path: Path, image: Path) -> None:
    result = run("segment", image, "--box", "200,100,50,150", "--out", tmp_path)
    _assert_one_line_error(result, 22, "inverted")


@pytest.mark.parametrize("box, zero", [("50,100,50,150", "width"), ("50,100,200,100", "height")])
def test_zero_area_box(tmp_path: Path, image: Path, box: str, zero: str) -> None:
    result = run("segment", image, "--box", "10,10,60,60", "--box", box, "--out", tmp_path / "out")
    _assert_one_line_error(result, 22, f"has no area (zero {zero})", "x0 < x1 and y0 < y1")
    assert not (tmp_path / "out").exists()  # refused before any model work or output


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["--point", "10"], 21, "--point expects X,Y"),
        (["--point", "10,10,2"], 22, "LABEL must be 1"),
        (["--point", "a,b"], 21, "must be numbers"),
        (["--box", "1,2,3"], 21, "--box expects"),
        ([], 21, "give at least one --point"),
    ],
)
def test_malformed_prompts(tmp_path: Path, image: Path, args: list[str], code: int, fragment: str) -> None:
    _assert_one_line_error(run("segment", image, *args, "--out", tmp_path), code, fragment)


def test_missing_weights_offline(tmp_path: Path, image: Path, cache: Path) -> None:
    out = tmp_path / "out"
    result = run("segment", image, "--point", "10,10", "--model", "vit_b", "--out", out)
    expected = hub.get("vit_b")
    dest = cache / "checkpoints" / expected.filename
    _assert_one_line_error(result, 32, expected.url, expected.sha256, str(dest), "zeroseg models download")
    assert list(out.iterdir()) == []  # nothing written


def test_config_without_checkpoint(tmp_path: Path, image: Path, goldens_dir: Path) -> None:
    config = goldens_dir / "sam" / "sam_tiny_config.json"
    _assert_one_line_error(
        run("everything", image, "--config", config, "--out", tmp_path), 35, "needs a checkpoint"
    )


def test_output_folder_is_a_file(tmp_path: Path, image: Path, cache: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("")
    result = run("segment", image, "-p", "10,10", "--out", blocker)
    _assert_one_line_error(result, 40, "cannot write")  # checked before the (missing) model is loaded


# --- help ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command", [[], ["segment"], ["everything"], ["models"], ["models", "download"], ["models", "verify"]]
)
def test_help_has_examples(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.stdout


def test_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zeroseg", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("zeroseg ")


def test_sub_commands_are_mounted() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "eval" in result.output and "train" in result.output
