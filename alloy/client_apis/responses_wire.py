"""A translated Responses call's answer as its client must see it: what the relay writes (a chat
completions answer), read back and written again as a Response or a Responses event stream.

The machinery is the Messages endpoint's (``alloy.client_apis.messages_wire``): the call's
connection is a ``ResponsesConnection`` whose transport, a ``ResponsesTransport``, reads the relay's
bytes back with the core ``ResponseParser`` and writes the client's answer to the real transport.
Only the shapes differ:

    the relay wrote                     the client gets
    200 text/event-stream               200 text/event-stream: each relay write's chunks translated
                                        at once (``ResponseBuilder``), one client write per relay
                                        write, then the end of the chunked body
    200 JSON, the client streams        the same events made from the complete answer
    200 JSON                            the Response (``response_from_chat``) once complete
    an error status                     the same status and body: the chat completions error
                                        object is already OpenAI's (headers kept as for Messages)
Alloy's own errors (``send_error``) are written OpenAI-shaped by the real connection. An answer that
cannot be translated, or one beyond ``max_buffered`` bytes, is Alloy's 502 while nothing reached
the client, else a ``response.failed`` event that ends the stream.
"""

import orjson

from alloy.client_apis.messages_wire import (
    ERROR,
    OVER,
    STREAM,
    MessagesConnection,
    MessagesTransport,
)
from alloy.client_apis.responses_stream import ResponseBuilder, response_events, response_from_chat
from alloy.core import LAST_CHUNK, frame_chunk, frame_response, frame_stream_head
from alloy.errors import UpstreamProtocolError, error_response_body
from alloy.headers import EVENT_STREAM_HEADERS, JSON_HEADER


class ResponsesConnection(MessagesConnection):
    """The client connection as a translated Responses call sees it (see ``MessagesConnection``);
    Alloy's own errors stay OpenAI-shaped."""

    __slots__ = ()

    def send_error(self, error, close=False, extra_headers=b"", head=False):
        self.transport.state = OVER
        self.real.send_error(error, close, extra_headers, head)


class ResponsesTransport(MessagesTransport):
    """The transport a translated Responses call's relays write to (see the module docstring)."""

    __slots__ = ("request",)

    def __init__(self, connection, request, model, stream, max_buffered):
        super().__init__(connection, model, stream, max_buffered)
        self.request = request  # the client's decoded Responses body: what the Response echoes

    def _native(self, head):
        return False  # no provider answers a translated call in the client's own API

    def _stream_translator(self):
        return ResponseBuilder(self.request, self.model)

    def _complete(self, out):
        state = self.state
        self.state = OVER
        if state == STREAM:
            translated = []
            for _, data in self.splitter.flush():
                translated.extend(self.translator.feed(data))
            translated.extend(self.translator.finish())
            if translated:
                out.append(frame_chunk(b"".join(translated)))
            out.append(LAST_CHUNK)
            return
        body = b"".join(self.pieces)
        self.pieces = []
        if state == ERROR:
            out.append(frame_response(self.status, JSON_HEADER + self.kept, body, self.closing))
            return
        try:
            chat = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("the upstream answer is not JSON") from None
        if self.stream:
            events = response_events(chat, self.request, self.model)
            head = frame_stream_head(200, EVENT_STREAM_HEADERS + self.kept, self.closing)
            out.extend((head, frame_chunk(b"".join(events)), LAST_CHUNK))
        else:
            response = response_from_chat(chat, self.request, self.model)
            out.append(frame_response(200, JSON_HEADER + self.kept, orjson.dumps(response), self.closing))

    def _broken(self, message, error=None):
        """Alloy's 502 if nothing reached the client yet, else ``response.failed`` ending the stream;
        the connection then closes."""
        state = self.state
        self.state = OVER
        self.pieces = []
        call = self.connection.current
        if call is not None:
            call.status = 502
        if state == STREAM or self.started:
            if self.translator is not None and not self.translator.done:
                self.real.writelines([frame_chunk(b"".join(self.translator.fail(message))), LAST_CHUNK])
            self.connection.close()
            return
        if error is None or error.status < 500:
            error = UpstreamProtocolError(message)
        answer = frame_response(error.status, JSON_HEADER + error.header_block + self.kept, error_response_body(error), True)
        self.real.write(answer)
        self.started = True
        self.connection.close()
