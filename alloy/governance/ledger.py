"""The spend ledger, written off the request path: one row per ended call, in batches.

The finish listener appends a tuple to ``pending`` (no I/O). Every ``flush_interval`` (0.5 s by
default) the loop hands the batch to a writer thread, which inserts it in one SQLite transaction
on its own connection; the loop never waits for the disk. At shutdown ``close`` hands over the
last batch and waits for the thread (bounded), so a SIGTERM loses nothing. A ``kill -9`` loses
what was not yet written: at most the rows of the last ``flush_interval`` plus the batch being
written. A batch that cannot be written (disk full, a locked file beyond the busy timeout) is
logged and dropped, counted in ``dropped``; the gateway keeps serving.
"""

import logging
import queue
import threading

from alloy.governance.store import Store

log = logging.getLogger("alloy.governance")
MAX_PENDING = 200_000  # rows held while the disk is slower than the traffic; beyond, rows are dropped


class Ledger:
    def __init__(self, path):
        self.path = path
        self.pending = []
        self.dropped = 0
        self.batches = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="alloy-ledger", daemon=True)
        self.thread.start()

    def append(self, row):
        if len(self.pending) < MAX_PENDING:
            self.pending.append(row)
        else:
            self.dropped += 1

    def flush(self):
        if self.pending:
            batch, self.pending = self.pending, []
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
                store.append_ledger(batch)
            except Exception as error:  # noqa: BLE001 - the ledger must never stop the gateway
                self.dropped += len(batch)
                log.error("governance: %d ledger rows could not be written: %s", len(batch), error)
        if store is not None:
            store.close()
