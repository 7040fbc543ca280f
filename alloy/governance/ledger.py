"""The spend ledger, written off the request path: one row per ended call, in batches.

The finish listener appends a tuple to ``pending`` (no I/O; raw references, converted to the stored
text by the writer thread: ``alloy.core.ledger_stored``). Every ``flush_interval`` (0.5 s by
default) the loop hands the batch to a writer thread, which inserts it in one SQLite transaction
on its own connection; the loop never waits for the disk. At shutdown ``close`` hands over the
last batch and waits for the thread (bounded), so a SIGTERM loses nothing. A ``kill -9`` loses
what was not yet written: at most the rows of the last ``flush_interval`` plus the batch being
written. A batch that cannot be written (disk full, a locked file beyond the busy timeout) is
logged and dropped, counted in ``dropped``; the gateway keeps serving.

A row whose request body carries ``metadata`` holds it (the scanner's top-level value, or the body
itself when no scan was made) until the writer thread turns it into JSON text
(``alloy.governance.attribution``): the listener never parses. What is held is
bounded by ``MAX_HELD_BYTES`` per flush; beyond, a row's metadata is not recorded (counted in
``metadata_dropped``).

Refusals (``alloy.governance.refused``) are counted in ``refusals`` by group and become rows, one a
group, at each flush.
"""

import logging
import queue
import threading
from time import time

from alloy.core import ledger_stored, untracked
from alloy.governance import refused
from alloy.governance.attribution import metadata_json
from alloy.governance.store import LEDGER_COLUMNS, Store

log = logging.getLogger("alloy.governance")
MAX_PENDING = 200_000  # rows held while the disk is slower than the traffic; beyond, rows are dropped
MAX_HELD_BYTES = 64 << 20  # request bodies held for their metadata between two flushes
# Where a raw row holds what the writer converts (``alloy.core.ledger_stored``, compiled: a row's
# conversions cost the Python twin about a third of what the SQLite insert that follows costs).
CONVERTED = tuple(LEDGER_COLUMNS.index(name) for name in ("endpoint", "latency_ms", "tags", "request_id", "metadata"))


class Ledger:
    def __init__(self, path):
        self.path = path
        self.pending = []
        self.dropped = 0
        self.held_bytes = 0  # of request bodies in ``pending`` (rows with metadata to read)
        self.refusals = {}  # refusal group -> requests refused since the last flush
        self.metadata_dropped = 0
        self.batches = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="alloy-ledger", daemon=True)
        self.thread.start()

    def append(self, row):
        if len(self.pending) < MAX_PENDING:
            self.pending.append(untracked(row))  # its fields are texts and numbers: no collector pass
        else:
            self.dropped += 1

    def holds(self, body):
        """``body`` (for its metadata, read by the writer) when the bound allows, else None."""
        if body is None:
            return None
        if self.held_bytes + len(body) > MAX_HELD_BYTES:
            self.metadata_dropped += 1
            return None
        self.held_bytes += len(body)
        return body

    def refused(self, group):
        """Count one refusal (``alloy.governance.refused``: a group tuple)."""
        refusals = self.refusals
        if group not in refusals and len(refusals) >= refused.MAX_GROUPS:
            group = refused.coarse(group)
        refusals[group] = refusals.get(group, 0) + 1

    def flush(self):
        if self.refusals:
            self.pending.extend(refused.rows(self.refusals, time()))
            self.refusals = {}
        if self.pending:
            batch, self.pending = self.pending, []
            self.held_bytes = 0
            self.batches.put(batch)

    def close(self, timeout=5.0):
        self.flush()
        self.batches.put(None)
        self.thread.join(timeout)

    def _write(self):
        store = None
        while True:
            batch = self.batches.get()
            if batch is None:
                break
            try:
                if store is None:
                    store = Store(self.path)
                store.append_ledger(ledger_stored(batch, CONVERTED, metadata_json))
            except Exception as error:  # noqa: BLE001 - the ledger must never stop the gateway
                self.dropped += len(batch)
                log.error("governance: %d ledger rows could not be written: %s", len(batch), error)
        if store is not None:
            store.close()
