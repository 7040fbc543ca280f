"""glibc allocator tuning for large request bodies, and giving back what the start freed.

By default glibc serves every allocation above 128 KiB with a fresh ``mmap`` and returns it on free,
so each large body (a 200 KB prompt is copied three or four times on its way through) pays for
page faults on every request: measured here, that was most of the gateway's overhead on a 200 KB
chat request (~480 us of ~500 us). Keeping allocations up to 16 MiB on the heap, and trimming the
heap only past 64 MiB of free space, makes those buffers reusable. The price is that up to that much
freed memory stays mapped after a burst of large requests, so the memory the start itself freed
(configuration parsing, import temporaries: 0.5-1.5 MB) is given back once, by hand.

The calls are the core's (C, no ctypes); no-ops where the C library is not glibc.
"""

from alloy import core

HEAP_UP_TO = 16 * 1024 * 1024
TRIM_ABOVE = 64 * 1024 * 1024


def tune_allocator():
    """Returns True when the thresholds were set."""
    return core.tune_allocator(HEAP_UP_TO, TRIM_ABOVE)


def return_start_memory():
    """Once, when the gateway is ready: what starting freed goes back to the system."""
    core.trim_heap()
