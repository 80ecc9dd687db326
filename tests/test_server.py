"""The web app's HTTP API through FastAPI's TestClient, on a synthetic dataset with the real lite model."""
from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib

import numpy as np
import pytest
import sqlalchemy as sa
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from zeroseg.engine import NewAnnotation, Source, Status, Store
from zeroseg.engine import export as exports
from zeroseg.io import rle_to_mask
from zeroseg.models.vl import DenseEmbedding
from zeroseg.server import create_app
from zeroseg.server.cli import is_local, open_dataset, serve

SQUARE = (slice(40, 100), slice(60, 120))  # rows, cols of the red square in square.png
HEIGHT, WIDTH = 160, 200
AXES = {"square": 0, "floor": 1, "sky": 2}


def scene() -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    image[SQUARE] = (220, 60, 60)
    return image


def truth() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[SQUARE] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


class AxisText:
    """Each name is one axis of a 3-d space."""

    name, dim = "axes", 3

    def encode(self, names):
        return torch.stack([F.one_hot(torch.tensor(AXES[n]), 3).float() for n in names])


class ColorEmbedder:
    """Red pixels embed as "square", all others as "floor"."""

    name = "colors"
    text_encoder = AxisText()

    def embed(self, image: np.ndarray) -> DenseEmbedding:
        red = torch.from_numpy((image[..., 0] > 150) & (image[..., 1] < 100))
        features = torch.stack([red.float(), (~red).float(), torch.zeros(red.shape)])
        return DenseEmbedding(features, image.shape[:2])

    def background(self):
        return None


@pytest.fixture(scope="module")
def lite():
    from zeroseg.hub import load_model

    model = load_model("lite")
    assert model.name == "lite"  # load_model records what it loaded
    return model


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(scene()).save(folder / "square.png")
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(folder / "plain.png")
    return folder


@pytest.fixture
def store(tmp_path, root):
    with Store.open(tmp_path / "db") as opened:
        opened.create_dataset("photos", root)
        opened.add_images("photos")
        yield opened


def make_client(store, lite, **options) -> TestClient:
    options.setdefault("embedder", ColorEmbedder())
    return TestClient(create_app(store, "photos", lite, **options))


@pytest.fixture
def client(store, lite):
    return make_client(store, lite, vocabulary=["floor", "square", "sky"])


def square_id(client) -> int:
    images = client.get("/api/images").json()["images"]
    return next(i["id"] for i in images if i["path"] == "square.png")


def click_square(client, image_id: int) -> list[dict]:
    response = client.post(f"/api/images/{image_id}/predict", json={"points": [[90, 70, 1]]})
    assert response.status_code == 200, response.text
    return response.json()["candidates"]


# --- images -----------------------------------------------------------------------------------
def test_info_and_image_list(client, root):
    info = client.get("/api/info").json()
    assert info["dataset"] == "photos" and info["model"] == "lite" and info["images"] == 2
    assert info["vocabulary"] == ["floor", "square", "sky"] and not info["token_required"]
    page = client.get("/api/images").json()
    assert page["total"] == 2 and [i["path"] for i in page["images"]] == ["plain.png", "square.png"]
    first = page["images"][1]
    assert (first["width"], first["height"], first["status"]) == (WIDTH, HEIGHT, "new")
    assert first["counts"] == {"proposed": 0, "accepted": 0, "rejected": 0}
    assert client.get("/api/images?offset=1&limit=1").json()["images"] == [first]
    assert client.get(f"/api/images/{first['id']}").json() == first
    served = client.get(f"/api/images/{first['id']}/file")
    assert served.status_code == 200 and served.content == (root / "square.png").read_bytes()


def test_unknown_ids_are_404_with_a_detail(client):
    for path in ("/api/images/999", "/api/images/999/file", "/api/annotations/999"):
        response = client.get(path)
        assert response.status_code == 404 and "999" in response.json()["detail"]
    assert client.post("/api/images/999/predict", json={"points": [[1, 1, 1]]}).status_code == 404


