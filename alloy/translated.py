"""Requests to providers that speak another API (Anthropic, Gemini): decode, translate, relay back.

Unlike the passthrough, this path must decode the client's JSON (the provider needs a different
document) and, for a complete response, read the provider's answer whole before translating it.
Streams are translated event by event as they arrive: the core ``SSESplitter`` cuts the provider's
event stream, the provider's ``StreamTranslator`` turns each event into OpenAI chunks, and each
upstream read is written to the client at once.
"""

import orjson

from alloy.core import LAST_CHUNK, SSESplitter, encode_forwarded, frame_chunk, frame_response, frame_stream_head
from alloy.errors import InvalidRequest, error_payload
from alloy.headers import NOT_FORWARDED_TRANSLATED
from alloy.providers import TranslateSettings
from alloy.upstream import UpstreamRequest

JSON_HEADER = b"content-type: application/json\r\n"
EVENT_STREAM_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


class Translation:
    """A provider whose API needs translating, with what is built once for it."""

    translates = True

    def __init__(self, provider, upstream, translator):
        self.name = provider.name
        self.provider_header = b"x-alloy-provider: " + provider.name.encode() + b"\r\n"
        self.translator = translator
        self.upstream = upstream
        self.base_path = upstream.origin.base_path.encode()
        self.host_line = b"host: " + upstream.origin.host_header.encode() + b"\r\n"
        self.settings = TranslateSettings(
            api_key=provider.api_key,
            api_version=provider.api_version,
            max_tokens_default=provider.max_tokens_default,
        )
        extra = [name.lower().encode() + b": " + value.encode() + b"\r\n" for name, value in provider.headers]
        self.extra_lines = b"".join(extra)

    def send(self, request, endpoint, upstream_model, extra_headers, id_line, connection):
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("request body is not valid JSON") from None
        call = self.translator.build_request(body, upstream_model, endpoint, self.settings)
        # The client's other headers travel on (tracing, provider beta flags), except those the
        # translated call sets itself.
        skip = NOT_FORWARDED_TRANSLATED | {name for name, _ in call.headers}
        lines = [self.host_line, self.extra_lines, encode_forwarded(request.headers, skip), id_line]
        lines.extend(name + b": " + value + b"\r\n" for name, value in call.headers)
        upstream_request = UpstreamRequest(
            call.method, self.base_path + call.path, b"".join(lines), [call.body], len(call.body)
        )
        stream_options = body.get("stream_options") or {}
        include_usage = bool(stream_options.get("include_usage")) if isinstance(stream_options, dict) else False
        exchange = TranslatedExchange(
            connection, request, extra_headers, self.translator, upstream_model, endpoint, call.stream, include_usage
        )
        connection.current = exchange
        exchange.handle = self.upstream.start(upstream_request, exchange)


class TranslatedExchange:
    """The sink of one translated exchange (see ``alloy.upstream`` for the sink interface)."""

    def __init__(self, connection, request, extra_headers, translator, model, endpoint, stream, include_usage):
        self.connection = connection
        self.transport = connection.transport
        self.keep_alive = request.keep_alive
        self.extra_headers = extra_headers
        self.translator = translator
        self.model = model
        self.endpoint = endpoint
        self.stream = stream
        self.include_usage = include_usage
        self.handle = None
        self.status = 0
        self.pieces = []  # a complete (or error) response, read whole before translating
        self.splitter = None  # set when relaying a stream
        self.events = None
        self.finished = False

    # --- the sink interface -------------------------------------------------------------------------

    def upstream_events(self, events):
        if self.finished:
            return
        out = []
        for event in events:
            if type(event) is not bytes:
                self._head(event, out)
            elif self.splitter is not None:
                for name, data in self.splitter.feed(event):
                    out.extend(frame_chunk(chunk) for chunk in self.events.feed(name, data))
            else:
                self.pieces.append(event)
        if out:
            self.transport.writelines(out)

    def upstream_done(self):
        if self.finished:
            return
        self.finished = True
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
            self.transport.write(frame_response(status, JSON_HEADER + self.extra_headers, body, close))
        self.connection.exchange_finished(self.keep_alive)

    def upstream_failed(self, error):
        if self.finished:
            return
        self.finished = True
        connection = self.connection
        if self.splitter is None:
            connection.current = None
            connection.send_error(error, close=not self.keep_alive, extra_headers=self.extra_headers)
            if self.keep_alive:
                connection.exchange_finished(True)
            return
        # The stream started: end it with an OpenAI-style error event, cleanly framed.
        event = b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"
        self.transport.writelines([frame_chunk(event), frame_chunk(b"data: [DONE]\n\n"), LAST_CHUNK])
        connection.current = None
        connection.close()

    def upstream_retargeted(self, exchange):
        self.handle = exchange

    # --- called by the client connection ---------------------------------------------------------

    def cancel(self):
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()

    def pause(self):
        if self.handle is not None:
            self.handle.pause_reading()

    def resume(self):
        if self.handle is not None:
            self.handle.resume_reading()

    # --- internals -------------------------------------------------------------------------------------

    def _closing(self):
        close = not self.keep_alive or self.connection.gateway.draining
        if close:
            self.keep_alive = False
        return close

    def _head(self, head, out):
        self.status = head.status
        if self.stream and head.status == 200:
            self.splitter = SSESplitter()
            self.events = self.translator.StreamTranslator(self.model, self.include_usage)
            out.append(frame_stream_head(200, EVENT_STREAM_HEADERS + self.extra_headers, self._closing()))
