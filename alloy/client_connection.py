"""One client connection: bytes in, the core parser, requests answered strictly in order.

Theory of operation
- Requests are answered one at a time in the order they arrived (RFC 9112 section 9.3.2:
  pipelined responses go out in request order). While a proxied request is in flight, later
  pipelined requests wait in ``queue``; past ``MAX_QUEUED`` requests, or ``MAX_PIPELINED_BYTES``
  held for them (queued bodies plus the one being read), we stop reading from the socket, so a
  pipelining client makes the gateway hold at most about one more request than it is serving.
- Back-pressure both ways: when the client's write buffer fills, ``pause_writing`` pauses the
  upstream read of the call whose answer fills it; ``resume_writing`` resumes it. A client that takes
  nothing for ``write_timeout`` seconds is dropped, which frees its upstream connection.
- Timeouts cost nothing per request and nothing per idle connection: each connection is filed in
  the gateway's timing wheel (``alloy.timing_wheel``) for the sweep its earliest deadline falls in,
  and only then looked at (``on_due``). Activity writes the sweep number into a field: when the
  idle clock last restarted (``quiet_since``: bytes in, an answer done), when reading the request
  began (``read_since``: slow-loris, empty lines included), when the client's socket filled
  (``write_paused_since``). The limits fire at the same sweeps as counters visited every second
  would: more than ``read_timeout``, ``keepalive_timeout`` and ``write_timeout`` seconds after their
  clock started, at most a second more.
- A protocol error answers with its own status and closes: after a framing error the byte stream
  cannot be trusted to delimit another request. Requests completed before it are answered first.
"""

import asyncio
import logging
import socket
import sys
from collections import deque


from alloy.core import Request, RequestParser, frame_response
from alloy.errors import (
    AlloyError,
    InternalError,
    NestedTooDeeply,
    RequestTimeout,
    ServiceUnavailable,
    TooManyConnections,
    error_response_body,
    too_deep_to_write,
)
from alloy.headers import CONTINUE, FORWARD_SKIP, FORWARD_SKIP_PREFIXES, JSON_HEADER
from alloy.http10 import KeepAliveAnnouncer
from alloy.timing_wheel import TimingWheel, sweeps

log = logging.getLogger("alloy")
MAX_QUEUED = 32
LINGER_SECONDS = 2.0  # a refused connection's lingering close, at most
# A client whose socket stays full keeps its connection while it takes at least this much in each
# write_timeout (a receive window filling up without the client reading moves a few KB at most).
MIN_PROGRESS = 64 * 1024
# struct linger {int l_onoff = 1; int l_linger = 0}: close() sends a reset and drops the send queue.
NO_LINGER = (1).to_bytes(4, sys.byteorder) + (0).to_bytes(4, sys.byteorder)
DRAIN_HEAD_SWEEPS = 2  # while draining, a request head still incomplete after this many sweeps is refused
MAX_LINGERING = 1024  # refused connections lingering at once; beyond, closed at once
NO_HEADERS = {}  # the headers of a request that never was: a new x-request-id for its error
MAX_PIPELINED_BYTES = 1024 * 1024
# Body bytes that restart the read clock: a body must bring this much per read_timeout (a client
# dripping a byte now and then cannot hold a connection for long).
BODY_PROGRESS = 16 * 1024


LINGERING = [0]  # refused connections in their lingering close, in this process


