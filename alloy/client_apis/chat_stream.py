"""Reading an OpenAI chat completions stream back, for a client API that speaks another one.

The Messages and Responses transports (``messages_stream``, ``responses_stream``) both turn the
chunks the relay wrote into their own events. What they share is this driver: skip empty events,
``[DONE]`` ends the stream, a chunk that is not a JSON object or carries an ``error`` fails it, and
a chunk the translator cannot express (``StreamViolation``) or whose fields have the wrong JSON
types fails it too, after the events it did produce. A translator supplies ``on_chunk``, ``end``
and ``fail``, and keeps ``done`` and ``finish_reason``.
"""

import orjson

from alloy.client_apis.messages_response import openai_error_message

DONE_DATA = b"[DONE]"


class StreamViolation(Exception):
    """The upstream stream asks for something the client API's stream cannot say."""


class ChatStreamReader:
    def feed(self, data):
        """The data of one upstream SSE event (a chunk's JSON, or ``[DONE]``) -> the client API's
        SSE events."""
        if self.done or not data.strip():
            return []
        if data.strip() == DONE_DATA:
            return self.end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.fail("upstream stream event is not JSON")
        if type(chunk) is not dict:
            return self.fail("upstream stream event is not a JSON object")
        if chunk.get("error") is not None:
            return self.upstream_error(chunk)
        out = []
        try:
            self.on_chunk(chunk, out)
        except StreamViolation as exc:
            return out + self.fail(str(exc))
        except (AttributeError, KeyError, TypeError):  # a field of the wrong JSON type
            return out + self.fail("malformed upstream stream chunk")
        return out

    def finish(self):
        """The upstream stream ended: what is still owed."""
        if self.done:
            return []
        if self.finish_reason is not None:
            return self.end()
        return self.fail("upstream stream ended before the answer was complete")

    def upstream_error(self, chunk):
        """The upstream's own error event, ending the stream."""
        return self.fail(openai_error_message(chunk) or "upstream stream error")