def test_images_of_other_datasets_are_not_served(client, store, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(scene()).save(other / "secret.png")
    store.create_dataset("other", other)
    (secret,) = store.add_images("other")
    assert client.get(f"/api/images/{secret.id}/file").status_code == 404


def test_scan_adds_new_files(client, root):
    Image.fromarray(scene()).save(root / "later.png")
    found = client.post("/api/images/scan").json()
    assert found["total"] == 3 and [i["path"] for i in found["images"]] == ["later.png"]
    assert client.post("/api/images/scan").json()["images"] == []


# --- prediction -------------------------------------------------------------------------------
def test_click_and_box_give_masks_around_the_object(client):
    image_id = square_id(client)
    embedded = client.post(f"/api/images/{image_id}/embed").json()
    assert embedded["image_id"] == image_id and embedded["seconds"] > 0
    candidates = click_square(client, image_id)
    assert len(candidates) == 3
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True)
    masks = [rle_to_mask(c["rle"]) for c in candidates]
    assert all(m.shape == (HEIGHT, WIDTH) for m in masks)
    assert all(c["area"] == m.sum() for c, m in zip(candidates, masks))
    assert max(iou(m, truth()) for m in masks) > 0.8
    assert masks[0][70, 90]  # the best mask holds the clicked point

    boxed = client.post(f"/api/images/{image_id}/predict", json={"box": [58, 38, 122, 102], "multimask": False})
    (box_candidate,) = boxed.json()["candidates"]
    assert iou(rle_to_mask(box_candidate["rle"]), truth()) > 0.7
    segmenter = client.app.state.zeroseg.segmenter  # each candidate is a Segment with its prompt and model
    clicked = segmenter.candidate(candidates[0]["id"], image_id).segment
    assert clicked.prompt == {"points": [[90.0, 70.0, 1.0]]} and clicked.predicted_iou == candidates[0]["score"]
    assert (clicked.source, clicked.model_name) == ("assisted", "lite") and clicked.rle == candidates[0]["rle"]
    boxed_segment = segmenter.candidate(box_candidate["id"], image_id).segment
    assert boxed_segment.prompt == {"box": [58.0, 38.0, 122.0, 102.0]}
    small = client.post(f"/api/images/{image_id}/predict", json={"box": [86, 66, 94, 74], "multimask": False})
    (small_candidate,) = small.json()["candidates"]  # under 1% of the photo: its centre is clicked too
    assert rle_to_mask(small_candidate["rle"])[70, 90]
    assert segmenter.candidate(small_candidate["id"], image_id).segment.prompt == {"box": [86.0, 66.0, 94.0, 74.0]}

    refined = client.post(
        f"/api/images/{image_id}/predict",
        json={"points": [[90, 70, 1], [20, 20, 0]], "mask_input": candidates[0]["id"], "multimask": False},
    )
    assert refined.status_code == 200 and len(refined.json()["candidates"]) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),  # no prompt
        ({"points": [[500, 10, 1]]}, 422),  # outside the image
        ({"points": [[10, 10, 2]]}, 422),  # bad label
        ({"box": [50, 50, 10, 10]}, 422),  # inverted box
        ({"points": [[10, 10, 1]], "mask_input": "c999999"}, 404),  # unknown candidate
        ({"points": [[10, 10, 1]], "extra": 1}, 422),
    ],
)
def test_bad_prompts_are_refused(client, body, status):
    response = client.post(f"/api/images/{square_id(client)}/predict", json=body)
    assert response.status_code == status and response.json()["detail"]


# --- annotations ------------------------------------------------------------------------------
def test_accept_name_delete_undo(client, store):
    image_id = square_id(client)
    best = click_square(client, image_id)[0]
    created = client.post(f"/api/images/{image_id}/annotations", json={"candidate": best["id"]})
    assert created.status_code == 201
    annotation = created.json()
    assert annotation["rle"] == best["rle"] and annotation["predicted_iou"] == pytest.approx(best["score"])
    provenance = (annotation["source"], annotation["status"], annotation["author"], annotation["model_name"])
    assert provenance == ("assisted", "accepted", "web", "lite")
    aid = annotation["id"]

    label = {"label": "square", "label_score": 0.9}
    named = client.patch(f"/api/annotations/{aid}", json=label, headers={"X-Author": "alice"})
    assert named.json()["label"] == "square" and named.json()["label_score"] == 0.9
    stored = store.get_annotation(aid)
    assert stored.label == "square" and stored.source is Source.ASSISTED
    assert store.history(annotation_id=aid)[-1].author == "alice"
    assert client.get(f"/api/images/{image_id}").json()["counts"]["accepted"] == 1

    assert client.delete(f"/api/annotations/{aid}").status_code == 200
    assert client.get(f"/api/images/{image_id}/annotations").json() == []
    assert client.patch(f"/api/annotations/{aid}", json={"label": "x"}).status_code == 422  # deleted

    undone = client.post(f"/api/images/{image_id}/undo").json()  # the delete
    assert undone["edit"]["action"] == "restore" and undone["annotation"]["label"] == "square"
    undone = client.post(f"/api/images/{image_id}/undo").json()  # the naming
    assert undone["annotation"]["label"] is None
    client.post(f"/api/images/{image_id}/undo")  # the create
    assert client.get(f"/api/images/{image_id}/annotations").json() == []
    assert client.post(f"/api/images/{image_id}/undo").json() == {"edit": None, "annotation": None, "annotations": []}


