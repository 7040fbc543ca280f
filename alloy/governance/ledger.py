"""The spend ledger, written off the request path: one row per ended call, in batches.

The finish listener appends a tuple to ``pending`` (no I/O; raw references, converted to the stored
text by the writer thread: ``_stored``). Every ``flush_interval`` (0.5 s by
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

from alloy.core import untracked
from alloy.governance import refused
from alloy.governance.attribution import metadata_json
from alloy.governance.store import LEDGER_COLUMNS, METADATA_AT, Store

log = logging.getLogger("alloy.governance")
MAX_PENDING = 200_000  # rows held while the disk is slower than the traffic; beyond, rows are dropped
MAX_HELD_BYTES = 64 << 20  # request bodies held for their metadata between two flushes
PATH_AT, LATENCY_AT, TAGS_AT, REQUEST_ID_AT = (LEDGER_COLUMNS.index(name) for name in ("endpoint", "latency_ms", "tags", "request_id"))


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
                store.append_ledger([_stored(row) for row in batch])
            except Exception as error:  # noqa: BLE001 - the ledger must never stop the gateway
                self.dropped += len(batch)
                log.error("governance: %d ledger rows could not be written: %s", len(batch), error)
        if store is not None:
            store.close()


def _stored(row):
    """The row as stored. An ended call's row comes raw from the finish listener, which only copies
    references (the path and tags as bytes, the latency in seconds, the answer's header lines for
    its request id, the metadata held as a document; "" for an empty text, which the store keeps as
    NULL); the conversions happen here, off the loop.
    A refusal group's row (``alloy.governance.refused``) is already as stored."""
    path = row[PATH_AT]
    if type(path) is not bytes:
        return row
    stored = list(row)
    stored[PATH_AT] = path.decode("latin-1")
    stored[LATENCY_AT] = round(row[LATENCY_AT] * 1000, 3)
    tags = row[TAGS_AT]
    stored[TAGS_AT] = "" if tags is None else tags[:256].decode("latin-1")
    id_line = row[REQUEST_ID_AT]
    stored[REQUEST_ID_AT] = id_line[14 : id_line.find(b"\r\n")].decode("latin-1") if id_line else ""
    held = row[METADATA_AT]
    stored[METADATA_AT] = "" if held is None else metadata_json(held) or ""
    return stored
