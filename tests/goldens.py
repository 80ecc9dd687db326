"""Helpers for reading the reference goldens (conventions in shared/fixtures/goldens/README.md)."""
import numpy as np


def unpack(packed: np.ndarray, shape: list[int]) -> np.ndarray:
    """Bit-packed booleans (``np.packbits`` of the flattened mask) back to a bool array of ``shape``."""
    return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)