def test_edit_a_stored_mask_by_more_clicks(client):
    image_id = square_id(client)
    best = click_square(client, image_id)[0]
    aid = client.post(f"/api/images/{image_id}/annotations", json={"candidate": best["id"]}).json()["id"]
    edited = client.post(
        f"/api/images/{image_id}/predict", json={"points": [[110, 90, 1]], "annotation": aid, "multimask": False}
    )
    (candidate,) = edited.json()["candidates"]
    assert rle_to_mask(candidate["rle"])[90, 110]
    updated = client.patch(f"/api/annotations/{aid}", json={"candidate": candidate["id"]}).json()
    assert updated["rle"] == candidate["rle"] and updated["label"] is None


def test_manual_masks_and_mask_validation(client):
    image_id = square_id(client)
    rle = client.post(f"/api/images/{image_id}/predict", json={"points": [[90, 70, 1]]}).json()["candidates"][0]["rle"]
    manual = client.post(f"/api/images/{image_id}/annotations", json={"rle": rle, "label": "square"}).json()
    assert manual["source"] == "manual" and manual["model_name"] is None and manual["label"] == "square"
    wrong_size = {"size": [10, 10], "counts": "0R20"}
    assert client.post(f"/api/images/{image_id}/annotations", json={"rle": wrong_size}).status_code == 422
    assert client.post(f"/api/images/{image_id}/annotations", json={}).status_code == 422


# --- names ------------------------------------------------------------------------------------
def test_name_suggestions_from_the_vocabulary(client):
    image_id = square_id(client)
    candidates = click_square(client, image_id)
    best = max(candidates, key=lambda c: iou(rle_to_mask(c["rle"]), truth()))
    by_candidate = client.get(f"/api/names?image={image_id}&mask={best['id']}&k=2").json()
    assert by_candidate["best"] == "square"
    assert [s["name"] for s in by_candidate["suggestions"]] == ["square", "floor"]
    assert by_candidate["suggestions"][0]["score"] > 0.9

    aid = client.post(f"/api/images/{image_id}/annotations", json={"candidate": best["id"]}).json()["id"]
    by_annotation = client.get(f"/api/names?image={image_id}&mask={aid}").json()
    assert by_annotation["best"] == "square" and len(by_annotation["suggestions"]) == 3

    assert client.put("/api/vocabulary", json={"names": [" sky ", "floor", "sky", ""]}).json() == {"names": ["sky", "floor"]}
    assert client.get("/api/vocabulary").json()["names"] == ["sky", "floor"]
    renamed = client.get(f"/api/names?image={image_id}&mask={aid}").json()
    assert sorted(s["name"] for s in renamed["suggestions"]) == ["floor", "sky"]  # the new vocabulary, only

    client.put("/api/vocabulary", json={"names": []})
    assert client.get(f"/api/names?image={image_id}&mask={aid}").status_code == 422
    assert client.get(f"/api/names?image={image_id}&mask=c999999").status_code == 404


