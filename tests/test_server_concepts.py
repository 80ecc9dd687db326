"""Concept prompts in the app (issue 15 item 3): every instance of a class as proposals, with the
default lite model (zeroseg's text prompt through the app's namer) and a tiny random SAM 3."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_sam3_concepts import concepts, folder  # noqa: F401  (fixtures: a tiny random SAM 3)
from test_server import AXES, ColorEmbedder, client, iou, lite, root, square_id, store, truth  # noqa: F401

from zeroseg.io import rle_to_mask
from zeroseg.server import create_app
from fastapi.testclient import TestClient


def class_id(client, name) -> int:
    return next(c["id"] for c in client.get("/api/classes").json() if c["name"] == name)


def test_a_class_key_finds_the_square_with_the_lite_model(client, store):
    image_id = square_id(client)
    response = client.post(f"/api/images/{image_id}/concept", json={"class_id": class_id(client, "square")},
                           headers={"X-Author": "ann"})  # fmt: skip
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["image_id"] == image_id and out["seconds"] > 0
    (found, *_) = out["proposals"]
    assert found["label"] == "square" and found["status"] == "proposed" and found["source"] == "assisted"
    assert found["author"] == "ann" and found["model_name"] == "lite" and found["predicted_iou"] is not None
    assert iou(rle_to_mask(found["rle"]), truth()) > 0.8
    scores = [p["predicted_iou"] for p in out["proposals"]]
    assert scores == sorted(scores, reverse=True)
    again = client.post(f"/api/images/{image_id}/concept", json={"class_id": class_id(client, "square")}).json()
    assert again["proposals"] == []  # found already: not proposed twice

    texted = client.post(f"/api/images/{image_id}/concept", json={"text": "sky", "class_id": class_id(client, "floor")})
    assert texted.status_code == 200 and all(p["label"] == "floor" for p in texted.json()["proposals"])
    high = client.post(f"/api/images/{image_id}/concept", json={"text": "square", "min_score": 1.0}).json()
    assert high["proposals"] == []  # an empty result is not an error


def test_exemplars_need_a_concept_model(client):
    image_id = square_id(client)
    body = {"text": "square", "exemplars": [{"box": [60, 40, 120, 100], "positive": True}]}
    refused = client.post(f"/api/images/{image_id}/concept", json=body)
    assert refused.status_code == 400 and "concept model" in refused.json()["detail"] and "sam3" in refused.json()["detail"]
    assert client.post(f"/api/images/{image_id}/concept", json={}).status_code == 400
    assert client.post(f"/api/images/{image_id}/concept", json={"class_id": 999}).status_code == 404


class AnyNames(ColorEmbedder):
    """ColorEmbedder whose text side takes any name (names it does not know point at "sky")."""

    class text_encoder:  # noqa: N801
        name, dim = "any", 3

        @staticmethod
        def encode(names):
            return torch.stack([F.one_hot(torch.tensor(AXES.get(n, 2)), 3).float() for n in names])


def test_a_text_prompt_with_an_empty_class_list(store, lite):
    client = TestClient(create_app(store, "photos", lite, embedder=AnyNames()))
    assert client.get("/api/classes").json() == []
    response = client.post(f"/api/images/{square_id(client)}/concept", json={"text": "square"})
    assert response.status_code == 200, response.text


def test_sam3_finds_every_instance_of_a_class_and_of_exemplars(store, concepts):  # noqa: F811
    client = TestClient(create_app(store, "photos", concepts, vocabulary=["a cow"], embedder=ColorEmbedder()))
    image_id = square_id(client)
    from zeroseg.io import load_image

    pixels = load_image(client.app.state.zeroseg.file(client.app.state.zeroseg.image(image_id)))
    (expected,) = concepts.find(pixels, "a cow")
    expected_scores = sorted((float(s) for s, m in zip(expected.scores, expected.masks) if m.any()), reverse=True)
    out = client.post(f"/api/images/{image_id}/concept", json={"class_id": class_id(client, "a cow")}).json()
    assert expected_scores and [p["predicted_iou"] for p in out["proposals"]] == pytest.approx(expected_scores)
    assert all(p["label"] == "a cow" and p["status"] == "proposed" for p in out["proposals"])
    exemplar = {"exemplars": [{"box": [60, 40, 120, 100], "positive": True}], "min_score": 0.0}
    boxed = client.post(f"/api/images/{image_id}/concept", json=exemplar)
    assert boxed.status_code == 200, boxed.text
    assert all(p["label"] is None for p in boxed.json()["proposals"])
    clicked = client.post(f"/api/images/{image_id}/predict", json={"points": [[90, 70, 1]]})
    assert clicked.status_code == 400 and "concept model" in clicked.json()["detail"]
    assert np.isfinite(out["seconds"])


def test_sam3_proposes_every_instance_of_every_class(store, concepts):  # noqa: F811
    client = TestClient(create_app(store, "photos", concepts, embedder=ColorEmbedder()))
    image_id = square_id(client)
    assert client.post(f"/api/images/{image_id}/propose", json={}).status_code == 422  # no classes yet
    client.post("/api/classes", json={"name": "a cow"})
    out = client.post(f"/api/images/{image_id}/propose", json={"min_score": 0.0})
    assert out.status_code == 200, out.text
    proposals = out.json()["proposals"]
    assert proposals and all(p["label"] == "a cow" and p["source"] == "auto" for p in proposals)
