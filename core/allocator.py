"""Keep freed memory in the process for reuse instead of handing it back to the kernel (glibc).

Why: glibc serves a large allocation (above its mmap threshold: 128 KiB at start, adjusted as
blocks are freed) with a fresh ``mmap`` and returns freed heap tops to the kernel; the next step's
tensors then touch new pages, and every 4 KiB page costs a page fault on first write. A training
step of the fast detector (batch 8, 256-px crops) allocates several hundred MB of activations and
gradients: up to about 37 000 minor faults per step on the development VM (one step measured in
a process that alternated the two settings), against about 300 with this setting. The real
trainer's step (default crop recipe, one thread, 250 steps, runs alternating on one core) took
5-6 % less time: DOAM 256 -> 242 ms, no attention 202 -> 191 ms. Inference and evaluation
allocate the same way, per image.

The price: the process keeps its peak heap until it exits. That is what a training, evaluation
or benchmark job wants; the workstation GUI, which runs for days, keeps glibc's defaults. The CLI's
batch jobs apply it unless ``XRAY_KEEP_FREED_MEMORY=0`` (see core/cli/__init__.py).

Environment variables win: if ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set,
glibc already applied it at start and nothing is changed here.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Above every single tensor this project allocates (the largest activations are tens of MB).
KEEP_BYTES = 1 << 30
ENVIRONMENT_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Make glibc reuse freed blocks (no mmap per large tensor, no trimming); True if applied.

    A no-op, returning False, off Linux/glibc or when the environment already sets either value.
    Forked data-loader workers inherit the setting.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in ENVIRONMENT_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    log.debug("glibc keeps freed memory for reuse: %s", applied)
    return applied
