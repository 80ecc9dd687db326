"""The dataset's class list under ``/api/classes``: names, colours, keys and descriptions.

The class names are the app's vocabulary: name suggestions, proposals and text prompts choose from
them, and ``/api/vocabulary`` is a view of them. Renaming or merging a class relabels its
annotations in one transaction (each relabel an edit by the request's author).
"""
from __future__ import annotations

from fastapi import APIRouter

from zeroseg.engine import UNSET
from zeroseg.engine.store import ClassRecord
from zeroseg.server.schemas import ClassIn, ClassMergeIn, ClassOut, ClassPatch
from zeroseg.server.state import AppState, Author, ClassId, State
from zeroseg.errors import NotFoundError

router = APIRouter(prefix="/api", tags=["classes"])


def class_out(record: ClassRecord, counts: dict[str, int]) -> ClassOut:
    return ClassOut(
        id=record.id,
        name=record.name,
        color=record.color,
        key=record.key,
        description=record.description,
        count=counts.get(record.name, 0),
    )


def class_of(state: AppState, class_id: int) -> ClassRecord:
    """A class of this dataset (NotFoundError for classes of other datasets too)."""
    record = state.store.get_class(class_id)
    if record.dataset_id != state.dataset.id:
        raise NotFoundError(f"no class with id {class_id} in dataset {state.dataset.name!r}")
    return record


def _out(state: AppState, record: ClassRecord) -> ClassOut:
    return class_out(state.store.get_class(record.id), state.store.label_counts(state.dataset.name))


@router.get("/classes", response_model=list[ClassOut])
def list_classes(state: State) -> list[ClassOut]:
    """The class list in order, each with its number of live annotations."""
    counts = state.store.label_counts(state.dataset.name)
    return [class_out(c, counts) for c in state.store.classes(state.dataset.name)]


@router.post("/classes", response_model=ClassOut, status_code=201)
def create_class(state: State, body: ClassIn) -> ClassOut:
    """Append a class (409 if its name or key is taken)."""
    made = state.store.add_class(
        state.dataset.name, body.name, color=body.color, key=body.key, description=body.description
    )
    state.sync_vocabulary()
    return _out(state, made)


@router.patch("/classes/{class_id}", response_model=ClassOut)
def update_class(state: State, author: Author, class_id: ClassId, body: ClassPatch) -> ClassOut:
    """Change a class; a new name relabels its annotations in the same transaction."""
    current = class_of(state, class_id)
    given = body.model_fields_set
    pick = lambda name: getattr(body, name) if name in given else UNSET  # noqa: E731
    name = body.name if "name" in given and body.name is not None else UNSET
    color = body.color if "color" in given and body.color is not None else UNSET
    changed = state.store.update_class(
        current.id, author=author, name=name, color=color, key=pick("key"), description=pick("description")
    )
    state.sync_vocabulary()
    return _out(state, changed)


@router.post("/classes/{class_id}/merge", response_model=ClassOut)
def merge_class(state: State, author: Author, class_id: ClassId, body: ClassMergeIn) -> ClassOut:
    """Relabel the class's annotations with the other class's name and delete it (one transaction);
    returns the class merged into."""
    current, target = class_of(state, class_id), class_of(state, body.into)
    kept = state.store.merge_class(current.id, target.id, author=author)
    state.sync_vocabulary()
    return _out(state, kept)


@router.delete("/classes/{class_id}", response_model=ClassOut)
def delete_class(state: State, class_id: ClassId) -> ClassOut:
    """Remove a class from the list; its annotations keep their label text."""
    gone = state.store.delete_class(class_of(state, class_id).id)
    state.sync_vocabulary()
    return class_out(gone, state.store.label_counts(state.dataset.name))
