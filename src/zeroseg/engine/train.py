"""Close the loop: fine-tune the lite promptable head on a dataset's accepted masks as a new version.

:func:`retrain` turns the accepted annotations of a dataset into the object list the lite recipe
trains on (:mod:`zeroseg.train.lite_prompt`: cached backbone features, simulated clicks and boxes,
checkpoints every few steps), starts from the shipped head (or an earlier version), and writes the
result where the hub keeps trained versions (``hub.trained_path``: ``lite-<dataset>-v<N>``) with its
JSON sidecar, so ``hub.load_model("lite-<dataset>-v<N>")`` builds it in any process.

Training works in ``$ZEROSEG_HOME/engine/train/<name>-<data hash>/`` (checkpoint, feature cache), so a
killed run started again on the same annotations resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroseg import hub
from zeroseg.engine.schema import Status
from zeroseg.errors import (
    ConfigError,
    DatasetError,
    UnknownModelError,
    WeightsNotFoundError,
)
from zeroseg.io import atomic_path

if TYPE_CHECKING:
    import numpy as np

    from zeroseg.engine.store import ImageRecord, Store
    from zeroseg.train.datasets import PromptObject


def head_weights(base: str | os.PathLike[str]) -> Path:
    """The head weight file of ``base``: ``lite`` (the shipped head), an engine version, or a file."""
    from zeroseg.models.lite.build import DEFAULT_HEAD_WEIGHTS

    text = os.fspath(base)
    try:
        entry = hub.get(text, hub.SEGMENTER)
    except UnknownModelError:
        path = Path(text).expanduser()
        if path.is_file():
            return path
        raise ConfigError(
            f"base {text!r} is neither 'lite', a version trained by `zeroseg engine train` "
            "(see `zeroseg models`), nor a head weight file"
        ) from None
    if entry.name == "lite":
        return DEFAULT_HEAD_WEIGHTS
    weights = hub.trained_weights(entry)
    if weights is not None:
        return weights
    raise ConfigError(f"model {entry.name!r} is not a lite model: only lite heads can be fine-tuned")


# --- training data -------------------------------------------------------------------------
class StoreImages(Sequence["np.ndarray"]):
    """The images of a training set, read from the store's files when asked (as ``LazyImages``, uncached)."""

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        self.records = list(records)
        self.paths = [record.file for record in self.records]  # the feature cache is keyed by these

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]  # no slices
        from zeroseg.engine.stages import read_image

        record = self.records[index]
        return read_image(record.file, record.height, record.width)


@dataclass
class StoreObjects:
    """The accepted masks of a dataset in the shape ``lite_prompt.train`` reads (``PromptMaskDataset``'s)."""

    images: StoreImages
    objects: list[PromptObject]
    fingerprint: str  # hash of the images and masks: equal data, equal hash


def training_set(store: Store, dataset: str, *, grid: int, min_area: int = 100, min_cells: int = 4) -> StoreObjects:
    """Accepted, non-crowd masks of ``dataset`` of at least ``min_area`` pixels and ``min_cells`` cells
    of the decoder's ``grid`` x ``grid`` low-resolution frame (smaller ones teach the head nothing)."""
    from zeroseg.train.datasets import PromptObject

    records, objects = [], []
    digest = hashlib.sha256()
    for image, masks in store.iter_annotated(dataset, status=Status.ACCEPTED):
        cell_pixels = (max(image.height, image.width) / grid) ** 2
        kept = [a for a in masks if not a.iscrowd and a.area >= min_area and a.area / cell_pixels >= min_cells]
        if not kept:
            continue
        digest.update(f"{image.sha256}\n".encode())
        for a in kept:
            objects.append(PromptObject(len(records), f"engine:{dataset}", a.label or "object", a.rle))
            digest.update(f"{a.id}:{a.rle['counts']}\n".encode())
        records.append(image)
    if not objects:
        raise DatasetError(
            f"dataset {dataset!r} has no accepted masks large enough to train on "
            "(accept some in the app, or run `zeroseg engine auto` first)"
        )
    return StoreObjects(StoreImages(records), objects, digest.hexdigest()[:12])


