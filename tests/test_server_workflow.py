"""Review, image filters, progress and several people with their own tokens (issue 18)."""
from __future__ import annotations

import pytest
import typer
from test_server import client, lite, make_client, root, square_id, store, truth  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from zeroseg.engine import NewAnnotation, Source, Status
from zeroseg.server.cli import parse_tokens, serve


def ids(client, **params) -> list[str]:
    response = client.get("/api/images", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["images"])
    return [i["path"] for i in page["images"]]


def test_review_with_a_comment(client, store):
    image_id = square_id(client)
    aid = store.add_annotation(NewAnnotation(image_id, truth(), label="square", status=Status.PROPOSED)).id
    done = client.post(f"/api/annotations/{aid}/review", json={"verdict": "rejected", "comment": "too loose"},
                       headers={"X-Author": "rita"})  # fmt: skip
    assert done.status_code == 200, done.text
    out = done.json()
    assert (out["status"], out["reviewer"], out["comment"]) == ("rejected", "rita", "too loose")
    assert out["author"] is None  # the mask's author stays; the reviewer is recorded beside it
    accepted = client.post(f"/api/annotations/{aid}/review", json={"verdict": "accepted"}).json()
    assert (accepted["status"], accepted["reviewer"], accepted["comment"]) == ("accepted", "web", None)
    client.post(f"/api/images/{image_id}/undo")
    assert client.get(f"/api/annotations/{aid}").json()["comment"] == "too loose"
    assert client.post(f"/api/annotations/{aid}/review", json={"verdict": "maybe"}).status_code == 422
    for status in ("annotated", "reviewed", "rejected", "in_progress", "new"):
        assert client.put(f"/api/images/{image_id}/status", json={"status": status}).json()["status"] == status


def test_image_filters_and_progress(client, store):
    image_id = square_id(client)
    store.add_annotations(
        [NewAnnotation(image_id, truth(), label="square"), NewAnnotation(image_id, ~truth(), source=Source.AUTO,
                                                                          status=Status.PROPOSED)]
    )  # fmt: skip
    client.put(f"/api/images/{image_id}/status", json={"status": "annotated"})
    assert ids(client) == ["plain.png", "square.png"]
    assert ids(client, status="annotated") == ["square.png"]
    assert ids(client, status=["new", "annotated"]) == ["plain.png", "square.png"]
    assert ids(client, label="square") == ["square.png"] and ids(client, label="dog") == []
    assert ids(client, source="auto") == ["square.png"] and ids(client, source="manual") == ["square.png"]
    assert ids(client, source="assisted") == [] and ids(client, unlabelled="true") == ["square.png"]
    assert ids(client, q="plain") == ["plain.png"] and ids(client, q="SQUARE") == ["square.png"] and ids(client, q="%") == []
    assert client.get("/api/images", params={"status": "done"}).status_code == 422
    page = client.get("/api/images", params={"limit": 1, "offset": 1, "status": ["new", "annotated"]}).json()
    assert page["total"] == 2 and [i["path"] for i in page["images"]] == ["square.png"]

    progress = client.get("/api/progress").json()
    assert progress["total"] == 2 and progress["by_status"]["annotated"] == 1 and progress["by_status"]["new"] == 1
    assert set(progress["by_status"]) >= {"new", "in_progress", "annotated", "reviewed", "rejected"}
    assert progress["annotations"] == 1 and progress["by_label"] == {"square": 1}


def test_each_person_has_a_token_and_their_name_on_changes(store, lite):
    client = make_client(store, lite, token={"ann": "t-ann", "bob": "t-bob"})
    assert client.get("/api/info").status_code == 401
    as_ann = {"Authorization": "Bearer t-ann"}
    info = client.get("/api/info", headers=as_ann).json()
    assert info["author"] == "ann" and info["token_required"]
    assert client.get("/api/info?token=t-bob").json()["author"] == "bob"
    image_id = square_id(client.__class__(client.app, headers=as_ann))
    rle = {"polygons": [[10, 10, 30, 10, 30, 30, 10, 30]]}
    made = client.post(f"/api/images/{image_id}/annotations", json=rle, headers={**as_ann, "X-Author": "mallory"})
    assert made.json()["author"] == "ann"  # the token names the author, not the header
    reviewed = client.post(f"/api/annotations/{made.json()['id']}/review", json={"verdict": "accepted"},
                           headers={"Authorization": "Bearer t-bob"})  # fmt: skip
    assert reviewed.json()["reviewer"] == "bob"
    assert [e.author for e in store.history(annotation_id=made.json()["id"])] == ["ann", "bob"]
    single = make_client(store, lite, token="s3cret")  # one unnamed token: X-Author still names people
    assert single.get("/api/info", headers={"Authorization": "Bearer s3cret", "X-Author": "cy"}).json()["author"] == "cy"


def test_token_options():
    assert parse_tokens([]) is None and parse_tokens([], "plain") == "plain"
    assert parse_tokens(["solo"]) == "solo" and parse_tokens(["solo"], "ignored") == "solo"
    assert parse_tokens(["ann=t1", "bob=t2"]) == {"ann": "t1", "bob": "t2"}
    assert parse_tokens([], None, "ann=t1, bob=t2") == {"ann": "t1", "bob": "t2"}
    assert parse_tokens([], "a=b==") == "a=b=="  # ZEROSEG_TOKEN is one plain token as it is
    for given, env in (([ "ann=t1", "bob=t1"], None), (["ann=t1", "ann=t2"], None), (["=t1"], None),
                       (["ann="], None), (["a", "b"], None), (["plain", "ann=t1"], None), ([], "ann")):
        with pytest.raises(typer.BadParameter):
            parse_tokens(given, None, env)


def test_serve_accepts_named_tokens_on_a_public_host(root, tmp_path, monkeypatch):
    """The public-host check passes with named tokens (the server itself is not started)."""
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    app = typer.Typer()
    app.command()(serve)
    args = [str(root), "--host", "0.0.0.0", "--db", str(tmp_path / "db"), "--model", "lite"]
    result = CliRunner().invoke(app, [*args, "--token", "ann=t1", "--token", "bob=t2"])
    assert result.exit_code == 0, result.output
    assert started["app"].state.zeroseg.tokens == {"t1": "ann", "t2": "bob"}
    result = CliRunner().invoke(app, args, env={"ZEROSEG_TOKENS": "cy=t3"})
    assert result.exit_code == 0, result.output
    assert started["app"].state.zeroseg.tokens == {"t3": "cy"}
    result = CliRunner().invoke(app, args, env={"ZEROSEG_TOKEN": "s3cret"})
    assert result.exit_code == 0 and started["app"].state.zeroseg.token == "s3cret"


def test_review_sets_the_image_status_once_every_mask_is_judged(client, store):
    image_id = square_id(client)
    first, second = (store.add_annotation(NewAnnotation(image_id, truth(), label=name)).id for name in ("a", "b"))
    store.add_annotation(NewAnnotation(image_id, ~truth(), status=Status.PROPOSED))  # not a mask to review
    store.set_image_status(image_id, "annotated")
    review = lambda aid, verdict: client.post(f"/api/annotations/{aid}/review", json={"verdict": verdict}).json()
    assert review(first, "accepted")["image_status"] == "annotated"  # one mask still to judge
    done = review(second, "rejected")
    assert (done["status"], done["image_status"]) == ("rejected", "rejected")
    assert client.get(f"/api/images/{image_id}").json()["status"] == "rejected"
    assert review(second, "accepted")["image_status"] == "reviewed"  # judged again: every mask accepted
    assert client.get(f"/api/images/{image_id}").json()["status"] == "reviewed"
