"""One keep-alive HTTP/1.1 connection to an upstream, driven by the core ``ResponseParser``.

The connection carries one exchange at a time. It belongs to its pool while idle and to an
exchange while busy; it is handed back only when the response was read to its end and both sides
allow keep-alive. Anything else (a cancel, an error, stray bytes) closes it, so a half-read
connection can never serve the next request.
"""

import asyncio

from alloy.core import ResponseParser, frame_request, frame_request_head
from alloy.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool, loop):
        self.pool = pool
        self.loop = loop
        self.transport = None
        self.closed = False
        self.forgotten = False  # no longer counted by the pool
        self.reused = False  # served an exchange before: a failure may just be a stale socket
        self.idle_since = 0.0
        self._request = None
        self._sink = None
        self._parser = None
        self._head = None
        self._received = False
        self.quiet_seconds = 0  # counted by the pool's sweep, reset by every read

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        sink = self._sink
        if sink is None:
            # Bytes while idle are a protocol violation: never reuse this connection.
            self.close()
            return
        self._received = True
        self.quiet_seconds = 0
        try:
            events = self._parser.feed(data)
        except UpstreamProtocolError as error:
            self._fail(error)
            return
        if events:
            if self._head is None and type(events[0]) is not bytes:
                self._head = events[0]
            sink.upstream_events(events)
        if self._parser.done and self._sink is sink:
            self._finish()

    def connection_lost(self, exc):
        self.closed = True
        if self._sink is None:
            self.pool.forget(self)
            return
        if not self._received and self.reused:
            # RFC 9112 section 9.3.1: the upstream may close an idle connection just as we reuse
            # it. Nothing came back, so the request is retried once on a fresh connection.
            request, sink = self._request, self._sink
            self._sink = None
            self.pool.forget(self)
            self.pool.retry_fresh(request, sink)
            return
        try:
            events = self._parser.feed_eof()
        except UpstreamProtocolError as error:
            self._fail(error)
            return
        sink = self._sink
        if events:
            sink.upstream_events(events)
        self._finish()

    def pause_writing(self):  # the upstream reads our request body slowly: nothing to pause
        pass

    def resume_writing(self):
        pass

    # --- the exchange --------------------------------------------------------------------------

    def send(self, request, sink, head_request):
        self._request = request
        self._sink = sink
        self._parser = ResponseParser(head_request)
        self._head = None
        self._received = False
        self.quiet_seconds = 0
        self.pool.busy.add(self)
        if request.body_length <= 65536:
            body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
            self.transport.write(frame_request(request.method, request.target, request.header_block, bytes(body)))
        else:
            # A large body is written as it is, never copied into one joined buffer.
            head = frame_request_head(request.method, request.target, request.header_block, request.body_length)
            self.transport.writelines([head, *request.body])
        return self

    def cancel(self):
        """The client went away: drop the exchange and the connection with it."""
        self._sink = None
        self.close()

    def pause_reading(self):
        if not self.closed:
            self.transport.pause_reading()

    def resume_reading(self):
        if not self.closed:
            self.transport.resume_reading()

    def close(self):
        if not self.closed:
            self.closed = True
            self.pool.busy.discard(self)
            self.transport.abort()

    def _finish(self):
        sink = self._sink
        keep = self._parser.done and self._head is not None and self._head.keep_alive
        self._sink = None
        self._request = None
        self.pool.busy.discard(self)
        if keep and not self.closed:
            self.reused = True
            self.pool.release(self)
        else:
            self.close()
            self.pool.forget(self)
        sink.upstream_done()

    def _fail(self, error):
        sink = self._sink
        self._sink = None
        self.close()
        self.pool.forget(self)
        if sink is not None:
            sink.upstream_failed(error)

    # --- timeouts: the pool's once-a-second sweep counts the seconds since the last read ----------

    def tick(self):
        if self._sink is None:
            return
        self.quiet_seconds += 1
        if self.quiet_seconds >= self.pool.read_timeout:
            phase = "a stream event" if self._received else "the first byte"
            self._fail(UpstreamTimeout(f"upstream did not send {phase} within {self.pool.read_timeout:g} s"))


def connection_error(exc, origin):
    """An ``UpstreamError`` for a failure to connect, naming the origin but nothing secret."""
    return UpstreamError(f"could not connect to upstream {origin.label}: {exc.__class__.__name__}")
