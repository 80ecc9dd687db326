"""Editing masks in the app (issue 18): polygons with holes, brush and eraser, merge, split, undo."""
from __future__ import annotations

import numpy as np
from test_server import HEIGHT, WIDTH, client, lite, root, square_id, store, truth  # noqa: F401  (fixtures)

from zeroseg.engine import NewAnnotation
from zeroseg.engine.masks import rings_to_mask
from zeroseg.io import rle_to_mask


def stored(store, client, mask, **fields) -> int:
    return store.add_annotation(NewAnnotation(square_id(client), mask, **fields)).id


def box(x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_polygons_round_trip_with_holes(client, store):
    ring = box(20, 20, 120, 120) & ~box(50, 50, 90, 90) | box(65, 65, 75, 75)  # a hole with an island in it
    aid = stored(store, client, ring)
    rings = client.get(f"/api/annotations/{aid}/polygons").json()["polygons"]
    assert len(rings) == 3 and np.array_equal(rings_to_mask(rings, HEIGHT, WIDTH), ring)

    moved = [[v + 10 if i % 2 == 0 else v for i, v in enumerate(r)] for r in rings]  # drag everything 10 px right
    patched = client.patch(f"/api/annotations/{aid}", json={"polygons": moved}, headers={"X-Author": "ann"})
    assert patched.status_code == 200, patched.text
    assert np.array_equal(rle_to_mask(patched.json()["rle"]), np.roll(ring, 10, axis=1))
    assert store.history(annotation_id=aid)[-1].author == "ann"
    client.post(f"/api/images/{square_id(client)}/undo")
    assert np.array_equal(store.get_annotation(aid).mask(), ring)

    square = [[10, 10, 30, 10, 30, 30, 10, 30]]
    made = client.post(f"/api/images/{square_id(client)}/annotations", json={"polygons": square, "label": "square"})
    assert made.status_code == 201 and made.json()["area"] == 400 and made.json()["source"] == "manual"
    both = {"polygons": square, "rle": patched.json()["rle"]}
    assert client.patch(f"/api/annotations/{aid}", json=both).status_code == 422
    assert client.patch(f"/api/annotations/{aid}", json={"polygons": [[1, 2, 3]]}).status_code == 422


def test_brush_and_eraser(client, store):
    aid = stored(store, client, truth())
    added = client.post(f"/api/annotations/{aid}/paint", json={"points": [[130, 70], [150, 70]], "radius": 3})
    assert added.status_code == 200, added.text
    mask = rle_to_mask(added.json()["rle"])
    assert mask[70, 140] and mask[70, 149] and not mask[60, 140] and mask[SQUARE_INSIDE]
    erased = client.post(
        f"/api/annotations/{aid}/paint", json={"points": [[90, 70]], "radius": 5, "mode": "erase"}
    ).json()
    mask = rle_to_mask(erased["rle"])
    assert not mask[70, 90] and mask[70, 140] and erased["area"] == mask.sum()
    image_id = square_id(client)
    client.post(f"/api/images/{image_id}/undo")
    client.post(f"/api/images/{image_id}/undo")
    assert np.array_equal(store.get_annotation(aid).mask(), truth())
    everything = {"points": [[0, 0], [WIDTH, HEIGHT]], "radius": 400, "mode": "erase"}
    assert client.post(f"/api/annotations/{aid}/paint", json=everything).status_code == 400
    for bad in ({"points": [], "radius": 3}, {"points": [[1, 1]], "radius": 0}, {"points": [[1, 1]], "radius": 3, "mode": "x"}):
        assert client.post(f"/api/annotations/{aid}/paint", json=bad).status_code == 422


SQUARE_INSIDE = (70, 90)


def test_merge_and_undo(client, store):
    left = stored(store, client, box(10, 10, 40, 40), label="cat")
    right = stored(store, client, box(50, 10, 80, 40), label="dog")
    merged = client.post("/api/annotations/merge", json={"ids": [left, right]}, headers={"X-Author": "bob"})
    assert merged.status_code == 201, merged.text
    out = merged.json()
    assert out["label"] == "cat" and out["area"] == 1800 and out["author"] == "bob"
    image_id = square_id(client)
    assert [a["id"] for a in client.get(f"/api/images/{image_id}/annotations").json()] == [out["id"]]
    undone = client.post(f"/api/images/{image_id}/undo").json()
    assert len(undone["annotations"]) == 3
    assert [a["id"] for a in client.get(f"/api/images/{image_id}/annotations").json()] == [left, right]
    assert client.post("/api/annotations/merge", json={"ids": [left]}).status_code == 422
    assert client.post("/api/annotations/merge", json={"ids": [left, left]}).status_code == 400
    assert client.post("/api/annotations/merge", json={"ids": [left, 999]}).status_code == 404


def test_split_by_a_stroke(client, store):
    aid = stored(store, client, box(10, 10, 110, 50), label="fence")
    cut = client.post(f"/api/annotations/{aid}/split", json={"points": [[60, 0], [60, 60]], "radius": 4})
    assert cut.status_code == 200, cut.text
    parts = cut.json()
    assert len(parts) == 2 and parts[0]["id"] == aid and {p["label"] for p in parts} == {"fence"}
    masks = [rle_to_mask(p["rle"]) for p in parts]
    assert not (masks[0] & masks[1]).any() and masks[0][30, 20] != masks[1][30, 20]
    assert sum(p["area"] for p in parts) == 100 * 40 - 8 * 40
    image_id = square_id(client)
    client.post(f"/api/images/{image_id}/undo")
    (back,) = client.get(f"/api/images/{image_id}/annotations").json()
    assert back["id"] == aid and back["area"] == 4000
    nowhere = client.post(f"/api/annotations/{aid}/split", json={"points": [[150, 150]], "radius": 3})
    assert nowhere.status_code == 400 and "piece" in nowhere.json()["detail"]


def test_editing_starts_the_image(client, store):
    image_id = square_id(client)
    assert client.get(f"/api/images/{image_id}").json()["status"] == "new"
    client.post(f"/api/images/{image_id}/annotations", json={"polygons": [[10, 10, 30, 10, 30, 30]]})
    assert client.get(f"/api/images/{image_id}").json()["status"] == "in_progress"


def test_layer_order_is_stored_and_undone(client, store):
    image_id = square_id(client)
    a, b, c = (stored(store, client, box(10 * i, 10, 10 * i + 30, 40)) for i in range(3))
    listed = lambda: {x["id"]: x["draw_order"] for x in client.get(f"/api/images/{image_id}/annotations").json()}
    assert listed() == {a: None, b: None, c: None}
    out = client.put(f"/api/images/{image_id}/order", json={"ids": [c, a]}, headers={"X-Author": "ann"})
    assert out.status_code == 200, out.text
    assert [(x["id"], x["draw_order"]) for x in out.json()] == [(c, 0), (a, 1), (b, None)]
    assert listed() == {a: 1, b: None, c: 0}
    assert {e.author for e in store.history(image_id=image_id) if e.action == "update"} == {"ann"}
    client.put(f"/api/images/{image_id}/order", json={"ids": [a, b, c]})
    assert listed() == {a: 0, b: 1, c: 2}
    client.post(f"/api/images/{image_id}/undo")  # one undo reverts the whole reorder
    assert listed() == {a: 1, b: None, c: 0}
    assert client.put(f"/api/images/{image_id}/order", json={"ids": [a, a]}).status_code == 400
    assert client.put(f"/api/images/{image_id}/order", json={"ids": [a, 10**6]}).status_code == 404
    client.delete(f"/api/annotations/{b}")
    assert client.put(f"/api/images/{image_id}/order", json={"ids": [b]}).status_code == 404
