"""One exception hierarchy for zeroseg.

Every error a user can cause derives from :class:`ZerosegError`. Each class carries an
``exit_code`` (used by the CLI) and an ``http_status`` (used by the server), so faces over the
API map failures the same way.
"""
from __future__ import annotations


class ZerosegError(Exception):
    """Base class of every error zeroseg raises on purpose."""

    exit_code = 1
    http_status = 500


# --- input images -------------------------------------------------------------------------
class ImageError(ZerosegError, ValueError):
    """An image could not be used."""

    exit_code = 10
    http_status = 422


class ImageReadError(ImageError):
    """The file is missing, unreadable, truncated or not an image."""

    exit_code = 11


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""

    exit_code = 12
    http_status = 413


class EmptyImageError(ImageError):
    """The image has zero width or height."""

    exit_code = 13


# --- prompts ------------------------------------------------------------------------------
class PromptError(ZerosegError, ValueError):
    """A prompt (points, labels, boxes, mask input, text) is malformed."""

    exit_code = 20
    http_status = 422


class PromptShapeError(PromptError):
    """A prompt array has the wrong shape or dtype."""

    exit_code = 21


class PromptValueError(PromptError):
    """A prompt has NaN/inf, an inverted or zero-area box, coordinates outside the image, or bad labels."""

    exit_code = 22


class NoImageSetError(ZerosegError, RuntimeError):
    """A prediction was requested before an image was set."""

    exit_code = 23
    http_status = 409


class NothingFoundError(ZerosegError, LookupError):
    """A prompt was valid but found nothing (a text prompt no region of the image matches)."""

    exit_code = 24
    http_status = 404


# --- models and weights -------------------------------------------------------------------
class ModelError(ZerosegError):
    """A model could not be found, built or loaded."""

    exit_code = 30
    http_status = 500


class UnknownModelError(ModelError, KeyError):
    """The model name is not in the registry."""

    exit_code = 31
    http_status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(ModelError, FileNotFoundError):
    """Weights are not in the cache and cannot be downloaded (offline)."""

    exit_code = 32
    http_status = 503


class ChecksumError(ModelError):
    """A weight file does not have the expected SHA-256 (corrupt, truncated or another model)."""

    exit_code = 33


class CheckpointMismatchError(ModelError):
    """A checkpoint's keys or shapes do not match the model it is loaded into."""

    exit_code = 34


class ConfigError(ModelError, ValueError):
    """A model config is invalid."""

    exit_code = 35


class CheckpointReadError(ModelError):
    """A weight file cannot be read: empty, truncated, damaged, not a checkpoint, or pickled objects."""

    exit_code = 36


# --- storage ------------------------------------------------------------------------------
class OutputError(ZerosegError, OSError):
    """Results could not be written (disk full, permissions); nothing partial was left."""

    exit_code = 40
    http_status = 507


class DatasetError(ZerosegError, ValueError):
    """A dataset folder or annotation file is missing or malformed."""

    exit_code = 50
    http_status = 422


class NotFoundError(DatasetError, LookupError):
    """A dataset, image or annotation named by id or name is not in the store."""

    exit_code = 51
    http_status = 404
