"""What every endpoint shares: the :class:`AppState` (store, dataset, model, namer) and the
dependencies that hand it, the request's author and checked path ids to the routers."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam

from zeroseg.engine import AnnotationRecord, DatasetRecord, ImageRecord, ImageStatus, Store
from zeroseg.engine.masks import canonical_rle, rings_to_mask
from zeroseg.errors import NotFoundError, PromptValueError, ZerosegError
from zeroseg.server.files import resolve_inside
from zeroseg.server.names import NameSuggester
from zeroseg.server.schemas import MAX_ID, RLE, ImageOut
from zeroseg.server.segmenter import Segmenter

STARTED = frozenset({ImageStatus.NEW, ImageStatus.AUTO_DONE})
"""Image statuses that an edit in the app moves to in_progress."""


class BadEditError(ZerosegError, ValueError):
    """An edit that cannot be made as asked (a stroke that splits nothing, exemplars without a
    concept model): the request was understood but makes no sense here."""

    exit_code = 2
    http_status = 400


@dataclass
class AppState:
    """What the endpoints share: the store, the dataset, the model and the namer.

    ``tokens`` maps each access token to the name of its holder (who is then the author of every
    change made with it); ``token`` is the one unnamed token of a single-user server.
    """

    store: Store
    dataset: DatasetRecord
    segmenter: Segmenter
    suggester: NameSuggester
    author: str
    token: str | None
    max_upload_bytes: int
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.dataset.root.resolve()

    def image(self, image_id: int) -> ImageRecord:
        """An image of this dataset (NotFoundError for images of other datasets too)."""
        image = self.store.get_image(image_id)
        if image.dataset_id != self.dataset.id:
            raise NotFoundError(f"no image with id {image_id} in dataset {self.dataset.name!r}")
        return image

    def file(self, image: ImageRecord) -> Path:
        """The image's file, resolved and checked to lie inside the dataset root."""
        return resolve_inside(self.root, image.path)

    def annotation(self, annotation_id: int) -> AnnotationRecord:
        annotation = self.store.get_annotation(annotation_id)
        self.image(annotation.image_id)
        return annotation

    def summary(self, image: ImageRecord) -> ImageOut:
        return ImageOut.of(image, self.store.annotations_for(image.id))

    def mask_of(
        self, image: ImageRecord, candidate: str | None, rle: RLE | None, polygons: list[list[float]] | None = None
    ) -> tuple[dict, float | None]:
        """The mask named by a candidate id or given as RLE or rings (exactly one), and its predicted IoU."""
        if sum(given is not None for given in (candidate, rle, polygons)) != 1:
            raise PromptValueError("give exactly one of candidate, rle or polygons")
        if candidate is not None:
            found = self.segmenter.candidate(candidate, image.id)
            return found.rle, found.score
        if polygons is not None:
            return canonical_rle(rings_to_mask(polygons, image.height, image.width), image.height, image.width), None
        return canonical_rle(rle.model_dump(), image.height, image.width), None

    def started(self, image_id: int) -> None:
        """A person changed the image's masks: a new (or automatically done) image is now in progress."""
        if self.store.get_image(image_id).status in STARTED:
            self.store.set_image_status(image_id, ImageStatus.IN_PROGRESS)

    def sync_vocabulary(self) -> list[str]:
        """After the class list changed: the namer names from the class names."""
        self.dataset = self.store.get_dataset(self.dataset.name)
        return self.suggester.set_vocabulary(self.dataset.vocabulary)


def _state(request: Request) -> AppState:
    return request.app.state.zeroseg


def _author(
    request: Request,
    state: Annotated[AppState, Depends(_state)],
    x_author: Annotated[
        str | None, Header(max_length=100, description="who makes the change (default: the server's author)")
    ] = None,
) -> str:
    """The holder of the request's named token; else the X-Author header; else the server's author."""
    user = getattr(request.state, "user", None)
    if user:
        return user
    return " ".join(x_author.split()) if x_author and x_author.strip() else state.author


State = Annotated[AppState, Depends(_state)]
Author = Annotated[str, Depends(_author)]
ImageId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="image id")]
AnnotationId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="annotation id")]
ClassId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="class id")]
