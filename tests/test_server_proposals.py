"""Proposals with their scores, accepted by a threshold or by id in one step (issue 18)."""
from __future__ import annotations

from test_server import client, lite, root, square_id, store, truth  # noqa: F401  (fixtures)

from zeroseg.engine import NewAnnotation, Source, Status


def propose(client) -> list[dict]:
    response = client.post(f"/api/images/{square_id(client)}/propose", json={"min_score": 0.0, "name": False})
    assert response.status_code == 200, response.text
    return response.json()["proposals"]


def test_proposals_carry_their_scores(client):
    proposals = propose(client)
    assert proposals
    for p in proposals:
        assert 0 <= p["predicted_iou"] <= 1.5 and p["stability_score"] is not None and p["source"] == "auto"


def test_accept_above_a_threshold_leaves_the_rest_pending(client, store):
    image_id = square_id(client)
    scores = [0.95, 0.6, 0.91]
    made = store.add_annotations(
        [NewAnnotation(image_id, truth(), predicted_iou=s, source=Source.AUTO, status=Status.PROPOSED) for s in scores]
    )
    accepted = client.post(f"/api/images/{image_id}/proposals/accept", json={"min_score": 0.9},
                           headers={"X-Author": "ann"})  # fmt: skip
    assert accepted.status_code == 200, accepted.text
    assert [a["predicted_iou"] for a in accepted.json()] == [0.95, 0.91]
    assert all(a["status"] == "accepted" for a in accepted.json())
    assert store.get_annotation(made[1].id).status is Status.PROPOSED  # below the bar: still pending
    assert store.history(annotation_id=made[0].id)[-1].author == "ann"
    client.post(f"/api/images/{image_id}/undo")  # one undo reverts the whole accept
    assert {store.get_annotation(m.id).status for m in made} == {Status.PROPOSED}

    by_id = client.post(f"/api/images/{image_id}/proposals/accept", json={"ids": [made[1].id]}).json()
    assert [a["id"] for a in by_id] == [made[1].id]
    assert client.post(f"/api/images/{image_id}/proposals/accept", json={"ids": [made[1].id]}).status_code == 404
    assert client.post(f"/api/images/{image_id}/proposals/accept", json={"min_score": 0.99}).json() == []
    assert client.post(f"/api/images/{image_id}/proposals/accept", json={"min_score": 2}).status_code == 422