class ClientConnection:  # an asyncio protocol (asyncio and uvloop duck-type it)

    __slots__ = (
        "gateway", "transport", "parser", "queue", "queued_bytes", "current", "closing", "continue_sent",
        "wheel", "due", "quiet_since", "read_since", "write_paused_since", "writing_paused", "reading_paused",
        "refused", "peer", "linger", "write_pending", "body_mark", "feeding",
    )

    def __init__(self, gateway):
        self.gateway = gateway
        self.transport = None
        settings = gateway.settings
        # With the default forwarding policy's sets, the parser writes each request's forwarded
        # lines while it reads the head (alloy.sending.ForwardingPolicy.request_lines).
        self.parser = RequestParser(settings.max_header_bytes, settings.max_body_bytes, FORWARD_SKIP, FORWARD_SKIP_PREFIXES)
        self.queue = deque()
        self.queued_bytes = 0  # bodies of the requests in ``queue``
        self.current = None  # the call answering the request in flight, if any (alloy.call)
        self.closing = False
        self.continue_sent = False
        # The gateway's wheel; an owner without one (the separate metrics listener) calls ``tick``
        # every second instead, which sweeps a wheel of this connection's own.
        wheel = getattr(gateway, "wheel", None)
        self.wheel = TimingWheel() if wheel is None else wheel
        self.due = 0  # the sweep this connection is filed for in the wheel (0: not filed)
        self.quiet_since = 0  # the sweep count when the idle clock last restarted
        self.read_since = -1  # the sweep count when reading the current request began; -1: not reading
        self.body_mark = -1  # the parser's body bytes when the read clock last restarted; -1: head not whole
        self.write_paused_since = 0
        self.writing_paused = False
        self.reading_paused = False
        self.refused = False  # a protocol error is queued: nothing more is read
        self.linger = None  # over the cap: the timer that ends the lingering close
        self.write_pending = None  # while writing is paused: bytes the client had not taken yet
        self.peer = None  # the client's address, once asked for (peer_address)
        self.feeding = False  # data_received is handing out the requests one read completed

    def peer_address(self):
        """The client's (host, port), read from the transport once per connection: uvloop builds
        it anew on every get_extra_info call (~0.4 us), and the access log asks once a request."""
        peer = self.peer
        if peer is None and self.transport is not None:
            peer = self.peer = self.transport.get_extra_info("peername")
        return peer

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        gateway = self.gateway
        if len(gateway.connections) >= gateway.settings.max_connections:
            # Over the cap: a clear refusal now, rather than a file-descriptor shortage later that
            # would hurt the connections already being served.
            self.closing = True
            status, block, body, error = gateway.over_capacity  # with its own x-request-id, as every error
            id_line = gateway.pipeline.request_ids.line(NO_HEADERS)
            transport.write(frame_response(status, block + id_line, body, True))
            self.linger_close(transport)
            if gateway.refused is not None:  # shedding load shows in the metrics and the access log
                gateway.refused(None, self, status, error, id_line)
            return
        gateway.connections.add(self)
        wheel = self.wheel
        self.quiet_since = wheel.now
        wheel.file(self, wheel.now + sweeps(gateway.settings.keepalive_timeout))

    def data_received(self, data):
        self.quiet_since = self.wheel.now  # pushes the keep-alive deadline later: nothing to re-file
        if self.closing or self.refused:
            return
        parser = self.parser
        try:
            requests = parser.feed(data)
        except AlloyError as error:
            requests = [error]
            self.refused = True
        else:
            if parser.error is not None:  # met after the requests this data completed
                requests.append(parser.error)
                self.refused = True
        # A protocol error (last in ``requests``) is answered in its turn, after the requests
        # before it, and closes the connection: past a framing error the bytes cannot be trusted
        # to delimit another request, so nothing more is read (``refused``).
        self.feeding = True  # an answer finished meanwhile (a cache hit) must not ask for the body yet
        for request in requests:
            if self.closing:
                break  # answered with a close (or a refusal): nothing after it is answered
            self.continue_sent = False
            if self.current is None and not self.queue and not self.writing_paused:
                self.handle(request)
            else:
                self.queue.append(request)
                if type(request) is Request:
                    self.queued_bytes += len(request.body_buffer)
        self.feeding = False
        if parser.expect_continue and not self.continue_sent and not self.refused and not self.closing:
            # RFC 9110 section 10.1.1: tell the client to send the body it is holding back (not
            # when the head was refused: a 413 for its Content-Length goes out instead, at once).
            # Only once the requests before it are answered (else answer_finished does it then):
            # a 100 must not overtake their answers, nor a refusal end their connection.
            self.continue_sent = True
            if self.current is None and not self.queue:
                self.continue_or_refuse()
        if self.current is None:
            if self.read_since < 0 and parser.in_progress:
                self.start_read_clock()  # a request began and is not whole yet
            elif parser.reading_body and (self.body_mark < 0 or parser.buffered - self.body_mark >= BODY_PROGRESS):
                # A body that keeps arriving keeps its connection: an upload at a modest rate may
                # take longer than read_timeout, which then bounds each pause instead, from the
                # moment its head is whole.
                self.read_since = self.wheel.now
                self.body_mark = parser.buffered
        elif not self.reading_paused and (
            len(self.queue) > MAX_QUEUED or self.queued_bytes + parser.buffered > MAX_PIPELINED_BYTES
        ):
            self.reading_paused = True
            self.transport.pause_reading()

    def linger_close(self, transport):
        """Close after a refusal written before the client's request was read: half-close, and
        read (and drop) what the client sends until it closes or ``LINGER_SECONDS`` pass. Closing
        with its request unread would make the kernel answer with a reset, which destroys the
        refusal still on its way (RFC 9112 section 9.6)."""
        if LINGERING[0] >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        LINGERING[0] += 1
        transport.write_eof()
        self.linger = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def connection_lost(self, exc):
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
            LINGERING[0] -= 1
        self.closing = True
        self.gateway.connections.discard(self)
        self.wheel.drop(self)
        self.queue.clear()
        self.queued_bytes = 0
        current = self.current
        if current is not None:
            self.current = None
            current.client_left()  # the client is gone (alloy.call)

    def pause_writing(self):
        self.writing_paused = True
        wheel = self.wheel
        self.write_paused_since = wheel.now
        self.write_pending = _not_taken(self.transport)
        wheel.file(self, wheel.now + sweeps(self.gateway.settings.write_timeout))
        if self.current is not None:
            self.current.pause()
        # Nor is more read: answers written at once (/health, refusals) to a client that sends
        # requests and takes nothing would otherwise pile up here without bound.
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        self.writing_paused = False
        if self.current is not None:
            self.current.resume()
        self.go_on()

    # --- answering ------------------------------------------------------------------------------

    def handle(self, request):
        if type(request) is not Request:  # the protocol error that ended the byte stream
            self.refuse(request)
            return
        self.read_since = -1
        if request.version != 11:
            self.old_client(request)
        gateway = self.gateway
        try:
            answer = gateway.dispatch(request, self)
        except AlloyError as error:
            self.refuse(error, request)
            return
        except Exception as error:  # noqa: BLE001 - a bug: this request gets a 500, the gateway goes on
            if too_deep_to_write(error):  # a body nested deeper than orjson writes: the client's 400
                self.refuse(NestedTooDeeply(), request)
                return
            log.exception("unexpected error while answering %s %s", request.method.decode("latin-1"), request.target[:200].decode("latin-1"))
            self.current = None
            # In the shape of the client's API, as any refusal (Anthropic's on a Messages path).
            failure = InternalError("the gateway met an internal error answering this request")
            extra = gateway.pipeline.request_ids.line(request.headers) + self.cors_lines(request.headers)
            self.transport.write(self.closing_answer(failure, extra, request.target, request.method))
            self.close()
            return
        if answer is not None:  # a Prebuilt answer, written synchronously
            keep = request.keep_alive and not self.closes_for_drain()
            data = answer.keep_alive if keep else answer.closing
            cors = gateway.pipeline.cors
            if cors is not None:
                data = cors.added_to(answer, data, request.headers)  # a browser's (alloy.cors)
            self.transport.write(data)
            if gateway.refused is not None and request.target.startswith(b"/v1/") and 0 < answer.status < 400:
                # The gateway's own answer to a /v1/ request (the model listing, a token count):
                # counted and logged as its refusals are (reported where they are made), or the
                # endpoint would show its 404s alone.
                gateway.refused(request, self, answer.status, None, answer.id_line, answer.body_bytes)
            if not keep:
                self.close()
        # else: a call now owns the answer and calls ``answer_finished``

    def old_client(self, request):
        """An HTTP/1.0 request: its answer says ``Connection: keep-alive`` when the connection is
        kept (alloy.http10), which every writer of answers then writes through."""
        transport = self.transport
        if type(transport) is not KeepAliveAnnouncer:
            if not request.keep_alive:
                return
            transport = self.transport = KeepAliveAnnouncer(transport)
        transport.announce = request.keep_alive

    def continue_or_refuse(self):
        """A client holds its body back for ``100 Continue`` (RFC 9110 section 10.1.1): ask for it,
        unless the head alone is refused (a wrong key). Then that answer goes out now, and the
        connection closes without reading the body, lingering so the answer is not lost to a
        reset when the client sends its body anyway."""
        head = self.parser.waiting_head
        error = self.gateway.endpoints.refusal_from_head(head)
        if error is None:
            self.transport.write(CONTINUE)
            return
        self.refused = True  # nothing more is read from this connection
        gateway = self.gateway
        id_line = gateway.pipeline.request_ids.line(head.headers)
        if gateway.refused is not None:
            gateway.refused(head, self, error.status, error, id_line)
        self.closing = True
        self.queue.clear()
        self.transport.write(self.closing_answer(error, id_line + self.cors_lines(head.headers), head.target, head.method))
        self.linger_close(self.transport)

    def refuse(self, error, request=None):
        """Answer ``error`` for a request refused before a call existed, counted and logged
        (alloy.observability) with the x-request-id its answer carries (the client's, or a new
        one). ``request`` None: one the parser refused, or that did not arrive in time (413, 431,
        400, 408), with no method or path to tell; the connection closes after it."""
        gateway = self.gateway
        # A 413's or a slow body's 408's head was read: its headers are known (x-request-id, CORS).
        headers = request.headers if request is not None else getattr(error, "headers", None)
        id_line = gateway.pipeline.request_ids.line(NO_HEADERS if headers is None else headers)
        if gateway.refused is not None:
            gateway.refused(request, self, error.status, error, id_line)
        if request is None:
            extra = id_line if headers is None else id_line + self.cors_lines(headers)
            self.transport.write(self.closing_answer(error, extra, getattr(error, "target", None), self.parser.arriving_method))
            self.close()
        else:
            extra = id_line + self.cors_lines(request.headers)
            self.send_error(error, close=not request.keep_alive, extra_headers=extra, head=request.method == b"HEAD")

    def cors_lines(self, headers):
        """The CORS lines of an answer to a request with these headers (alloy.cors); b"" when not
        configured."""
        cors = self.gateway.pipeline.cors
        return b"" if cors is None else cors.lines(headers)

    def closing_answer(self, error, id_line, target=None, method=None):
        """The bytes of a refusal that closes the connection, for a ``method`` request to ``target``
        (None: not known): in Anthropic's shape on a Messages path, else OpenAI's; to a HEAD
        request, the head alone (RFC 9110 section 9.3.2)."""
        answer = None if target is None else self.gateway.pipeline.messages.refusal(error, target, id_line)
        if answer is None:
            answer = frame_response(error.status, JSON_HEADER + error.header_block + id_line, error_response_body(error), True)
        if method == b"HEAD":
            answer = answer[: answer.index(b"\r\n\r\n") + 4]
        return answer

    def answer_finished(self, keep_alive):
        """Called by the call once its answer is fully written."""
        self.current = None
        self.quiet_since = self.wheel.now  # the idle clock runs from the answer's end
        if not keep_alive or self.closing or self.closes_for_drain():
            self.close()
            return
        if self.queue or self.reading_paused:
            self.go_on()  # pipelined requests wait, or reading waits for them
            return
        # The common case, inline (it runs for every answer): nothing waits.
        parser = self.parser
        if self.read_since < 0 and parser.in_progress:
            self.start_read_clock()  # the next request was only partly read while this one was served
        if parser.expect_continue and not self.feeding:
            self.continue_or_refuse()

    def go_on(self):
        """Serve what waits (pipelined requests), and read again when the bounds allow: after an
        answer, or once the client takes its answers again."""
        queue = self.queue
        while queue and self.current is None and not self.closing and not self.writing_paused:
            request = queue.popleft()
            if type(request) is Request:
                self.queued_bytes -= len(request.body_buffer)
                if self.gateway.stopped is not None:  # the shutdown's deadline: answered, not served
                    self.refuse(self.gateway.stopped, request)  # the last one closes (closes_for_drain)
                    continue
            self.handle(request)
        if self.reading_paused and not self.closing and not self.writing_paused and (
            # Nothing in flight: the request being read must be read to be served, whatever its size.
            self.current is None
            or (len(queue) <= MAX_QUEUED // 2 and self.queued_bytes + self.parser.buffered <= MAX_PIPELINED_BYTES // 2)
        ):
            self.reading_paused = False
            self.transport.resume_reading()
        if self.current is None:
            parser = self.parser
            if self.read_since < 0 and parser.in_progress:
                self.start_read_clock()  # the next request was only partly read while this one was served
            if parser.expect_continue and not queue and not self.feeding:
                self.continue_or_refuse()

    def send_error(self, error, close=False, extra_headers=None, head=False, request=None):
        """Answer ``error`` OpenAI-shaped; to a HEAD request, the same head without its body.
        ``extra_headers`` is a call's (its x-request-id first); None: answered before any call (a
        refused or malformed request, a timeout), which gets an x-request-id all the same (the
        client's, from ``request`` when there is one)."""
        close = close or self.closes_for_drain()
        if extra_headers is None:
            extra_headers = self.gateway.pipeline.request_ids.line(NO_HEADERS if request is None else request.headers)
        body = error_response_body(error)
        headers = JSON_HEADER + error.header_block + extra_headers
        answer = frame_response(error.status, headers, body, close)
        self.transport.write(answer[: -len(body)] if head else answer)
        if close:
            self.close()

    def closes_for_drain(self):
        """While the gateway drains, a connection closes after the answer being written, unless
        requests it already received wait behind it (pipelined): those are answered too, and the
        last answer closes it. Nothing a client sent before the signal is dropped unanswered."""
        return self.gateway.draining and not self.queue

    def close(self):
        self.closing = True
        self.queue.clear()
        self.queued_bytes = 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # flushes what is buffered, then closes

    # --- timeouts: the timing wheel of the server's once-a-second sweep ---------------------------

    def start_read_clock(self):
        """Reading a request began (or resumed counting once the answer before it ended): its read
        timeout may fall before the keep-alive deadline this connection is filed for."""
        wheel = self.wheel
        self.read_since = wheel.now
        self.body_mark = -1  # the body's clock starts when its head is whole
        wheel.file(self, wheel.now + sweeps(self.gateway.settings.read_timeout))

    def on_due(self, now):
        """The sweep this connection was filed for: enforce the write, read and keep-alive timeouts
        (in that order, as a visit every second would) and close it if idle while draining; else
        file it again for its next deadline."""
        gateway = self.gateway
        settings = gateway.settings
        if self.writing_paused:
            write_deadline = self.write_paused_since + sweeps(settings.write_timeout)
            if now >= write_deadline:
                pending = _not_taken(self.transport)
                if pending is not None and self.write_pending is not None and pending <= self.write_pending - MIN_PROGRESS:
                    # It reads, slowly: the kernel wakes the writer only once half its (megabytes
                    # of) send buffer is free, so progress is read here. The clock restarts.
                    self.write_paused_since = now
                    self.write_pending = pending
                    write_deadline = now + sweeps(settings.write_timeout)
                else:
                    # The client reads nothing: drop it, and its upstream request now (before the
                    # transport reports the loss, more of the answer would be written to nobody).
                    self.closing = True
                    current = self.current
                    if current is not None:
                        self.current = None
                        current.client_left()
                    reset(self.transport)
                    return
        if self.current is not None:
            # An answer is in flight: no read or idle clock runs. The idle clock restarts when it
            # ends, so no keep-alive deadline falls before this; a read clock that starts then
            # files this connection earlier itself.
            next_due = now + sweeps(settings.keepalive_timeout)
        elif self.parser.in_progress:
            if self.read_since < 0:  # not expected: every start of a read starts the clock
                self.read_since = now - 1
            next_due = self.read_since + sweeps(settings.read_timeout)
            if now >= next_due:
                error = RequestTimeout("the request was not received in time")
                # A slow body's head is known: a browser's request gets its CORS lines (refuse).
                error.headers = self.parser.arriving_headers
                self.refuse(error)
                return
            if gateway.draining and not self.parser.reading_body and now - self.read_since >= DRAIN_HEAD_SWEEPS:
                # A head still incomplete well into the drain (a stalled or slowloris client) would
                # hold the shutdown for read_timeout: it is refused now, a body under way is not.
                self.refuse(ServiceUnavailable("the gateway is shutting down"))
                return
        else:
            if gateway.draining and not self.queue:
                self.close()
                return
            next_due = self.quiet_since + sweeps(settings.keepalive_timeout)
            if now >= next_due:
                self.close()
                return
        if gateway.draining:
            next_due = now + 1  # while draining, every connection is looked at each sweep
        elif self.writing_paused and write_deadline < next_due:
            next_due = write_deadline
        self.wheel.file(self, next_due)

    def tick(self, settings, draining):
        """One sweep of this connection alone, for an owner that visits each of its connections every
        second rather than keeping a wheel (the separate metrics listener); ``settings`` and
        ``draining`` are its owner's, which ``on_due`` reads there."""
        wheel = self.wheel
        if draining:
            wheel.file(self, wheel.now + 1)
        wheel.advance()


def reset(transport):
    """Close with a reset (RFC 9293 section 3.6.1's abort): the kernel drops what the client never
    took instead of keeping the socket, orphaned, to send it (megabytes a connection, for minutes,
    outside ``max_connections``), as nginx's ``reset_timedout_connection`` does."""
    try:
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, NO_LINGER)
    except (AttributeError, OSError):  # no socket to reach (a test's transport): the abort alone
        pass
    transport.abort()


def _not_taken(transport):
    """Bytes written for the client that it has not taken yet: the transport's buffer and the
    kernel's send queue (``TIOCOUTQ``); None where the queue cannot be read (not Linux, no socket)."""
    try:
        import fcntl
        import termios

        queued = fcntl.ioctl(transport.get_extra_info("socket").fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return int.from_bytes(queued, sys.byteorder) + transport.get_write_buffer_size()
    except (ImportError, AttributeError, OSError, TypeError, ValueError):
        return None


def over_capacity_answer(settings):
    """The 503 a connection beyond ``max_connections`` gets before it is closed: (status, header
    block, body, the error), built once; each refusal adds its x-request-id."""
    error = TooManyConnections(
        f"the gateway already serves its maximum of {settings.max_connections} connections; retry shortly"
    )
    return error.status, JSON_HEADER + error.header_block, error_response_body(error), error