# --- files ------------------------------------------------------------------------------------
def forge_path(store: Store, image_id: int, path: str) -> None:
    """Write a path into the database directly, as a tampered or foreign database could hold it."""
    engine = sa.create_engine(store.url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE images SET path = :path WHERE id = :id"), {"path": path, "id": image_id})
    engine.dispose()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_paths_outside_the_root_are_refused(client, store, root, tmp_path, kind):
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(scene()))
    image_id = square_id(client)
    if kind == "dotdot":
        forge_path(store, image_id, "../outside.png")
    elif kind == "absolute":
        forge_path(store, image_id, str(outside))
    else:
        (root / "square.png").unlink()
        (root / "square.png").symlink_to(outside)
    for response in (
        client.get(f"/api/images/{image_id}/file"),
        client.post(f"/api/images/{image_id}/embed"),
        client.post(f"/api/images/{image_id}/predict", json={"points": [[5, 5, 1]]}),
    ):
        assert response.status_code == 403, response.text
        assert "outside" in response.json()["detail"] or "not a path inside" in response.json()["detail"]


def test_uploads_stay_inside_the_root(client, root):
    for name in ("../../evil.png", "/tmp/evil.png", "..\\..\\evil.png"):
        response = client.post("/api/images", files={"file": (name, png_bytes(scene()[::-1].copy()), "image/png")})
        assert response.status_code == 201, response.text
        assert response.json()["path"] == "uploads/evil.png"
    assert (root / "uploads" / "evil.png").is_file()
    assert not (root.parent / "evil.png").exists()
    other = client.post("/api/images", files={"file": ("evil.png", png_bytes(scene()), "image/png")}).json()
    assert other["path"] == "uploads/evil-1.png" and (other["width"], other["height"]) == (WIDTH, HEIGHT)
    assert client.get("/api/images").json()["total"] == 4


def test_bad_uploads_are_refused(store, lite, root):
    client = make_client(store, lite, max_upload_bytes=20_000)
    gif = io.BytesIO()
    Image.fromarray(scene()).save(gif, format="GIF")
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    cases = [
        (b"not an image at all", 422),
        (png_bytes(scene())[:200], 422),  # truncated
        (gif.getvalue(), 422),  # a type we do not take
        (png_bytes(noise), 413),  # over the limit
    ]
    for data, status in cases:
        response = client.post("/api/images", files={"file": ("x.png", data, "image/png")})
        assert response.status_code == status, (status, response.text)
    huge = client.post("/api/images", files={"file": ("x.png", b"\0" * 200_000, "image/png")})
    assert huge.status_code == 413  # refused by the body limit before parsing
    assert client.get("/api/images").json()["total"] == 2
    assert not (root / "uploads").exists() or not any((root / "uploads").iterdir())


# --- token and OpenAPI ------------------------------------------------------------------------
def test_token_is_required_when_set(store, lite):
    client = make_client(store, lite, token="s3cret")
    assert client.get("/api/info").status_code == 401
    assert client.get("/api/images/1/file").status_code == 401
    assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/info", headers={"Authorization": "Bearer s3cret"}).json()["token_required"]
    assert client.get("/api/info?token=s3cret").status_code == 200
    assert client.post("/api/images/1/embed?token=nope").status_code == 401
    assert client.get("/").status_code == 200  # the page itself asks for the token
    schema = client.get("/openapi.json").json()
    assert "bearer" in schema["components"]["securitySchemes"]
    assert schema["paths"]["/api/info"]["get"]["security"]


EXPECTED_ENDPOINTS = {
    ("get", "/api/info"),
    ("get", "/api/images"),
    ("post", "/api/images"),
    ("post", "/api/images/scan"),
    ("get", "/api/images/{image_id}"),
    ("get", "/api/images/{image_id}/file"),
    ("put", "/api/images/{image_id}/status"),
    ("post", "/api/images/{image_id}/embed"),
    ("post", "/api/images/{image_id}/predict"),
    ("get", "/api/images/{image_id}/annotations"),
    ("post", "/api/images/{image_id}/annotations"),
    ("post", "/api/images/{image_id}/undo"),
    ("post", "/api/images/{image_id}/propose"),
    ("get", "/api/annotations/{annotation_id}"),
    ("patch", "/api/annotations/{annotation_id}"),
    ("delete", "/api/annotations/{annotation_id}"),
    ("get", "/api/names"),
    ("get", "/api/vocabulary"),
    ("put", "/api/vocabulary"),
    ("get", "/api/export"),
    ("post", "/api/import"),
    ("get", "/api/classes"),
    ("post", "/api/classes"),
    ("patch", "/api/classes/{class_id}"),
    ("delete", "/api/classes/{class_id}"),
    ("post", "/api/classes/{class_id}/merge"),
    ("get", "/api/annotations/{annotation_id}/polygons"),
    ("post", "/api/annotations/{annotation_id}/paint"),
    ("post", "/api/annotations/{annotation_id}/split"),
    ("post", "/api/annotations/merge"),
    ("put", "/api/images/{image_id}/order"),
    ("post", "/api/annotations/{annotation_id}/review"),
    ("get", "/api/progress"),
    ("post", "/api/images/{image_id}/proposals/accept"),
    ("post", "/api/images/{image_id}/concept"),
}


