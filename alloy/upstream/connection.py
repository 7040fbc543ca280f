"""One keep-alive HTTP/1.1 connection to an upstream, driven by the core ``ResponseParser``.

The connection carries one exchange at a time. It belongs to its pool while idle and to an
exchange while busy; it is handed back only when the response was read to its end and both sides
allow keep-alive. Anything else (a cancel, an error, stray bytes) closes it, so a half-read
connection can never serve the next request.

Response timeouts: the pool's timing wheel looks at a busy connection at the sweep its first
deadline falls in (``on_due``). A read only records the sweep count (``read_at``); a connection that
went back to the pool stays filed until its sweep comes, then is left out (nothing to time). While
back-pressure from a slow client pauses our reads, the stream-idle clock stands still: that
silence is ours, not the upstream's.
"""

import logging

from alloy.core import VIEW_BODY_ABOVE, ResponseParser, frame_request_head
from alloy.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnreachable

log = logging.getLogger("alloy")
MAX_HEAD_BYTES = 65536  # an upstream response head beyond this is a protocol error (the parser's default)


class UpstreamRequest:
    """One attempt's request. Its head is framed when it is made, so a value that does not belong
    in a head (``alloy.errors.UnsafeHead``) fails the attempt before any backend sees it. (An
    extension type in the compiled build, declared in connection.pxd: one is made per attempt, and
    the connection that sends it reads its fields as C slots. It lives here, not in
    ``alloy.upstream``, because only a compiled module can define one; that package exports it.)"""

    __slots__ = (
        "method", "target", "header_block", "body", "body_length", "timeouts", "total_ticks", "response_skip", "head",
    )  # fmt: skip

    def __init__(self, method, target, header_block, body, body_length, timeouts, total_ticks=0, response_skip=None):
        self.method = method
        self.target = target
        self.header_block = header_block  # host, credentials, forwarded headers, each line CRLF-terminated
        self.body = body  # buffers (bytes or memoryview) whose concatenation is the body
        self.body_length = body_length
        self.timeouts = timeouts
        self.total_ticks = total_ticks  # what is left of the total timeout for this attempt; 0: no limit
        # The response header names the client must not see (a passthrough relay's): given, the
        # core's response parser writes the client's header block while it parses (ResponseHead.block).
        self.response_skip = response_skip
        self.head = frame_request_head(method, target, header_block, body_length)  # checked by the core

    def deadline(self, sent, last_read, received):
        """The sweep at which the first of this request's limits falls, for a request sent when the
        sweep count was ``sent`` whose last read came when it was ``last_read`` (``received``: any
        byte came back; else ``last_read`` is ``sent``)."""
        timeouts = self.timeouts
        quiet = last_read + (timeouts.idle_ticks if received else timeouts.first_byte_ticks)
        if self.total_ticks and sent + self.total_ticks < quiet:
            return sent + self.total_ticks
        return quiet

    def expired(self, age_ticks, quiet_ticks, received, partial=False):
        """The ``UpstreamTimeout`` this request has run into, after ``age_ticks`` sweeps since it
        was sent and ``quiet_ticks`` since the last read (``received``: the response head came
        back; ``partial``: bytes of it did, or interim answers), or None."""
        timeouts = self.timeouts
        if self.total_ticks and age_ticks >= self.total_ticks:
            return UpstreamTimeout(f"upstream did not complete the response within {timeouts.total:g} s")
        if received:
            if quiet_ticks >= timeouts.idle_ticks:
                return UpstreamTimeout(f"upstream went silent for {timeouts.stream_idle:g} s")
        elif quiet_ticks >= timeouts.first_byte_ticks:
            what = "a complete response head" if partial else "the first byte"
            return UpstreamTimeout(f"upstream did not send {what} within {timeouts.first_byte:g} s")
        return None


