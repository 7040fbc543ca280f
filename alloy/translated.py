"""Requests to providers that speak another API (Anthropic, Gemini): decode, translate, relay back.

Unlike the passthrough, this path must decode the client's JSON (the provider needs a different
document) and, for a complete response, read the provider's answer whole before translating it:
that read is capped at ``[server] max_buffered_response_bytes`` (past it the client gets a 502
``upstream_response_too_large`` and the upstream connection is dropped), and an error answer held
for a possible retry at ``HOLD_LIMIT``, so an upstream cannot make the gateway buffer without end.
Streams are translated event by event as they arrive: the core ``SSESplitter`` cuts the provider's
event stream, the provider's ``StreamTranslator`` turns each event into OpenAI chunks, and each
upstream read is written to the client at once.
"""

import orjson

from alloy.core import LAST_CHUNK, SSESplitter, frame_chunk, frame_response, frame_stream_head
from alloy.errors import InvalidRequest, ResponseTooLarge, error_payload
from alloy.headers import NOT_FORWARDED_TRANSLATED
from alloy.providers import TranslateSettings
from alloy.upstream import UpstreamRequest

HOLD_LIMIT = 1024 * 1024  # an error answer held for a possible retry (the same cap as passthrough)

JSON_HEADER = b"content-type: application/json\r\n"
EVENT_STREAM_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


class Translation:
    """A provider whose API needs translating, with what is built once for it."""

    translates = True

    def __init__(self, provider, upstream, translator, forwarding, max_buffered):
        self.name = provider.name
        self.name_bytes = provider.name.encode()
        self.translator = translator
        self.upstream = upstream
        self.base_path = upstream.origin.base_path.encode()
        self.host_line = b"host: " + upstream.origin.host_header.encode() + b"\r\n"
        self.settings = TranslateSettings(
            api_key=provider.api_key,
            api_version=provider.api_version,
            max_tokens_default=provider.max_tokens_default,
        )
        self.forwarding = forwarding  # a proxy.ForwardingPolicy over NOT_FORWARDED_TRANSLATED
        self.max_buffered = max_buffered

    def send(self, plan, deployment, served_by, total_ticks):
        """Start one attempt of ``plan``'s request on ``deployment``; returns its exchange."""
        request = plan.request
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("request body is not valid JSON") from None
        model = deployment.upstream_model or plan.model_name
        translated = self.translator.build_request(body, model, plan.endpoint, self.settings)
        # The client's other headers travel on (tracing...), except those the translated call
        # sets itself and those the provider's forwarding policy drops.
        skip = frozenset(name for name, _ in translated.headers)
        forwarding = self.forwarding
        lines = [self.host_line, forwarding.configured_lines, forwarding.lines(request.headers, skip), plan.id_line]
        lines.extend(name + b": " + value + b"\r\n" for name, value in translated.headers)
        upstream_request = UpstreamRequest(
            translated.method,
            self.base_path + translated.path,
            b"".join(lines),
            [translated.body],
            len(translated.body),
            deployment.timeouts,
            total_ticks,
        )
        stream_options = body.get("stream_options") or {}
        include_usage = bool(stream_options.get("include_usage")) if isinstance(stream_options, dict) else False
        exchange = TranslatedExchange(
            plan, request.keep_alive, plan.id_line + served_by, self.translator, model, plan.endpoint,
            translated.stream, include_usage, self.max_buffered,
        )  # fmt: skip
        exchange.handle = self.upstream.start(upstream_request, exchange)
        return exchange