def test_openapi_lists_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    listed = {(method, path) for path, operations in schema["paths"].items() for method in operations}
    assert listed == EXPECTED_ENDPOINTS
    predict = schema["paths"]["/api/images/{image_id}/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictIn")
    assert "CandidateOut" in schema["components"]["schemas"]
    page = client.get("/")
    assert page.status_code == 200 and "app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


# --- semi-automatic ---------------------------------------------------------------------------
def test_propose_uses_the_apps_model_and_namer(client, monkeypatch):
    """No second copy of the model is loaded, and names come from the app's namer."""
    import zeroseg.hub

    def no_second_model(*args, **kwargs):
        raise AssertionError("propose loaded a model of its own")

    monkeypatch.setattr(zeroseg.hub, "load_model", no_second_model)
    image_id = square_id(client)
    response = client.post(f"/api/images/{image_id}/propose", json={"min_score": 0.0, "name": True})
    assert response.status_code == 200, response.text
    proposed = response.json()["proposals"]
    assert proposed and all(p["model_name"] == "lite" for p in proposed)
    assert {p["label"] for p in proposed} <= {"floor", "square", "sky", None}
    assert any(p["label"] == "square" for p in proposed)  # the app's colour namer, not the lite head


def test_propose_then_accept_and_reject(client, store):
    image_id = square_id(client)
    response = client.post(f"/api/images/{image_id}/propose", json={"min_score": 0.0, "name": False})
    assert response.status_code == 200, response.text
    proposed = response.json()["proposals"]
    assert proposed and all(p["status"] == "proposed" and p["source"] == "auto" for p in proposed)
    again = client.post(f"/api/images/{image_id}/propose", json={"min_score": 0.0}).json()["proposals"]
    assert [p["id"] for p in again] == [p["id"] for p in proposed]  # pending ones are not made twice

    first = proposed[0]["id"]
    assert client.patch(f"/api/annotations/{first}", json={"status": "accepted"}).json()["status"] == "accepted"
    if len(proposed) > 1:
        client.patch(f"/api/annotations/{proposed[1]['id']}", json={"status": "rejected"})
    counts = client.get(f"/api/images/{image_id}").json()["counts"]
    assert counts["accepted"] == 1 and counts["proposed"] == max(len(proposed) - 2, 0)
    assert store.get_annotation(first).status is Status.ACCEPTED
    reviewed = client.put(f"/api/images/{image_id}/status", json={"status": "reviewed"}).json()
    assert reviewed["status"] == "reviewed"


# --- command line -----------------------------------------------------------------------------
def test_serve_refuses_a_public_host_without_token(root, tmp_path):
    import typer

    app = typer.Typer()
    app.command()(serve)
    result = CliRunner().invoke(app, [str(root), "--host", "0.0.0.0", "--db", str(tmp_path / "db")])
    assert result.exit_code == 2 and "--token" in result.output
    assert not (tmp_path / "db").exists()  # nothing opened
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1") and is_local("127.0.0.2")
    assert not is_local("0.0.0.0") and not is_local("192.168.1.5") and not is_local("example.org")


def test_open_dataset_creates_once(root, tmp_path):
    with Store.open(tmp_path / "fresh") as store:
        name = open_dataset(store, root)
        assert name == "photos" and len(store.images(name)) == 2
        assert open_dataset(store, root) == "photos" and len(store.datasets()) == 1
        other = tmp_path / "more" / "photos"
        other.mkdir(parents=True)
        assert open_dataset(store, other) == "photos-2"


