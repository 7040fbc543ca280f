"""A translated Responses call's answer as its client must see it: what the relay writes (a chat
completions answer), read back and written again as a Response or a Responses event stream.

The machinery is the Messages endpoint's (``alloy.client_apis.messages_wire``): the call's
connection is a ``ResponsesConnection`` whose transport, a ``ResponsesTransport``, reads the relay's
bytes back with the core ``ResponseParser`` and writes the client's answer to the real transport.
Only the shapes differ (the transport's hooks: ``_stream_translator``, ``_answer``,
``_answer_events``, ``_error_body``, ``_error_answer``):

    the relay wrote                     the client gets
    200 text/event-stream               200 text/event-stream: each relay write's chunks translated
                                        at once (``ResponseBuilder``), one client write per relay
                                        write, then the end of the chunked body
    200 JSON, the client streams        the same events made from the complete answer
    200 JSON                            the Response (``response_from_chat``) once complete
    an error status                     the same status and body: the chat completions error
                                        object is already OpenAI's (headers kept as for Messages);
                                        a body of another shape (a proxy's HTML page) becomes one
Alloy's own errors (``send_error``) are written OpenAI-shaped by the real connection. An answer that
cannot be translated, or one beyond ``max_buffered`` bytes, is Alloy's 502 while nothing reached
the client, else a ``response.failed`` event that ends the stream.
"""

import orjson

from alloy.client_apis.messages_response import decoded_error, upstream_error_message
from alloy.client_apis.messages_wire import OVER, MessagesConnection, MessagesTransport
from alloy.client_apis.responses_stream import ResponseBuilder, response_events, response_from_chat
from alloy.core import frame_response
from alloy.errors import error_response_body
from alloy.headers import JSON_HEADER


class ResponsesConnection(MessagesConnection):
    """The client connection as a translated Responses call sees it (see ``MessagesConnection``);
    Alloy's own errors stay OpenAI-shaped."""

    __slots__ = ()

    def send_error(self, error, close=False, extra_headers=b"", head=False):
        self.transport.state = OVER
        self.real.send_error(error, close, extra_headers, head)


class ResponsesTransport(MessagesTransport):
    """The transport a translated Responses call's relays write to (see the module docstring)."""

    names_request_id = False  # an OpenAI client: x-request-id is its name
    client_api = "Responses"
    __slots__ = ("request",)

    def __init__(self, connection, request, model, stream, max_buffered):
        super().__init__(connection, model, stream, max_buffered)
        self.request = request  # the client's decoded Responses body: what the Response echoes

    def _native(self, head):
        return False  # no provider answers a translated call in the client's own API

    def _stream_translator(self):
        return ResponseBuilder(self.request, self.model)

    def _error_body(self, body):
        """OpenAI's error shape, which the Responses API shares: the upstream's body as it came
        when it has that shape, else made from it (a proxy's HTML page, another JSON shape)."""
        decoded = decoded_error(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
            return body
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        message = upstream_error_message(self.status, decoded, body)
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})

    def _answer(self, chat):
        return response_from_chat(chat, self.request, self.model)

    def _answer_events(self, chat):
        return response_events(chat, self.request, self.model)

    def _error_answer(self, error):
        return frame_response(error.status, JSON_HEADER + error.header_block + self.kept, error_response_body(error), True)
