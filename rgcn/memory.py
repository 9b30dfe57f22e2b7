"""How the process's memory allocator treats a batch's tensors.

A tagging batch allocates the same few large tensors (activations of a few MB each) again
and again. By default glibc returns such blocks to the system when they are freed (they are
``mmap``-ed, or trimmed off the heap's top), and the next batch takes them back one page
fault at a time. :func:`keep_freed_memory` asks it to serve blocks of up to 32 MiB from its
heap and to keep up to 1 GiB of freed heap for reuse: on the demo's MiniLM encoder, tagging
on one CPU thread takes about 10% less time per post (``python benchmarks/allocator.py``).
The price is that the process holds on to its peak memory. The service's model process
calls it (:mod:`rgcn.serve.worker`); a program that tags many batches may call it too.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024                # the largest glibc documents on 64-bit systems


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_MAX, trim_threshold: int = 1 << 30) -> bool:
    """Serve blocks of up to ``mmap_threshold`` bytes from the heap and keep up to
    ``trim_threshold`` bytes of freed heap; ``True`` when glibc took both settings (on other
    systems or C libraries nothing changes and it returns ``False``)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