# --- issue 14: export and import from the app -------------------------------------------------
def annotate(store: Store) -> dict[str, list]:
    """Two accepted masks (and one proposal) on square.png, stored directly."""
    (image,) = [i for i in store.images("photos") if i.path == "square.png"]
    floor = ~truth()
    added = store.add_annotations(
        [
            NewAnnotation(image.id, truth(), label="square"),
            NewAnnotation(image.id, floor, label="floor"),
            NewAnnotation(image.id, truth(), label="maybe", status=Status.PROPOSED),
        ]
    )
    return {"image": image, "annotations": added}


def test_the_app_exports_what_the_engine_exports(client, store, tmp_path, monkeypatch):
    annotate(store)
    calls = []
    engine_export = exports.export
    monkeypatch.setattr(exports, "export", lambda *a, **k: calls.append(a[3]) or engine_export(*a, **k))

    response = client.get("/api/export")  # COCO with RLE masks, accepted ones
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert "photos-coco.json" in response.headers["content-disposition"]
    served = response.json()
    by_cli = json.loads(exports.export_coco(store, "photos", tmp_path / "cli.json").read_text())
    for key in ("images", "annotations", "categories"):
        assert served[key] == by_cli[key]
    assert sorted(a["segmentation"]["counts"] for a in served["annotations"]) == sorted(
        a.rle["counts"] for _, anns in store.iter_annotated("photos") for a in anns
    )
    polygons = client.get("/api/export?format=coco-polygons&status=all").json()
    assert [type(a["segmentation"]) for a in polygons["annotations"]] == [list, list, list]

    yolo = zipfile.ZipFile(io.BytesIO(client.get("/api/export?format=yolo").content))
    files = sorted(n for n in yolo.namelist() if not n.endswith("/"))
    assert files == ["classes.txt", "labels/plain.txt", "labels/square.txt"]
    assert yolo.read("classes.txt").decode().split() == ["floor", "square"]
    assert len(yolo.read("labels/square.txt").decode().splitlines()) == 2
    png = client.get("/api/export?format=png")
    assert png.headers["content-type"] == "application/zip"
    masks = zipfile.ZipFile(io.BytesIO(png.content))
    semantic = np.array(Image.open(io.BytesIO(masks.read("semantic/square.png"))))
    assert semantic.shape == (HEIGHT, WIDTH) and np.array_equal(semantic == 2, truth())  # 1 floor, 2 square
    assert calls == ["coco", "coco-polygons", "yolo", "png"]  # the engine's exporter, every time

    assert client.get("/api/export?format=pdf").status_code == 422
    assert client.get("/api/export?status=maybe").status_code == 422


def test_the_app_imports_coco_once(client, store, tmp_path):
    made = annotate(store)
    exported = exports.export_coco(store, "photos", tmp_path / "labels.json", status=None).read_bytes()
    upload = lambda data, **params: client.post(  # noqa: E731
        "/api/import", params=params, files={"file": ("labels.json", data, "application/json")},
        headers={"X-Author": "importer"},
    )  # fmt: skip
    count = lambda: len(store.annotations_for(made["image"].id))  # noqa: E731
    assert upload(exported).json() == {"added": 0, "skipped": 3, "images": 2}  # all there already
    assert count() == 3

    store.delete_annotation(made["annotations"][1].id)  # the floor mask is gone: the import brings it back
    again = upload(exported, status="proposed")
    assert again.status_code == 200 and again.json() == {"added": 1, "skipped": 2, "images": 2}
    (back,) = [a for a in store.annotations_for(made["image"].id) if a.label == "floor"]
    assert (back.status, back.source, back.author) == (Status.PROPOSED, Source.MANUAL, "importer")
    assert upload(exported).json()["added"] == 0 and count() == 3

    assert upload(b"{not json").status_code == 422
    bad = json.loads(exported)
    bad["images"][0]["file_name"] = "missing.png"
    refused = upload(json.dumps(bad).encode())
    assert refused.status_code == 422 and "labels.json" in refused.json()["detail"]
    assert upload(exported, status="rejected").status_code == 422
    assert count() == 3


