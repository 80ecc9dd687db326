"""Dense vision-language embedders: image -> HxWxD unit embeddings comparable with a text encoder's vectors."""

from zeroseg.models.vl.base import DenseEmbedder, DenseEmbedding

__all__ = ["DenseEmbedder", "DenseEmbedding"]

