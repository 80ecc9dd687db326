"""The app's class list (issue 18): /api/classes, renames and merges that relabel, the vocabulary view."""
from __future__ import annotations

import pytest
from test_server import client, lite, make_client, root, square_id, store, truth  # noqa: F401  (fixtures)

from zeroseg.engine import NewAnnotation


def add(client, name, **fields):
    response = client.post("/api/classes", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def label(store, client, *labels):
    image_id = square_id(client)
    return [store.add_annotation(NewAnnotation(image_id, truth(), label=text)) for text in labels]


def test_classes_are_the_vocabulary(client):
    listed = client.get("/api/classes").json()
    assert [c["name"] for c in listed] == ["floor", "square", "sky"]  # the app's --names became classes
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 and c["key"] is None for c in listed)
    assert len({c["color"] for c in listed}) == 3 and all(c["count"] == 0 for c in listed)
    dog = add(client, "dog", key="d", color="#AABBCC", description="any dog")
    assert (dog["key"], dog["color"], dog["description"], dog["count"]) == ("d", "#aabbcc", "any dog", 0)
    assert client.get("/api/vocabulary").json()["names"] == ["floor", "square", "sky", "dog"]
    assert client.get("/api/info").json()["vocabulary"][-1] == "dog"
    assert client.app.state.zeroseg.suggester.vocabulary[-1] == "dog"  # names come from the classes

    taken = client.post("/api/classes", json={"name": "dog"})
    assert taken.status_code == 409 and "dog" in taken.json()["detail"]
    key_taken = client.post("/api/classes", json={"name": "cat", "key": "d"})
    assert key_taken.status_code == 409 and "key 'd'" in key_taken.json()["detail"]
    for bad in ({"name": ""}, {"name": "cat", "color": "red"}, {"name": "cat", "key": "ab"}, {"name": "x", "y": 1}):
        assert client.post("/api/classes", json=bad).status_code == 422


def test_counts_rename_merge_delete(client, store):
    made = label(store, client, "square", "square", "floor")
    by_name = {c["name"]: c for c in client.get("/api/classes").json()}
    assert by_name["square"]["count"] == 2 and by_name["floor"]["count"] == 1

    renamed = client.patch(f"/api/classes/{by_name['square']['id']}", json={"name": "box", "key": "b"},
                           headers={"X-Author": "ann"})  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["key"], renamed.json()["count"]) == ("box", "b", 2)
    assert [store.get_annotation(a.id).label for a in made] == ["box", "box", "floor"]
    assert store.history(annotation_id=made[0].id)[-1].author == "ann"
    assert client.get("/api/vocabulary").json()["names"] == ["floor", "box", "sky"]
    assert client.patch(f"/api/classes/{by_name['floor']['id']}", json={"name": "box"}).status_code == 409
    cleared = client.patch(f"/api/classes/{by_name['square']['id']}", json={"key": None}).json()
    assert cleared["key"] is None and cleared["name"] == "box"

    merged = client.post(f"/api/classes/{by_name['floor']['id']}/merge", json={"into": by_name["square"]["id"]})
    assert merged.status_code == 200 and merged.json()["name"] == "box" and merged.json()["count"] == 3
    assert [c["name"] for c in client.get("/api/classes").json()] == ["box", "sky"]
    assert {store.get_annotation(a.id).label for a in made} == {"box"}
    undone = client.post(f"/api/images/{square_id(client)}/undo").json()  # the merge's relabel
    assert undone["annotation"]["label"] == "floor"

    gone = client.delete(f"/api/classes/{by_name['sky']['id']}")
    assert gone.status_code == 200 and gone.json()["name"] == "sky"
    assert client.delete(f"/api/classes/{by_name['sky']['id']}").status_code == 404
    assert client.post(f"/api/classes/{by_name['square']['id']}/merge", json={"into": 999}).status_code == 404
    client.delete(f"/api/classes/{by_name['square']['id']}")
    assert client.get("/api/classes").json() == []
    assert store.get_annotation(made[0].id).label == "box"  # annotations keep their label text


def test_vocabulary_put_keeps_colours_and_keys_of_kept_names(client):
    square = next(c for c in client.get("/api/classes").json() if c["name"] == "square")
    client.patch(f"/api/classes/{square['id']}", json={"key": "s", "color": "#123456"})
    assert client.put("/api/vocabulary", json={"names": ["cat", "square"]}).json()["names"] == ["cat", "square"]
    listed = client.get("/api/classes").json()
    assert [c["name"] for c in listed] == ["cat", "square"]
    assert (listed[1]["id"], listed[1]["key"], listed[1]["color"]) == (square["id"], "s", "#123456")


def test_classes_survive_a_restart(store, lite):
    first = make_client(store, lite)
    add(first, "cat", key="c")
    again = make_client(store, lite).get("/api/classes").json()
    assert [(c["name"], c["key"]) for c in again] == [("cat", "c")]


@pytest.mark.parametrize("path", ["/api/classes/999", "/api/classes/0"])
def test_unknown_classes(client, path):
    assert client.patch(path, json={"name": "x"}).status_code in (404, 422)
    assert client.delete(path).status_code in (404, 422)
