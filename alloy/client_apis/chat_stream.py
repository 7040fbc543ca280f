"""Reading an OpenAI chat completions stream back, for a client API that speaks another one.

The Messages and Responses transports (``messages_stream``, ``responses_stream``) both turn the
chunks the relay wrote into their own events. What they share is this driver: skip empty events,
``[DONE]`` ends the stream, a chunk that is not a JSON object or carries an ``error`` fails it, and
a chunk the translator cannot express (``StreamViolation``) or whose fields have the wrong JSON
types fails it too, after the events it did produce. A translator supplies ``on_chunk``, ``end``
and ``fail``, and keeps ``done`` and ``finish_reason``.
"""

import json

import orjson

from alloy.client_apis.messages_response import openai_error_message, text_content

DONE_DATA = b"[DONE]"
TOOL = "tool"  # what a translator's open block or item is while a tool call's arguments stream


class StreamViolation(Exception):
    """The upstream stream asks for something the client API's stream cannot say."""


class ChatStreamReader:
    halves = None  # field path -> the high surrogate a chunk's string ended with (halves_joined)
    by_index = None  # a tool call's index -> (its key, the id it started with) (tool_fragment)

    def feed(self, data):
        """The data of one upstream SSE event (a chunk's JSON, or ``[DONE]``) -> the client API's
        SSE events."""
        if self.done or not data.strip():
            return []
        if data.strip() == DONE_DATA:
            return self.end()
        try:
            chunk = orjson.loads(data)
            if self.halves:  # a half from the chunk before: joined to this chunk's string there
                chunk = _joined(chunk, (), self.halves)
        except orjson.JSONDecodeError:
            chunk = self.halves_joined(data)
            if chunk is None:
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

    def halves_joined(self, data):
        """A chunk orjson refused, read again if it is JSON all the same: a lone surrogate escape
        (RFC 8259 section 8.2 allows it), which a server slicing text by UTF-16 units (JavaScript's)
        sends when an emoji's two halves fall in two chunks. Each string's trailing high half waits
        for the same field's next string; a half with no other half becomes U+FFFD (one still
        waiting when the stream ends is dropped). None: not JSON."""
        try:
            chunk = json.loads(data)
        except ValueError:  # also bytes that are not UTF-8
            return None
        if self.halves is None:
            self.halves = {}
        return _joined(chunk, (), self.halves)

    def finish(self):
        """The upstream stream ended: what is still owed."""
        if self.done:
            return []
        if self.finish_reason is not None:
            return self.end()
        return self.fail("upstream stream ended before the answer was complete")

    def tool_fragment(self, call, current, finished):
        """One tool-call fragment of a chunk -> (its tool call's key, the name it starts with or
        None when it continues ``current``, the arguments text it adds, or ""). A fragment names
        its call by ``index``, else by id, else it continues the open one (``current`` is the
        translator's open block or item, ``(TOOL, key)`` for a tool call). A call that starts must
        have a name and must not be one already ``finished`` (interleaved parallel calls cannot be
        said as consecutive blocks). A fragment with a new id at an index a call already used starts
        another call: some servers number every parallel call 0."""
        if type(call.get("index")) is int:
            key = self._key_at(call["index"], call.get("id"))
        elif isinstance(call.get("id"), str) and call["id"]:
            key = call["id"]
        elif current is not None and current[0] == TOOL:
            key = current[1]
        else:
            raise StreamViolation("a tool call fragment names no tool call")
        function = call.get("function") or {}
        name = None
        if current != (TOOL, key):
            if key in finished:
                raise StreamViolation("upstream interleaved the arguments of parallel tool calls")
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise StreamViolation("a tool call starts without a name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()  # some servers send the object itself
        return key, name, arguments if isinstance(arguments, str) else ""

    def text_of(self, delta, current):
        """The text a delta says: its ``content``, a string or an array of parts (Mistral's
        reasoning models), read by ``text_content``; "" for white space while a tool call is open
        (``current`` is the translator's open block or item), which some servers send between a
        call's argument fragments: said, it would close the call for good."""
        text = text_content(delta.get("content"))
        if text and text.isspace() and current is not None and current[0] == TOOL:
            return ""
        return text

    def _key_at(self, index, call_id):
        """The key of the call a fragment at ``index`` belongs to: the index itself, until another
        id shows up there (then the index and that id)."""
        if self.by_index is None:
            self.by_index = {}
        named = isinstance(call_id, str) and call_id
        known = self.by_index.get(index)
        if known is None:
            self.by_index[index] = (index, call_id if named else None)
            return index
        key, started = known
        if named and call_id != started:
            if started is not None:
                key = (index, call_id)  # a new call at a used index
            self.by_index[index] = (key, call_id)
        return key

    def upstream_error(self, chunk):
        """The upstream's own error event, ending the stream."""
        return self.fail(openai_error_message(chunk) or "upstream stream error")


def _joined(value, path, halves):
    """``value`` with each string's surrogate halves joined (see ``halves_joined``)."""
    if isinstance(value, str):
        text = halves.pop(path, "") + value
        if text and "\ud800" <= text[-1] <= "\udbff":  # a high half: its low half may come next
            halves[path], text = text[-1], text[:-1]
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {name: _joined(item, (*path, name), halves) for name, item in value.items()}
    if isinstance(value, list):
        return [_joined(item, (*path, i), halves) for i, item in enumerate(value)]
    return value
