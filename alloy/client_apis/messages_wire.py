"""A Messages call's answer as its client must see it: what the relay writes, read back and written
again in Anthropic's shape.

A ``/v1/messages`` call (``alloy.client_apis.messages_endpoint``) runs through the ordinary call and
relay stages (``alloy.call``, ``alloy.relay``), which write an HTTP/1.1 answer to the connection's
``transport``. For a Messages call that transport is a ``MessagesTransport``: it reads those bytes
back with the core ``ResponseParser`` (they are well-formed: the relay framed them) and writes the
client's answer to the real transport. Which answer it is, is decided by the head, from the provider
of the deployment whose relay is writing: the ``deployment`` of the connection's ``current`` call (a
relayed answer is always its latest attempt's; the transport keeps no reference to the call, so the
two make no reference cycle):

    the relay wrote                     the client gets
    an Anthropic provider's answer      the same bytes (native passthrough, ``messages_native``);
                                        only Alloy's own "the stream broke off" event, which the
                                        relay writes OpenAI-shaped, is rewritten as an Anthropic
                                        ``error`` event
    200 text/event-stream               200 text/event-stream: each relay write's OpenAI chunks
                                        translated at once (``MessagesStreamTranslator``), one client
                                        write per relay write, then the end of the chunked body
    200 JSON, the client streams        the same event sequence made from the complete answer (an
                                        upstream that ignored ``stream``)
    200 JSON                            the Message (``messages_response_from_chat``) once complete
    an error status                     the same status with Anthropic's error body
                                        (``anthropic_error_body``); ``retry-after`` and the other
                                        headers kept
The translated answers keep the relay's headers (``x-request-id``, also as ``request-id``, the name
Anthropic and its SDK use; ``x-alloy-*``; the provider's
``retry-after`` and rate-limit headers) except framing and those describing the OpenAI body
(``NOT_KEPT``). A complete answer is held at most ``max_buffered`` bytes (the server's
``max_buffered_response_bytes``): past that, or when what came back cannot be translated, the
client gets Alloy's 502 in Anthropic's shape while nothing of the answer has reached it yet, else
an ``error`` event that ends the stream.
"""

import logging

import orjson

from alloy.client_apis.messages_response import (
    anthropic_error,
    anthropic_error_body,
    anthropic_error_type,
    messages_response_from_chat,
    stream_error_type,
)
from alloy.client_apis.messages_stream import MessagesStreamTranslator, sse_event
from alloy.core import (
    LAST_CHUNK,
    ResponseParser,
    find_usage,
    SSESplitter,
    encode_headers,
    frame_chunk,
    frame_head,
    frame_response,
    frame_stream_head,
)
from alloy.errors import AlloyError, ResponseTooLarge, UpstreamProtocolError
from alloy.headers import EVENT_STREAM_HEADERS, HOP_BY_HOP, JSON_HEADER

log = logging.getLogger("alloy")

# Relay head fields a translated answer does not keep: framing, and what describes the OpenAI body.
NOT_KEPT = frozenset(HOP_BY_HOP | {b"content-type", b"content-encoding", b"cache-control", b"etag"})
# How alloy.relay ends a stream that broke off: one OpenAI error event (error_payload), then the end.
ALLOY_STREAM_ERROR = b'data: {"error":{"message":'

# What the transport is doing with the answer being written.
HEAD, NATIVE, STREAM, WHOLE, ERROR, OVER = range(6)
MAX_OPENING = 64 * 1024  # a native stream's bytes read for its message_start, at most
MAX_TAIL = 16 * 1024  # ... and kept from its end, for message_delta's usage


def anthropic_error_answer(error, headers=b"", close=False):
    """Alloy's ``error`` (an ``AlloyError``) as a whole Anthropic-shaped response."""
    body = orjson.dumps(anthropic_error(anthropic_error_type(error.status), error.message))
    return frame_response(error.status, JSON_HEADER + error.header_block + with_request_id(headers), body, close)


def with_request_id(headers):
    """A call's answer headers (its x-request-id line first) with the same id as ``request-id``,
    the name Anthropic's answers and SDK use (once: a translated answer's headers may have it)."""
    if headers.startswith(b"x-request-id: ") and b"\nrequest-id: " not in headers:
        return headers + headers[2 : headers.index(b"\r\n") + 2]
    return headers