class TranslatedExchange:
    """The sink of one translated attempt (see ``alloy.upstream`` for the sink interface, and
    ``ProxyExchange`` for holding an answer another attempt may replace)."""

    def __init__(self, plan, keep_alive, extra_headers, translator, model, endpoint, stream, include_usage, max_buffered):
        self.plan = plan
        self.connection = plan.connection
        self.transport = self.connection.transport
        self.keep_alive = keep_alive
        self.extra_headers = extra_headers
        self.translator = translator
        self.model = model
        self.endpoint = endpoint
        self.stream = stream
        self.include_usage = include_usage
        self.handle = None
        self.status = 0
        self.pieces = []  # a complete (or error) response, read whole before translating
        self.buffered = 0  # bytes in ``pieces`` (or ``held``)
        self.max_buffered = max_buffered
        self.splitter = None  # set when relaying a stream
        self.events = None
        self.held = None  # an answer another attempt may replace: [head, body pieces...]
        self.kept_headers = b""  # of an error answer: the provider's Retry-After, for the client
        self.finished = False

    # --- the sink interface -------------------------------------------------------------------------

    def upstream_events(self, events):
        if self.finished:
            return
        if self.held is not None:
            self.held.extend(events)
            self.buffered += sum(len(event) for event in events)
            if self.buffered > HOLD_LIMIT:
                self._overflow(HOLD_LIMIT, "error answer")
            return
        out = []
        for event in events:
            if type(event) is not bytes:
                if event.status >= 400 and self.plan.holds(event.status):
                    self.held = list(events)
                    self.buffered = sum(len(piece) for piece in events[1:])
                    return
                if self.plan.measuring:
                    self.plan.first_byte()
                self._head(event, out)
            elif self.splitter is not None:
                for name, data in self.splitter.feed(event):
                    out.extend(frame_chunk(chunk) for chunk in self.events.feed(name, data))
            else:
                self.pieces.append(event)
                self.buffered += len(event)
                if self.buffered > self.max_buffered:
                    return self._overflow(self.max_buffered, "answer")
        if out:
            self.transport.writelines(out)

    def _overflow(self, limit, what):
        """The answer outgrew what may be held: drop it and the upstream connection; the client
        gets Alloy's 502 (as the final answer: the next attempt would be as large)."""
        self.pieces = self.held = None
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()
        self.plan.failed_for_good(ResponseTooLarge(f"the upstream's {what} exceeded the gateway's limit of {limit} bytes"))

    def upstream_done(self):
        if self.finished:
            return
        self.finished = True
        if self.held is not None:
            self.plan.failed_with_answer(self)
            return
        self.plan.succeeded()
        self._end()

    def upstream_failed(self, error):
        if self.finished:
            return
        self.finished = True
        if self.splitter is None:
            self.plan.failed_with_error(error)
            return
        # The stream started: end it with an OpenAI-style error event, cleanly framed.
        self.plan.broke_off()
        connection = self.connection
        event = b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"
        self.transport.writelines([frame_chunk(event), frame_chunk(b"data: [DONE]\n\n"), LAST_CHUNK])
        connection.current = None
        connection.close()

    # --- called by Attempts -------------------------------------------------------------------------

    def relay_held(self):
        head, *self.pieces = self.held
        self.held = None
        self._head(head, [])  # an error head: its status and Retry-After, no stream to start
        self._end()

    def cancel(self):
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()

    def pause(self):
        if self.handle is not None and not self.finished:
            self.handle.pause_reading()

    def resume(self):
        if self.handle is not None and not self.finished:
            self.handle.resume_reading()

    # --- internals -------------------------------------------------------------------------------------

    def _end(self):
        if self.splitter is not None:
            out = []
            for name, data in self.splitter.flush():
                out.extend(frame_chunk(chunk) for chunk in self.events.feed(name, data))
            out.extend(frame_chunk(chunk) for chunk in self.events.finish())
            out.append(LAST_CHUNK)
            self.transport.writelines(out)
        else:
            status, body = self.translator.translate_response(self.status, b"".join(self.pieces), self.model, self.endpoint)
            close = self._closing()
            headers = JSON_HEADER + self.extra_headers + self.kept_headers
            self.transport.write(frame_response(status, headers, body, close))
        self.connection.exchange_finished(self.keep_alive)

    def _closing(self):
        close = not self.keep_alive or self.connection.gateway.draining
        if close:
            self.keep_alive = False
        return close

    def _head(self, head, out):
        self.status = head.status
        if head.status >= 400:
            self.kept_headers = _retry_after_lines(head)
        if self.stream and head.status == 200:
            self.splitter = SSESplitter()
            self.events = self.translator.StreamTranslator(self.model, self.include_usage)
            out.append(frame_stream_head(200, EVENT_STREAM_HEADERS + self.extra_headers, self._closing()))


def _retry_after_lines(head):
    """A provider's ``retry-after`` (and OpenAI-style ``retry-after-ms``), kept on a translated
    error so SDKs back off as the provider asked."""
    lines = []
    for name in (b"retry-after", b"retry-after-ms"):
        value = head.get(name)
        if value is not None:
            lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines)
