"""Where the store lives: `serve` and `zeroseg engine ...` use one rule, and reading creates nothing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from zeroseg import hub
from zeroseg.engine import NewAnnotation, Store, db
from zeroseg.engine.cli import app as engine_app
from zeroseg.errors import NotFoundError
from zeroseg.server.cli import serve


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A clean environment: no $ZEROSEG_DB, $ZEROSEG_HOME in tmp_path, tmp_path the working folder."""
    monkeypatch.delenv(db.DB_ENV, raising=False)
    monkeypatch.setenv(hub.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((20, 30, 3), 160, np.uint8)).save(folder / "b.png")
    return folder


@pytest.fixture
def cli(monkeypatch):
    """Runs `zeroseg serve ...` (without a server or a model) and `zeroseg engine ...`."""
    import uvicorn

    from zeroseg.cli import _Group
    from zeroseg.server.segmenter import Segmenter

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    monkeypatch.setattr(Segmenter, "load", lambda self: None)
    root = typer.Typer(cls=_Group, rich_markup_mode=None)
    root.command("serve")(serve)
    root.add_typer(engine_app, name="engine")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(root, list(args))
        assert result.exit_code == code, result.output
        return result.output

    run.served = served
    return run


def test_engine_commands_find_what_serve_made(cli, home, photos, tmp_path):
    out = cli("serve", str(photos))
    location = db.resolve_url()
    assert location == f"sqlite:///{home / db.DB_FILENAME}"
    assert f"database: {location}" in out and len(cli.served) == 1
    assert not (photos / db.DB_FILENAME).exists()  # the store is not written into the image folder

    with Store.open() as store:  # what the app annotates, as the engine commands see it
        (first, _) = store.images("photos")
        store.add_annotation(NewAnnotation(first.id, np.ones((first.height, first.width), bool), label="wall"))
    assert "photos: 2 image(s)" in cli("engine", "list")
    cli("engine", "export", "photos", str(tmp_path / "by-name.json"))
    cli("engine", "export", str(photos), str(tmp_path / "by-folder.json"))  # the folder serve was given
    for name in ("by-name.json", "by-folder.json"):
        coco = json.loads((tmp_path / name).read_text())
        assert len(coco["images"]) == 2 and [c["name"] for c in coco["categories"]] == ["wall"]

    again = cli("serve", str(photos))  # the same dataset again, not a new one
    assert "'photos' (2 images)" in again and f"database: {location}" in again
    assert cli("engine", "list").count("photos: ") == 1


def test_serve_prints_an_explicit_database(cli, home, photos, tmp_path):
    out = cli("serve", str(photos), "--db", str(tmp_path / "elsewhere"))
    assert f"database: sqlite:///{tmp_path / 'elsewhere' / db.DB_FILENAME}" in out
    assert "photos: 2 image(s)" in cli("engine", "list", "--db", str(tmp_path / "elsewhere"))


def test_reading_commands_create_no_database(cli, home, tmp_path):
    out = cli("engine", "list")
    assert "no datasets" in out and str(home / db.DB_FILENAME) in out
    error = cli("engine", "export", "street", str(tmp_path / "out.json"), code=NotFoundError.exit_code)
    assert "error: no database at" in error
    assert list(tmp_path.iterdir()) == []  # no database, no home folder, no output


def test_import_twice_adds_nothing_the_second_time(cli, home, photos, tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 20, 2, 20, 15, 2, 15]]},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[4, 4, 9, 4, 9, 9]]},
        ],
        "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "wedge"}],
    }
    path = photos / "labels.json"
    path.write_text(json.dumps(coco))
    assert "imported 2 mask(s) into photos (1 image(s))" in cli("engine", "import", str(path), "--dataset", "photos")
    second = cli("engine", "import", str(path), "--dataset", "photos")
    assert "imported 0 mask(s) into photos (1 image(s)); 2 were there already" in second
    with Store.open() as store:
        (image,) = store.images("photos")
        assert len(store.annotations_for(image.id)) == 2
