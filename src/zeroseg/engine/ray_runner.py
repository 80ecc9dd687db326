"""The automatic stage as a Ray Data job: model actors annotate, the driver writes through the store.

The pending images of a dataset become a Ray dataset of small rows (id, file, size). ``map_batches``
sends them to a pool of actors, each holding the models once and running
:func:`zeroseg.engine.stages.annotate_image` on one torch thread. The driver consumes the results as
they stream in and commits each image (its masks and its status) in one transaction through the same
:class:`~zeroseg.engine.store.Store` as the single-process runner, so a killed job resumes cleanly and
the results equal those of ``stages.auto`` (same function, same thread count). Ray's streaming
executor bounds the work in flight, which is the back-pressure: actors wait while the driver writes.

Workers read the image files themselves, so on a cluster the dataset root must be the same path on
every node (a shared filesystem); the database is only touched by the driver.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from zeroseg.engine.schema import Source, Status
from zeroseg.engine.stages import (
    AutoConfig,
    AutoSummary,
    annotate_image,
    commit_image,
    load_models,
    pending_images,
    read_image,
)
from zeroseg.engine.store import NewAnnotation, Store
from zeroseg.errors import PromptValueError, ZerosegError
from zeroseg.runtime import MALLOC_ENV

MAX_BLOCKS = 4096
"""Upper bound on the Ray blocks of the input (one block per batch below it, for even load)."""


class RayError(ZerosegError):
    """Ray is not installed, or the local Ray could not start, or the cluster could not be joined."""


class Annotator:
    """A Ray Data actor: loads the models once, then annotates batches of image rows.

    Returns per image its id, its annotations as JSON (exact: floats round-trip) and an error message
    (empty unless the image could not be read).
    """

    def __init__(self, config: AutoConfig, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        self.config = config
        self.models = load_models(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        annotations, errors = [], []
        for image_id, file, height, width in zip(batch["image_id"], batch["file"], batch["height"], batch["width"]):
            try:
                image = read_image(str(file), int(height), int(width))
            except ZerosegError as err:
                annotations.append("[]")
                errors.append(str(err))
                continue
            found = annotate_image(image, self.config, self.models, image_id=int(image_id))
            annotations.append(json.dumps([_to_json(a) for a in found]))
            errors.append("")
        return {
            "image_id": np.asarray(batch["image_id"], dtype=np.int64),
            "path": np.asarray(batch["path"], dtype=object),
            "annotations": np.asarray(annotations, dtype=object),
            "error": np.asarray(errors, dtype=object),
        }


def auto_ray(
    store_url: str | os.PathLike[str],
    dataset: str,
    config: AutoConfig | None = None,
    *,
    address: str | None = None,
    num_workers: int = 2,
    batch_size: int = 1,
    threads_per_worker: int = 1,
    progress: bool = True,
    limit: int | None = None,
) -> AutoSummary:
    """Run the automatic stage over ``dataset`` on Ray; same skipping, resuming and summary as ``stages.auto``.

    ``store_url`` is a database URL or a dataset folder (see ``Store.open``). Without ``address`` a
    local Ray with ``num_workers`` CPUs is started (and stopped afterwards); with one (``auto``,
    ``ray://host:10001``, ``host:6379``) the job joins that cluster. ``num_workers`` actors take one
    CPU each and run torch on ``threads_per_worker`` threads; ``batch_size`` images go to an actor at
    a time (1 balances best: an image is seconds of work).
    """
    if min(num_workers, batch_size, threads_per_worker) < 1:
        raise PromptValueError("num_workers, batch_size and threads_per_worker must be at least 1")
    config = config or AutoConfig()
    _check_model(config.model)
    started = time.perf_counter()
    with Store.open(store_url) as store:
        pending, done = pending_images(store, dataset, limit)
        summary = AutoSummary(dataset, skipped=done)
        if pending:
            ray = _start_ray(address, num_workers)
            try:
                _run(store, pending, config, summary, num_workers, batch_size, threads_per_worker, progress)
            finally:
                if ray is not None:  # we started it (or joined the cluster): stop (or leave) it
                    ray.shutdown()
    summary.seconds = time.perf_counter() - started
    return summary


def _check_model(name: str) -> None:
    """Fail here, with the hub's message, rather than inside every actor, if the model is unknown."""
    from zeroseg import hub

    hub.get(name)


def _start_ray(address: str | None, num_workers: int) -> Any:
    """The ray module, initialised: an already running session, a new local Ray, or a joined cluster.

    Returns None for a session that was running before (which is then not shut down).
    """
    try:
        import ray
    except ImportError:
        raise RayError("--engine ray needs Ray Data: pip install 'ray[data]'") from None
    if ray.is_initialized():
        return None
    try:
        if address is None:
            ray.init(num_cpus=num_workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError, ... on start-up
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise RayError(f"cannot {where}: {type(err).__name__}: {err}") from None
    return ray


def _run(
    store: Store,
    pending: list[Any],
    config: AutoConfig,
    summary: AutoSummary,
    num_workers: int,
    batch_size: int,
    threads: int,
    progress: bool,
) -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is below
    context.print_on_execution_start = False
    rows = [
        {"image_id": r.id, "path": r.path, "file": str(r.file), "height": r.height, "width": r.width}
        for r in pending
    ]
    blocks = min(MAX_BLOCKS, -(-len(rows) // batch_size))
    results = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        Annotator,
        fn_constructor_kwargs={"config": config, "threads": threads},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=1,
        runtime_env={"env_vars": MALLOC_ENV},  # about twice as fast: see zeroseg.runtime
    )
    with tqdm(total=len(rows), desc=f"auto {summary.dataset} (ray)", unit="image", disable=not progress) as bar:
        for row in _rows(results):
            if row["error"]:
                summary.failed.append((str(row["path"]), str(row["error"])))
            else:
                annotations = [_from_json(a) for a in json.loads(row["annotations"])]
                commit_image(store, int(row["image_id"]), annotations)
                summary.processed += 1
                summary.annotations += len(annotations)
            bar.update()
            bar.set_postfix(masks=summary.annotations)


def _rows(results: Any) -> Iterator[dict[str, Any]]:
    """The job's result rows as they come; a failure inside Ray (an actor that cannot load its models,
    a lost worker) becomes a RayError whose message is the remote error's last line."""
    rows = iter(results.iter_rows())
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as err:  # RayTaskError, ActorDiedError, ...: anything the job raises
            lines = [line for line in str(err).splitlines() if line.strip()]
            raise RayError(f"the Ray job failed: {lines[-1] if lines else type(err).__name__}") from err
        yield row


def _to_json(annotation: NewAnnotation) -> dict[str, Any]:
    return {f.name: getattr(annotation, f.name) for f in dataclasses.fields(annotation)}


def _from_json(values: dict[str, Any]) -> NewAnnotation:
    return NewAnnotation(**{**values, "source": Source(values["source"]), "status": Status(values["status"])})