# --- retraining ----------------------------------------------------------------------------
def retrain(
    store: Store,
    dataset: str,
    *,
    steps: int = 300,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    base: str = "lite",
    lr: float = 3e-4,
    min_area: int = 100,
    progress: bool = True,
) -> Path:
    """Fine-tune the lite promptable head on the accepted masks of ``dataset``; return the new weights.

    Starts from ``base`` (the shipped head by default) and trains ``steps`` steps of the lite recipe
    (``zeroseg.train.lite_prompt``) with learning rate ``lr``. ``out`` is the working folder
    (checkpoint, feature cache; default under ``$ZEROSEG_HOME/engine/train``); a run started again
    with the same folder, settings and data resumes from its checkpoint. The result is saved as
    ``hub.trained_path("lite-<dataset>-v<N>")`` (+ ``.json`` sidecar, which records the dataset, store
    and data), where the hub finds it: ``hub.load_model("lite-<dataset>-v<N>")`` builds it.
    """
    import dataclasses

    from zeroseg.models.lite.build import LiteConfig, read_sidecar
    from zeroseg.train.lite_prompt import (
        CHECKPOINT_NAME,
        MIN_TARGET_CELLS,
        TrainConfig,
        train,
    )

    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    base_weights = head_weights(base)
    lite = LiteConfig.from_dict(read_sidecar(base_weights)["config"])
    data = training_set(
        store, dataset, grid=4 * lite.img_size // lite.embed_stride, min_area=min_area, min_cells=MIN_TARGET_CELLS
    )
    version = hub.next_version(dataset)
    name = hub.trained_name(dataset, version)
    work = Path(out) if out is not None else hub.cache_dir() / "engine" / "train" / f"{name}-{data.fingerprint}"
    config = TrainConfig(
        steps=steps,
        seed=seed,
        init=str(base_weights),
        sources=(f"engine:{dataset}@{data.fingerprint}",),
        lr=lr,
        warmup_steps=min(TrainConfig.warmup_steps, max(1, steps // 10)),
        checkpoint_every=min(TrainConfig.checkpoint_every, steps),
        log_every=min(TrainConfig.log_every, steps),
    )
    trained = train(
        work, config, lite, resume=(work / CHECKPOINT_NAME).is_file(), progress=progress, dataset=data  # type: ignore[arg-type]
    )

    sidecar = json.loads(trained.with_suffix(".json").read_text(encoding="utf-8"))
    training = sidecar["training"]
    training["data"] = {
        "sources": list(config.sources),
        "store": _redacted(store.url),
        "dataset": dataset,
        "images": len(data.images),
        "objects": len(data.objects),
        "status": Status.ACCEPTED.value,
    }
    training["engine"] = {
        "dataset": dataset,
        "version": version,
        "base": str(base),
        "base_weights": str(base_weights),
        "steps": steps,
        "objects": len(data.objects),
        "fingerprint": data.fingerprint,
        "train_config": dataclasses.asdict(config),
    }
    target = hub.trained_path(name)
    with atomic_path(target) as tmp:
        shutil.copyfile(trained, tmp)
    with atomic_path(target.with_suffix(".json")) as tmp:  # last: a version counts once its sidecar is there
        tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    try:
        hub.get(name, hub.SEGMENTER)
    except UnknownModelError:
        raise WeightsNotFoundError(f"{target} was written but the hub does not find it as {name!r}") from None
    return target


def _redacted(url: str) -> str:
    """A database URL without its password, for the sidecar."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def describe(weights: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``engine`` record of a version's sidecar (dataset, version, base, steps, objects, ...)."""
    path = Path(weights).with_suffix(".json")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["training"]["engine"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WeightsNotFoundError(f"{path} is not the sidecar of a version trained by the engine: {err}") from None
