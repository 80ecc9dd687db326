"""Process-level settings for batch work (the CLI, benchmarks, engine workers); never applied on import."""
from __future__ import annotations

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 1 << 30, 2**31 - 1

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(_MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(_TRIM_THRESHOLD),
    "MALLOC_ARENA_MAX": "1",  # threads other than the main one allocate from the main heap too
}
""":func:`reuse_freed_memory` as environment variables, for worker processes started by others (Ray
runs the model in a worker thread, whose own heap could not hold the large blocks)."""


def reuse_freed_memory() -> bool:
    """Make glibc keep large freed blocks for reuse instead of returning them to the kernel at once.

    Segment-everything allocates and frees hundreds of MB of temporary tensors per image (every
    prompt batch upsamples its masks to the image size). By default glibc maps each large block
    fresh from the kernel and unmaps it on free, so every batch pays page faults on all of it: about
    half the time of the automatic stage with the lite model on a 2-core VM. This sets glibc's
    mmap and trim thresholds (process-wide; the process then keeps its peak memory), so call it in
    processes that do batch work (the zeroseg CLI, benchmarks), not in a library shared with others.
    It helps allocations of the main thread; see :data:`MALLOC_ENV` for the others.
    Returns False where the C library is not glibc (nothing changed).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
