"""Dense vision-language embedders: image -> HxWxD unit embeddings comparable with a text encoder's vectors."""

from typing import Any

from zeroseg.models.vl.base import DenseEmbedder, DenseEmbedding

__all__ = ["DenseEmbedder", "DenseEmbedding", "load_dense_embedder"]


def load_dense_embedder(name: str = "lite", checkpoint: str | None = None, **options: Any) -> DenseEmbedder:
    """Old home of :func:`zeroseg.hub.load_dense_embedder`, kept while ``zeroseg.server.names`` imports it
    from here (the one import of the hub under ``zeroseg.models``, ignored in pyproject's contracts)."""
    from zeroseg import hub

    return hub.load_dense_embedder(name, checkpoint, **options)
