"""A hand-off from the event loop to a thread of its own, for output that may be slow.

The access log's writer and the trace exporter both hand finished batches (bytes, with how many
lines or spans each holds) to a thread that delivers them one at a time: a disk, a pipe nobody
reads or a collector that does not answer may stall that thread, never the event loop. What waits
is bounded (by batches or by bytes): past the bound a batch is dropped and counted, never queued
without end; a batch the thread fails to deliver is dropped and counted too. ``close`` delivers
what is waiting for up to a timeout, then stops.
"""

import threading
from collections import deque


class Handoff:
    def __init__(self, name, deliver, max_batches=None, max_bytes=None, on_stop=None):
        self.deliver = deliver  # batch -> True when it was delivered (called on the thread)
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.on_stop = on_stop  # called on the thread once it stops (to close a file)
        self.delivered = 0  # units (lines, spans) delivered
        self.dropped = 0  # units dropped: too much waiting, or the delivery failed
        self.pending = deque()
        self.pending_bytes = 0
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    # --- from the event loop ------------------------------------------------------------------------

    def submit(self, batch, units):
        with self.lock:
            if (self.max_batches is not None and len(self.pending) >= self.max_batches) or (
                self.max_bytes is not None and self.pending_bytes + len(batch) > self.max_bytes
            ):
                self.dropped += units
                return
            self.pending.append((batch, units))
            self.pending_bytes += len(batch)
            self.wake.notify()

    def drop(self, units):
        with self.lock:
            self.dropped += units

    def close(self, timeout):
        """Deliver what is waiting (for up to ``timeout`` seconds), then stop."""
        with self.lock:
            self.stopping = True
            self.wake.notify()
        self.thread.join(timeout)

    # --- the thread ----------------------------------------------------------------------------------

    def _run(self):
        while True:
            with self.lock:
                while not self.pending and not self.stopping:
                    self.wake.wait()
                if not self.pending:
                    break
                batch, units = self.pending.popleft()
                self.pending_bytes -= len(batch)
            if self.deliver(batch):
                self.delivered += units
            else:
                self.drop(units)
        if self.on_stop is not None:
            self.on_stop()
