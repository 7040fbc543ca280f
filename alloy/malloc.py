"""glibc allocator tuning for large request bodies.

By default glibc serves every allocation above 128 KiB with a fresh ``mmap`` and returns it on free,
so each large body (a 200 KB prompt is copied three or four times on its way through) pays for
page faults on every request: measured here, that was most of the gateway's overhead on a 200 KB
chat request (~480 us of ~500 us). Keeping allocations up to 16 MiB on the heap, and trimming the
heap only past 64 MiB of free space, makes those buffers reusable. The price is that up to that much
freed memory stays mapped after a burst of large requests.

A no-op where the C library is not glibc.
"""

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HEAP_UP_TO = 16 * 1024 * 1024
TRIM_ABOVE = 64 * 1024 * 1024


def tune_allocator():
    """Returns True when the thresholds were set."""
    try:
        # The symbols the process already has, the C library's among them: ctypes.util.find_library
        # would cost ~1 MB of imports (shutil, tempfile, random) that the gateway never uses again.
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS), or no dlopen(NULL)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_UP_TO)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