# --- issue 14: the vocabulary is saved with the dataset ---------------------------------------
def test_vocabulary_survives_a_restart(store, lite):
    first = make_client(store, lite)
    assert first.get("/api/vocabulary").json()["names"] == []
    assert first.put("/api/vocabulary", json={"names": ["cat", " dog ", "cat"]}).json()["names"] == ["cat", "dog"]
    assert make_client(store, lite).get("/api/vocabulary").json()["names"] == ["cat", "dog"]  # a new app
    with Store(store.url) as reopened:  # a new process
        assert reopened.get_dataset("photos").vocabulary == ["cat", "dog"]
        assert make_client(reopened, lite).get("/api/info").json()["vocabulary"] == ["cat", "dog"]
    given = make_client(store, lite, vocabulary="sky, floor")  # `serve --names` replaces and saves
    assert given.get("/api/vocabulary").json()["names"] == ["sky", "floor"]
    assert make_client(store, lite).get("/api/vocabulary").json()["names"] == ["sky", "floor"]


# --- issue 14: bad input is a 4xx, never a 500 --------------------------------------------------
def raw_json(text: str) -> dict:
    return {"content": text, "headers": {"Content-Type": "application/json"}}


@pytest.mark.parametrize(
    ("method", "path", "body", "words"),
    [
        ("post", "/api/images/{image}/predict", '{"points": [[NaN, 10, 1]]}', "finite"),
        ("post", "/api/images/{image}/predict", '{"points": [[10, Infinity, 1]]}', "finite"),
        ("post", "/api/images/{image}/predict", '{"box": [0, 0, -Infinity, 10]}', "finite"),
        ("post", "/api/images/{image}/predict", '{"points": [[10, 10, 1]], "annotation": 1180591620717411303424}',
         "annotation"),
        ("post", "/api/images/{image}/annotations", '{"rle": {"size": [1, 1], "counts": "01"}, "label_score": NaN}',
         "finite"),
        ("post", "/api/images/{image}/propose", '{"min_score": NaN}', "finite"),
        ("get", "/api/images/1180591620717411303424", None, "image_id"),
        ("get", "/api/images/9223372036854775808/file", None, "image_id"),
        ("get", "/api/images/-1", None, "image_id"),
        ("post", "/api/images/0/embed", None, "image_id"),
        ("get", "/api/annotations/1180591620717411303424", None, "annotation_id"),
        ("patch", "/api/annotations/-5", '{"label": "x"}', "annotation_id"),
        ("delete", "/api/annotations/1180591620717411303424", None, "annotation_id"),
        ("post", "/api/images/1180591620717411303424/undo", None, "image_id"),
        ("get", "/api/names?image=1180591620717411303424&mask=c1", None, "image"),
        ("get", "/api/names?image={image}&mask=1180591620717411303424", None, "1180591620717411303424"),
        ("get", "/api/images?offset=1180591620717411303424", None, "offset"),
        ("post", "/api/images/{image}/predict", '{"box": [10, 10, 10, 10]}', "no area"),
        ("post", "/api/images/{image}/predict", '{"box": [10, 10, 50, 10]}', "no area"),
    ],
)  # fmt: skip
def test_bad_json_and_ids_are_4xx_with_a_message(store, lite, method, path, body, words):
    client = TestClient(create_app(store, "photos", lite, embedder=ColorEmbedder()), raise_server_exceptions=False)
    image_id = square_id(client)
    response = client.request(method.upper(), path.format(image=image_id), **(raw_json(body) if body else {}))
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail


# --- issue 14: decompression bombs and symlinks out of the folder -------------------------------
def png_declaring(width: int, height: int) -> bytes:
    """A tiny 1-bit PNG whose header declares width x height pixels (its data is a few zero rows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_too_large_not_unreadable(client, root):
    bomb = png_declaring(30000, 30000)
    assert len(bomb) < 200
    response = client.post("/api/images", files={"file": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 413, response.text
    assert "too large" in response.json()["detail"]
    assert client.get("/api/images").json()["total"] == 2
    assert not (root / "uploads").exists() or not any((root / "uploads").iterdir())


def test_symlinks_out_of_the_folder_are_not_listed(client, root, tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(scene()))
    (root / "escape.png").symlink_to(outside)
    (root / "inside.png").symlink_to(root / "square.png")  # a link within the folder is an image of it
    found = client.post("/api/images/scan").json()
    assert [i["path"] for i in found["images"]] == ["inside.png"]
    listed = [i["path"] for i in client.get("/api/images").json()["images"]]
    assert listed == ["plain.png", "square.png", "inside.png"]


# --- issue 14: /docs works offline --------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_use_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", html), "the page loads something from another site"
    urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url