def message_events(message):
    """A complete Message as the stream events Anthropic would have sent for it."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 0},
    }
    out = [sse_event(b"message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            opening, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block["thinking"]}
        else:  # tool_use
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        out.append(
            sse_event(b"content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})
        )
        out.append(sse_event(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(sse_event(b"content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    out.append(sse_event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    out.append(sse_event(b"message_stop", {"type": "message_stop"}))
    return out


class MessagesConnection:
    """The client connection as a Messages call sees it: what ``alloy.call`` and ``alloy.relay`` use of
    a connection, with answers in Anthropic's shape. ``transport`` is the call's ``MessagesTransport``;
    ``current`` is the real connection's, so its cancel, pause and resume reach the call; Alloy's own
    errors (``send_error``) are written Anthropic-shaped. It also carries the client's Messages request
    as it came (``request``, its ``scan``, ``path``, ``query``) for an attempt that sends it natively
    (``alloy.client_apis.messages_native``)."""

    __slots__ = ("real", "transport", "gateway", "request", "scan", "path", "query")

    def __init__(self, real, transport, request, scan, path, query):
        self.real = real  # alloy.client_connection.ClientConnection
        self.transport = transport
        self.gateway = real.gateway
        self.request = request
        self.scan = scan
        self.path = path  # b"/v1/messages" or b"/v1/messages/count_tokens"
        self.query = query  # b"" or b"?beta=true"...
        transport.old_client = request is not None and request.version < 11  # its streams cannot be chunked (RFC 9112 6.1)

    @property
    def current(self):
        return self.real.current

    def peer_address(self):
        return self.real.peer_address()

    @current.setter
    def current(self, call):
        self.real.current = call

    def send_error(self, error, close=False, extra_headers=b"", head=False):
        close = close or self.real.closes_for_drain()
        self.transport.state = OVER
        self.real.transport.write(anthropic_error_answer(error, extra_headers, close))
        if close:
            self.real.close()

    def closes_for_drain(self):
        return self.real.closes_for_drain()

    def answer_finished(self, keep_alive):
        # A stream to an HTTP/1.0 client ends when the connection closes.
        self.real.answer_finished(keep_alive and not self.transport.until_close)

    def close(self):
        """The relay ends an answer early (its upstream broke off after the head): one read back
        only in part is said as such (``MessagesTransport.abort``: Alloy's 502 when nothing
        reached the client yet, else the stream's error event), then the connection closes."""
        if self.transport.state in (HEAD, WHOLE, ERROR, STREAM):
            self.transport.abort()
        else:
            self.real.close()


class MessagesTransport:
    """The transport a Messages call's relays write to (see the module docstring)."""

    names_request_id = True  # Anthropic names its request id ``request-id`` (x-request-id stays too)
    client_api = "Messages"
    __slots__ = (
        "connection", "real", "model", "stream", "input_tokens", "max_buffered", "parser", "state", "status",
        "closing", "kept", "event_stream", "head_bytes", "pieces", "buffered", "splitter", "translator", "started",
        "old_client", "until_close", "opening", "start_usage", "tail", "sent", "tool_names",
    )  # fmt: skip

    def __init__(self, connection, model, stream, max_buffered, input_tokens=0, tool_names=None):
        self.connection = connection  # the client's connection (alloy.client_connection)
        self.real = connection.transport  # and its transport
        self.model = model  # the name the client asked for: what a translated answer says
        self.stream = stream  # the client asked for a stream
        self.input_tokens = input_tokens  # message_start's estimate until the real count comes
        self.tool_names = tool_names  # the client's long tool names by the short ones sent upstream
        self.max_buffered = max_buffered
        self.parser = ResponseParser()
        self.state = HEAD
        self.status = 0
        self.closing = False  # the relay's head said the connection closes after this answer
        self.kept = b""  # the relay's header lines a translated answer keeps
        self.event_stream = False
        self.head_bytes = b""  # what came before the head was complete
        self.pieces = []
        self.buffered = 0
        self.splitter = None
        self.translator = None
        self.started = False  # something of the answer reached the client
        self.old_client = False  # an HTTP/1.0 client (set by its MessagesConnection)
        self.until_close = False  # a stream head went out close-delimited: the connection ends it
        self.opening = None  # a native stream's first bytes, until its message_start is whole
        self.start_usage = None  # ... and that event's usage: the stream's input tokens
        self.tail = None  # a native stream's last bytes (MAX_TAIL at most): its final usage is there
        self.sent = 0  # body bytes of a translated answer written to the client (the access log's bytes_out)

    # --- what the relay and the call use of a transport ----------------------------------------------

    def write(self, data):
        if self.state == OVER:
            return
        try:
            events = self.parser.feed(data)
        except UpstreamProtocolError as error:  # cannot happen with a relay's own framing; still safe
            return self._broken(f"the answer could not be read back: {error.message}")
        if self.state == HEAD:
            if not events:  # a head split across writes (the relay writes it whole; still)
                self.head_bytes += data
                return
            if self._native(events[0]):
                return self._native_write(self.head_bytes + data, events)
        elif self.state == NATIVE:
            return self._native_write(data, events)
        out = []
        try:
            for event in events:
                if type(event) is bytes:
                    self._piece(event, out)
                else:
                    self._head(event, out)
            if self.parser.done and self.state != OVER:
                self._complete(out)
        except AlloyError as error:
            if out:
                self.real.writelines(out)
            return self._broken(error.message, error)
        except Exception:  # noqa: BLE001 - an answer shaped past what the translation reads, or a bug
            log.exception("an answer could not be translated for a %s client", self.client_api)
            if out:
                self.real.writelines(out)
            return self._broken("the upstream's answer could not be translated (the gateway's log says why)")
        if out:
            self.started = True
            self.real.writelines(out)
            call = self.connection.current
            if call is not None:
                call.bytes_out = self.sent  # what the client got, not the chat completion read back

    def writelines(self, pieces):
        self.write(b"".join(pieces))

    def abort(self):
        """The relay gives up on an answer it framed with a length and could not finish."""
        if self.state == OVER:  # Alloy's answer was written instead: let it reach the client
            return
        if self.state == NATIVE:
            self.state = OVER
            self.real.abort()
            return
        self._broken("the upstream failed before its answer was complete")

    def close(self):
        self.real.close()

    def is_closing(self):
        return self.real.is_closing()

    def get_extra_info(self, name, default=None):
        return self.real.get_extra_info(name, default)

    # --- native answers ------------------------------------------------------------------------------

    def _native(self, head):
        call = self.connection.current  # the call writing (no reference of ours: no cycle)
        deployment = call.deployment if call is not None else None  # its latest attempt's
        if deployment is None or not getattr(deployment.provider, "messages_native", False):
            return False
        self.state = NATIVE
        content_type = head.get(b"content-type")
        self.event_stream = content_type is not None and content_type.startswith(b"text/event-stream")
        self.until_close = self.old_client and self.event_stream  # as the relay framed it
        if self.event_stream:
            self.opening = bytearray()
            self.tail = bytearray()
        return True

    def _native_write(self, data, events):
        last = events[-1] if events else None
        if (
            self.started
            and self.event_stream
            and self.parser.done
            and type(last) is bytes
            and last.startswith(ALLOY_STREAM_ERROR)
        ):
            # The relay's own end of a stream that broke off: said the way Anthropic says it.
            out = [self._chunk(piece) for piece in events[:-1]]
            out.extend((self._chunk(stream_error_event(last)), *self._last_chunk()))
            self.real.writelines(out)
        else:
            self.real.write(data)
        self.started = True
        if self.event_stream:
            self._native_usage(events)
        if self.parser.done:
            self.state = OVER

    def _native_usage(self, pieces):
        """Anthropic gives a stream's input tokens in ``message_start`` only (``message_delta``'s
        usage may have the output tokens alone), and the call reads its usage from the last events:
        so the first event's usage is read as the stream passes, and at its end the two go to the
        call together (the later counts winning), for the limits, the spend and the ledger."""
        for piece in pieces:
            if type(piece) is not bytes:
                continue
            if self.opening is not None:
                self.opening += piece
                usage = _first_usage(self.opening)
                if usage is not None or len(self.opening) > MAX_OPENING:
                    self.start_usage, self.opening = usage, None
            tail = self.tail
            tail += piece
            if len(tail) > 2 * MAX_TAIL:
                del tail[:-MAX_TAIL]
        call = self.connection.current
        if self.parser.done and self.start_usage and call is not None:
            final = find_usage(bytes(self.tail))
            call.usage_known({**self.start_usage, **(final if type(final) is dict else {})})

    # --- translated answers --------------------------------------------------------------------------

    def _head(self, head, out):
        self.status = head.status
        self.closing = not head.keep_alive
        self.kept = encode_headers(head.headers, NOT_KEPT)
        request_id = head.get(b"x-request-id")
        if self.names_request_id and request_id is not None and head.get(b"request-id") is None:
            self.kept += b"request-id: " + request_id + b"\r\n"  # where the anthropic SDK reads it
        if not 200 <= head.status < 300:
            self.state = ERROR
            return
        content_type = head.get(b"content-type") or b""
        if self.stream and content_type.startswith(b"text/event-stream"):
            self.state = STREAM
            self.splitter = SSESplitter()
            self.translator = self._stream_translator()
            out.append(self._stream_head(EVENT_STREAM_HEADERS + self.kept))
        else:
            self.state = WHOLE

    def _stream_head(self, block):
        """A stream's head: chunked, or for an HTTP/1.0 client ended by closing the connection."""
        if self.old_client:
            self.until_close = True
            return frame_head(200, block, -1, True)
        return frame_stream_head(200, block, self.closing)

    def _chunk(self, data):
        return data if self.until_close else frame_chunk(data)

    def _body(self, data):
        """A piece of a translated stream, counted and framed."""
        self.sent += len(data)
        return self._chunk(data)

    def _last_chunk(self):
        return () if self.until_close else (LAST_CHUNK,)

    def _stream_translator(self):
        """What turns the OpenAI stream into the client API's events (the Responses transport
        builds its own)."""
        return MessagesStreamTranslator(self.model, self.input_tokens, self.tool_names)

    def _piece(self, piece, out):
        if self.state == STREAM:
            translated = []
            for _, data in self.splitter.feed(piece):
                translated.extend(self.translator.feed(data))
            if translated:
                out.append(self._body(b"".join(translated)))
            return
        self.pieces.append(piece)
        self.buffered += len(piece)
        if self.buffered > self.max_buffered:
            self.pieces = []
            raise ResponseTooLarge(f"the upstream's answer exceeded the gateway's limit of {self.max_buffered} bytes")

    def _complete(self, out):
        state = self.state
        self.state = OVER
        if state == STREAM:
            translated = []
            for _, data in self.splitter.flush():
                translated.extend(self.translator.feed(data))
            translated.extend(self.translator.finish())
            if translated:
                out.append(self._body(b"".join(translated)))
            out.extend(self._last_chunk())
            return
        body = b"".join(self.pieces)
        self.pieces = []
        if state == ERROR:
            body = self._error_body(body)
            self.sent += len(body)
            out.append(frame_response(self.status, JSON_HEADER + self.kept, body, self.closing))
            return
        try:
            chat = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("the upstream answer is not JSON") from None
        if self.stream:
            events = self._answer_events(chat)
            head = self._stream_head(EVENT_STREAM_HEADERS + self.kept)
            out.extend((head, self._body(b"".join(events)), *self._last_chunk()))
        else:
            body = orjson.dumps(self._answer(chat))
            self.sent += len(body)
            out.append(frame_response(200, JSON_HEADER + self.kept, body, self.closing))

    # What the client API makes of a complete answer (the Responses transport has its own).

    def _error_body(self, body):
        """The upstream's OpenAI-shaped error body in the client API's shape."""
        return anthropic_error_body(self.status, body)

    def _answer(self, chat):
        """A complete chat completion as the client API's answer object."""
        return messages_response_from_chat(chat, self.model, self.tool_names)

    def _answer_events(self, chat):
        """A complete chat completion as the client API's stream events (a client that asked for a
        stream of an answer that came whole)."""
        return message_events(self._answer(chat))

    def _error_answer(self, error):
        """Alloy's own error, framed in the client API's shape (the connection closes after it)."""
        return anthropic_error_answer(error, self.kept, close=True)

    def _broken(self, message, error=None):
        """The answer cannot be given as it came: Alloy's 502 if nothing reached the client yet, else
        an ``error`` event ending the stream; the connection then closes (the upstream answer, if any
        is still coming, is dropped with it)."""
        state = self.state
        self.state = OVER
        self.pieces = []
        call = self.connection.current
        if error is None and call is not None:
            error = call.error  # what ended the upstream's answer (the relay says so on the call)
        if error is None or error.status < 500:
            error = UpstreamProtocolError(message)
        if call is not None:
            call.status = error.status if state != STREAM and not self.started else 502
        if state == STREAM or self.started:
            if self.translator is not None and not self.translator.done:
                self.real.writelines([self._chunk(b"".join(self.translator.fail(message))), *self._last_chunk()])
            elif self.translator is not None:  # the client has its whole stream: its body still ends
                self.real.writelines(self._last_chunk())
            self.connection.close()
            return
        self.real.write(self._error_answer(error))
        self.started = True
        self.connection.close()


def _first_usage(opening):
    """The usage of the first event in a stream's ``opening`` bytes that names one (its
    ``message_start``), once that event is whole; None before."""
    at = opening.find(b'"usage"')
    if at < 0:
        return None
    ends = [end for end in (opening.find(mark, at) for mark in (b"\n\n", b"\r\n\r\n", b"\r\r")) if end >= 0]
    if not ends:
        return None  # the event goes on in the next piece
    usage = find_usage(bytes(opening[: min(ends)]))
    return usage if type(usage) is dict else {}


def stream_error_event(openai_event):
    """The relay's ``data: {"error": {...}}`` event as Anthropic's ``error`` event."""
    try:
        error = orjson.loads(openai_event[len(b"data: ") :])["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        error = None
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    message = message if isinstance(message, str) and message else "upstream stream error"
    return sse_event(b"error", anthropic_error(stream_error_type(error), message))
