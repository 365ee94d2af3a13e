"""Keep freed heap memory in the process (glibc only): fewer page faults in every training step.

By default glibc returns freed blocks to the kernel as soon as they are large enough, and picks the size
above which a block gets its own mapping at run time. A training step frees and allocates the same few
hundred MB again and again, so the next step faults those pages back in, zeroed by the kernel. The
quantum simulator's temporaries (a few MB each, allocated on worker threads) suffer most.
``hqdm``'s commands call :func:`keep_freed_memory` at start; scripts may too.
``hqdm bench train-step --glibc-heap-defaults`` measures the difference (docs/performance.md).

The cost: memory a step freed stays in the process (its resident size no longer shrinks after a peak).
"""

from __future__ import annotations

import ctypes

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 1 << 30  # free memory kept at the top of a heap before it is returned (1 GiB)
MMAP_THRESHOLD = 32 << 20  # blocks from this size (32 MiB, glibc's largest) get their own mapping


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds (``mallopt``) for this process; False where there is no glibc.

    Setting either threshold also turns off glibc's run-time adjustment of both, so both are set.
    """
    try:  # the C library the process already has loaded: no library search (find_library runs ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, TypeError, AttributeError):  # no mallopt (macOS) or no CDLL(None) (Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trimmed = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(trimmed) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