class UpstreamConnection:  # an asyncio protocol (asyncio and uvloop duck-type it)
    def __init__(self, pool, loop):
        self.pool = pool
        self.wheel = pool.wheel
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
        self.reading_paused = False  # by back-pressure from the client; never left so in the pool
        self.due = 0  # the sweep this connection is filed for in the pool's wheel (0: not filed)
        self.sent_at = 0  # the wheel's sweep count when the request was sent
        self.read_at = 0  # ... and at the last read (the request's, before any)

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
        self.read_at = self.wheel.now  # moves the stream-idle deadline later: nothing to re-file
        try:
            events = self._parser.feed(data)
        except UpstreamProtocolError as error:
            self._fail(error)
            return
        done = self._parser.done
        try:
            if events:
                if self._head is None and type(events[0]) is not bytes:
                    self._head = events[0]
                sink.upstream_events(events, done)
            if done and self._sink is sink:
                self._finish()
        except Exception:  # noqa: BLE001 - see _sink_broke
            self._sink_broke(sink)

    def connection_lost(self, exc):
        self.closed = True
        self.wheel.drop(self)
        if self._sink is None:
            self.pool.forget(self)
            return
        if not self._received:
            # Closed (or reset) before a single byte of answer: the request was not processed.
            # On a reused connection this is most likely the keep-alive race of RFC 9112 section
            # 9.3.1 (the upstream closed it as idle just as we sent): Attempts retries at once.
            error = UpstreamUnreachable(
                f"{self.pool.named} closed the connection before answering",
                stale=self.reused,
                closed_idle=self.reused and exc is None,  # an orderly close, not a reset
            )
            self._fail(error)
            return
        if exc is not None:
            # A reset (the upstream crashed, a proxy gave up) ends no body, not even one read until
            # the close: only an orderly close does. What came so far was relayed; this is a cut.
            self._fail(UpstreamProtocolError(f"{self.pool.named} reset the connection before its answer was complete"))
            return
        try:
            events = self._parser.feed_eof()
        except UpstreamProtocolError as error:
            self._fail(error)
            return
        sink = self._sink
        try:
            if events:
                sink.upstream_events(events, True)
            self._finish()
        except Exception:  # noqa: BLE001 - see _sink_broke
            self._sink_broke(sink)

    def pause_writing(self):  # the upstream reads our request body slowly: nothing to pause
        pass

    def resume_writing(self):
        pass

    # --- the exchange --------------------------------------------------------------------------

    def send(self, request, sink, head_request):
        self._request = request
        self._sink = sink
        self._parser = ResponseParser(head_request, MAX_HEAD_BYTES, request.response_skip)
        self._head = None
        self._received = False
        wheel = self.wheel
        self.sent_at = self.read_at = now = wheel.now
        # The soonest deadline (Timeouts.watch_ticks: the first byte's, or a shorter stream-idle
        # one from a head that may come at once), inlined: this runs for every request
        ticks = request.timeouts.watch_ticks
        total = request.total_ticks
        deadline = now + (total if total and total < ticks else ticks)
        if not self.due or self.due > deadline:  # a reused connection is often filed early enough
            wheel.file(self, deadline)
        if request.body_length <= VIEW_BODY_ABOVE:
            self.transport.write(b"".join([request.head, *request.body]))  # one write, one copy
        else:
            # A large body is written as it is (often a view of the client's read: no copy at all).
            self.transport.writelines([request.head, *request.body])
        return self

    def cancel(self):
        """The client went away: drop the exchange and the connection with it."""
        self._sink = None
        self.close()

    def pause_reading(self):
        if not self.closed and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self):
        if not self.closed and self.reading_paused:
            self.reading_paused = False
            self.read_at = self.wheel.now  # the stream-idle clock starts again (see on_due)
            self.transport.resume_reading()

    def close(self):
        if not self.closed:
            self.closed = True
            self.wheel.drop(self)
            self.transport.abort()

    def _finish(self):
        sink = self._sink
        keep = self._parser.done and self._head is not None and self._head.keep_alive
        self._sink = None
        self._request = None
        if keep and not self.closed:
            self.reused = True
            if self.reading_paused:
                # The response ended while a slow client had paused our reads: the next exchange
                # on this connection must not start deaf.
                self.resume_reading()
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

    def _sink_broke(self, sink):
        """What reads the answer raised (a bug: the relays catch what an answer's shape can do):
        logged, the exchange and this connection end, and the call ends as the upstream's failure.
        Should that raise too, or leave the call waiting on this exchange, the client's connection
        is closed: a client never waits for an answer that cannot come."""
        log.exception("unexpected error relaying the answer of upstream %s", self.pool.origin.label)
        if self._sink is sink:
            self._sink = None
            self._request = None
            self.close()
            self.pool.forget(self)
        call = getattr(sink, "call", None)
        try:
            sink.upstream_failed(UpstreamProtocolError("the upstream's answer could not be relayed (the gateway's log says why)"))
        except Exception:  # noqa: BLE001
            log.exception("unexpected error ending a broken answer")
        else:
            if call is None or call.relay is not sink or call.ended:
                return  # ended, or on to another attempt
        if call is not None:
            connection = call.connection
            connection.current = None
            call.cancel()
            connection.close()

    # --- timeouts: the pool's timing wheel, swept once a second ------------------------------------

    def on_due(self, now):
        """The sweep this connection was filed for: fail the exchange if one of its limits fell,
        else file it again for the next one (an idle connection is simply left out)."""
        request = self._request
        if self._sink is None or request is None:
            return
        # Until the final head is parsed, first_byte_timeout runs from the send: a head trickled a
        # byte at a time, or 1xx interim answers one after another, do not hold the call past it.
        headed = self._head is not None
        sent = self.sent_at
        if headed and self.reading_paused:
            # A slow client holds our reads back (back-pressure): the upstream is not silent, it
            # is waiting for us. Its idle clock stands still until reading resumes; the client's
            # own write_timeout ends a client that reads nothing, and total_timeout still holds.
            self.read_at = now
        last_read = self.read_at if headed else sent
        deadline = request.deadline(sent, last_read, headed)
        if now >= deadline:
            self._fail(request.expired(now - sent, now - last_read, headed, self._received))
        else:
            self.wheel.file(self, deadline)


def connection_error(exc, named):
    """The error for a failure to connect to ``named`` (``upstream 'openai'``): the provider's name,
    never its address, which the client has no business knowing (the gateway's log has it)."""
    return UpstreamUnreachable(f"could not connect to {named}: {exc.__class__.__name__}", unsent=True)
