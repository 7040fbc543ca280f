"""The live counters of every key and team: requests and tokens in the current minute, requests in
flight, and spend in the current budget period, in one table of fixed-size slots.

The table is a memory map. A lone gateway maps anonymous memory; with ``--workers N`` the
supervisor creates a file in /dev/shm before forking and every worker maps that same file, so all
workers read and write the same counters and a limit holds for the whole server, not N times over.
A decision is a few reads and writes of this memory under ``flock`` on the file (two system calls,
about a microsecond): no round trip, no database. The request path's decisions are the core's
(``LimitCounters.take`` and ``give_back``, one call each); ``read`` and ``write`` here serve the
rest (claiming slots, loading a period's spend).

Each slot belongs to one key or team, found by a 16-byte digest of its id with linear probing.
The minute windows start at a scope's first request and last 60 s (anchored, so N requests at
once against a limit of L let exactly L through, whenever they come); their starts are
``time.monotonic()`` reads, one clock for every process of a host. A budget period is numbered
from the key's creation time (wall clock), so every worker agrees on when it resets; ``loaded``
says the spend of the current period has been read from the ledger once (at the first sight of a
scope after a start).
"""

import fcntl
import hashlib
import mmap
import os
import struct

from alloy.core import LimitCounters

SLOT = struct.Struct("<16s d q d q q q q q")  # id, rpm window, requests, tpm window, tokens, in flight,
#                                              period, spend (nano-USD), loaded (for which period)
HEADER = 64
CAPACITY = 16384  # keys plus teams one server tracks; 1.3 MB
SIZE = HEADER + SLOT.size * CAPACITY
WINDOW = 60.0


def scope_digest(scope_id):
    return hashlib.blake2b(scope_id.encode(), digest_size=16).digest()


def create_shared(directory):
    """The file the workers of one server share (created by the supervisor, zero-filled)."""
    path = os.path.join(directory, "governance-counters")
    with open(path, "wb") as handle:
        handle.truncate(SIZE)
    return path


def forget_in_flight(path):
    """A worker of the server sharing ``path`` died: the requests it had in flight still count in
    their scopes (only the worker that took a slot gives it back), and a key whose ``max_parallel``
    they fill would be refused until the whole server restarts. Every scope's count of requests in
    flight is set to zero instead: the living workers' requests then end without being counted (a
    count never goes below zero), so while they run a cap may let that many more through. Called
    by the supervisor (``alloy.supervisor``) when it reaps a worker."""
    table = CounterTable(path)
    empty = b"\0" * 16
    memory = table.memory
    table.lock()
    try:
        for slot in range(CAPACITY):
            offset = HEADER + SLOT.size * slot
            values = SLOT.unpack_from(memory, offset)
            if values[5] and values[0] != empty:
                SLOT.pack_into(memory, offset, *values[:5], 0, *values[6:])
    finally:
        table.unlock()
        table.close()


class CounterTable:
    def __init__(self, path=None):
        if path is None:  # one process: nobody else to exclude
            self.fd = -1
            self.memory = mmap.mmap(-1, SIZE)
        else:
            self.fd = os.open(path, os.O_RDWR)
            self.memory = mmap.mmap(self.fd, SIZE)
        # A request's decision and its give-back, compiled: every limit of a key and its team
        # read, checked and counted in one call under the lock (``alloy.core.LimitCounters``).
        self.limits = LimitCounters(self.memory, self.fd)

    def lock(self):
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def unlock(self):
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def slot_of(self, scope_id):
        """The offset of this scope's slot, claimed if new (None when the table is full)."""
        digest = scope_digest(scope_id)
        memory = self.memory
        start = int.from_bytes(digest[:8], "little") % CAPACITY
        self.lock()
        try:
            for probe in range(CAPACITY):
                offset = HEADER + SLOT.size * ((start + probe) % CAPACITY)
                held = memory[offset : offset + 16]
                if held == digest:
                    return offset
                if held == b"\0" * 16:
                    SLOT.pack_into(memory, offset, digest, 0.0, 0, 0.0, 0, 0, -1, 0, 0)
                    return offset
            return None
        finally:
            self.unlock()

    def read(self, offset):
        return SLOT.unpack_from(self.memory, offset)

    def write(self, offset, values):
        SLOT.pack_into(self.memory, offset, *values)

    def close(self):
        self.limits.release()  # the core holds a view of the map until then
        self.memory.close()
        if self.fd >= 0:
            os.close(self.fd)
