"""Anthropic Messages answers as OpenAI chat completions: shared facts and the stream translator.

Theory of operation
Anthropic streams one message as named events: ``message_start``, then per content block
``content_block_start`` / ``content_block_delta``... / ``content_block_stop``, then one or more
``message_delta`` (stop reason, cumulative usage) and ``message_stop``; ``ping`` may come at any
time and ``error`` ends the stream. OpenAI streams ``chat.completion.chunk`` objects that carry
deltas of one choice. The translator is a small state machine written as a table:

    TRANSITIONS[(state, event kind)] = (action, next state)

The driver classifies each event (``kind_of``), looks the pair up and runs the action, which returns
the OpenAI events it owes. Rules it keeps:
1. It knows only the event kinds in ``TRANSITIONS``; a pair not in the table (a delta outside a block,
   a second ``message_start``, JSON that does not parse) is an upstream protocol violation. The
   stream then ends like an upstream ``error`` event: one OpenAI error event, then ``[DONE]``. Nothing
   is guessed, and nothing is sent after ``[DONE]``.
2. Thinking blocks become ``delta.reasoning_content`` chunks (a blank line between two blocks, as
   the complete answer joins them); their ``signature_delta`` is dropped, as OpenAI has no place for
   it. Content blocks it cannot express (server tools, redacted thinking) are entered and left as
   ``IGNORED`` blocks, their deltas dropped; deltas it cannot express inside a known block
   (citations) are dropped too. A client therefore sees reasoning, text and tool calls.
3. It never reorders: each Anthropic event yields its OpenAI events at once, so the proxy can flush
   per upstream read. The finish chunk is owed until ``message_stop`` (there may be several
   ``message_delta`` events; the last stop reason and usage win). The usage chunk (when asked for)
   carries ``prompt_tokens_details`` with the cache reads and writes, as complete answers do.
4. The event name from the SSE ``event:`` line is not trusted over the JSON ``type`` field: the
   documented payloads always carry ``type``, and the two agree on the real API.
"""

import time

import orjson

from alloy.errors import UpstreamProtocolError, error_payload
from alloy.headers import DONE_EVENT as DONE
from alloy.usage import count

# Anthropic stop_reason -> OpenAI finish_reason; an unknown reason reads as "stop".
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> (OpenAI error type, code). The HTTP status is mapped separately
# (``openai_status``) because the status, not the type, is what OpenAI clients branch on.
ERROR_TYPES = {
    "invalid_request_error": ("invalid_request_error", "invalid_request"),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "rate_limit_error": ("requests", "rate_limit_exceeded"),
    "api_error": ("server_error", "internal_error"),
    "timeout_error": ("server_error", "upstream_timeout"),
    "overloaded_error": ("server_error", "overloaded"),
}
# When the body names no type (not JSON, or not Anthropic's shape): the type its status implies.
STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# 529 is Anthropic's own "overloaded"; OpenAI clients know it as 503 (and retry it).
STATUS_MAP = {529: 503}


def openai_status(status):
    """The status an OpenAI client should see for an Anthropic error status."""
    if status in STATUS_MAP:
        return STATUS_MAP[status]
    if 400 <= status < 500 or status in (500, 502, 503, 504):
        return status  # what the SDKs know (a 503 from a proxy in front of Anthropic stays a 503)
    return 502  # other 5xx (or a non-error status on an error path): the upstream failed


def openai_error(anthropic_type, message):
    """``{"error": {...}}`` in OpenAI's shape for an Anthropic error type and message."""
    if type(anthropic_type) is not str:
        anthropic_type = None
    kind, code = ERROR_TYPES.get(anthropic_type) or ("server_error", anthropic_type or "upstream_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def text_of(value):
    """A text field of an Anthropic event: a string, or None when absent; any other JSON type is a
    malformed answer (the TypeError is turned into the stream's error by ``feed``)."""
    if value is None or type(value) is str:
        return value
    raise TypeError("a text field that is not a string")


def name_of(value):
    """A tool call's id or name: a non-empty string, else the answer is malformed."""
    if type(value) is str and value:
        return value
    raise TypeError("a tool id or name that is not a string")


def chat_id(message):
    """The chat completion id for an Anthropic message: its own id, when it is a string."""
    given = message.get("id")
    return "chatcmpl-" + (given if type(given) is str and given else "anthropic")


def openai_usage(usage):
    """Anthropic usage -> OpenAI usage. Prompt tokens include cached and cache-written input, which
    Anthropic counts apart from ``input_tokens``; ``cached_tokens`` is the part read from cache,
    ``cache_write_tokens`` the part written to it. Thinking is inside ``output_tokens``: Anthropic
    gives no count of its own, so no ``reasoning_tokens`` are reported."""
    cache_read = count(usage, "cache_read_input_tokens")
    cache_write = count(usage, "cache_creation_input_tokens")
    prompt = count(usage, "input_tokens") + cache_read + cache_write
    completion = count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
    }


# Between two thinking blocks' texts, in a complete answer's reasoning_content and in a stream.
THOUGHT_SEPARATOR = "\n\n"


def sse(payload):
    return b"data: " + orjson.dumps(payload) + b"\n\n"


# --- states ---------------------------------------------------------------------------------------
START = "START"  # nothing yet: only message_start (or ping, error) may come
MESSAGE = "MESSAGE"  # inside the message, between content blocks
TEXT = "TEXT"  # inside a text block
TOOL = "TOOL"  # inside a tool_use block
THINKING = "THINKING"  # inside a thinking block
IGNORED = "IGNORED"  # inside a block OpenAI cannot express (redacted thinking, server tools)
STOPPING = "STOPPING"  # after message_delta: more message_delta, or message_stop
DONE_STATE = "DONE"  # [DONE] sent: everything else is dropped

# content_block_start / content_block_delta sub-types the table knows by name; others are "other".
BLOCK_KINDS = {"text": "start_text", "tool_use": "start_tool", "thinking": "start_thinking"}
DELTA_KINDS = {
    "text_delta": "text_delta",
    "input_json_delta": "json_delta",
    "thinking_delta": "thinking_delta",
    "signature_delta": "signature_delta",
}


def kind_of(event):
    """The table key of one decoded Anthropic event ("malformed" when its shape is wrong)."""
    kind = event.get("type")
    if kind == "content_block_start":
        part, names, other = event.get("content_block"), BLOCK_KINDS, "start_other"
    elif kind == "content_block_delta":
        part, names, other = event.get("delta"), DELTA_KINDS, "other_delta"
    else:
        return kind if type(kind) is str else "malformed"
    if type(part) is not dict:
        return "malformed"
    sub = part.get("type")
    return names.get(sub, other) if type(sub) is str else other


class StreamTranslator:
    """Anthropic Messages SSE events -> OpenAI ``chat.completion.chunk`` SSE events (see above)."""

    # (state, event kind) -> (action name, next state). ``error`` and ``ping`` are handled for
    # every state by the driver (rows would repeat them seven times).
    TRANSITIONS = {
        (START, "message_start"): ("on_message_start", MESSAGE),
        (MESSAGE, "start_text"): ("on_text_start", TEXT),
        (MESSAGE, "start_tool"): ("on_tool_start", TOOL),
        (MESSAGE, "start_thinking"): ("on_thinking_start", THINKING),
        (MESSAGE, "start_other"): (None, IGNORED),
        (MESSAGE, "message_delta"): ("on_message_delta", STOPPING),
        (TEXT, "text_delta"): ("on_text_delta", TEXT),
        (TEXT, "other_delta"): (None, TEXT),  # citations: the text itself comes as text_delta
        (TEXT, "content_block_stop"): (None, MESSAGE),
        (TOOL, "json_delta"): ("on_json_delta", TOOL),
        (TOOL, "content_block_stop"): ("on_tool_stop", MESSAGE),
        (THINKING, "thinking_delta"): ("on_thinking_delta", THINKING),
        (THINKING, "signature_delta"): (None, THINKING),  # OpenAI has no place for the signature
        (THINKING, "content_block_stop"): (None, MESSAGE),
        (IGNORED, "text_delta"): (None, IGNORED),
        (IGNORED, "json_delta"): (None, IGNORED),
        (IGNORED, "other_delta"): (None, IGNORED),
        (IGNORED, "content_block_stop"): (None, MESSAGE),
        (STOPPING, "message_delta"): ("on_message_delta", STOPPING),
        (STOPPING, "message_stop"): ("on_message_stop", DONE_STATE),
    }

    def __init__(self, model, include_usage):
        self.model = model
        self.include_usage = include_usage
        # With include_usage, OpenAI gives every chunk before the usage chunk "usage": null.
        self.end = b'}],"usage":null}\n\n' if include_usage else b"}]}\n\n"
        self.state = START
        self.created = int(time.time())
        self.head = b""  # data: {"id":...,"model":... without the closing brace: set by message_start
        self.prefix = b""  # data: + head + the opening of choices[0].delta
        self.usage = {}
        self.stop_reason = None
        self.tool_index = -1  # OpenAI index of the current tool call (0, 1, ... in order)
        self.tool_has_arguments = False
        self.reasoning_sent = False  # some reasoning_content went out (a later block is separated)
        self.separate = False  # the next reasoning text opens a later thinking block
        self.role_owed = False  # message_start came, its role chunk not sent yet

    # --- the driver --------------------------------------------------------------------------------

    def feed(self, event_name, data):
        """One Anthropic SSE event (``event:`` value or None, ``data:`` bytes) -> OpenAI SSE events."""
        if self.state is DONE_STATE:
            return []
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.fail("upstream stream event is not JSON")
        if type(event) is not dict:
            return self.fail("upstream stream event is not a JSON object")
        kind = kind_of(event)
        if kind == "ping":
            return []
        if kind == "error":
            error = event.get("error")
            error = error if type(error) is dict else {}
            self.state = DONE_STATE
            message = error.get("message")
            message = message if type(message) is str and message else "upstream stream error"
            return [sse(openai_error(error.get("type"), message)), DONE]
        row = self.TRANSITIONS.get((self.state, kind))
        if row is None:
            return self.fail(f"unexpected upstream event {kind!r} in state {self.state}")
        action, self.state = row
        if action is None:
            return []
        try:
            out = getattr(self, action)(event)
        except (AttributeError, KeyError, TypeError):  # a field of the wrong JSON type
            return self.fail(f"malformed upstream {kind!r} event")
        if self.role_owed and out:
            # The role chunk goes out with the answer's first content, once it is known: as
            # OpenAI does, content null when the answer opens with a tool call (the SDK's
            # accumulated message then has content None, as without streaming), else "".
            self.role_owed = False
            out.insert(0, self.chunk({"role": "assistant", "content": None if action == "on_tool_start" else ""}))
        return out

    def complete(self):
        """The answer went out whole, its [DONE] included: a failure of the upstream's own framing
        after it loses the client nothing."""
        return self.state is DONE_STATE

    def finish(self):
        """The upstream stream ended: nothing more is owed after [DONE]; otherwise it broke off."""
        if self.state is DONE_STATE:
            return []
        return self.fail("upstream stream ended before message_stop")

    def fail(self, message):
        self.state = DONE_STATE
        return [sse(error_payload(UpstreamProtocolError(message))), DONE]

    # --- actions: each returns the OpenAI events it owes ----------------------------------------

    def chunk(self, delta, finish_reason=None):
        if finish_reason is None:
            return self.prefix + orjson.dumps(delta) + b',"logprobs":null,"finish_reason":null' + self.end
        tail = b',"logprobs":null,"finish_reason":' + orjson.dumps(finish_reason) + self.end
        return self.prefix + orjson.dumps(delta) + tail

    def on_message_start(self, event):
        message = event.get("message") or {}
        chunk_id = chat_id(message)
        head = {"id": chunk_id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        # The fixed part of every chunk is serialised once; only the delta changes per event.
        self.head = b"data: " + orjson.dumps(head)[:-1]
        self.prefix = self.head + b',"choices":[{"index":0,"delta":'
        usage = message.get("usage")
        self.usage = dict(usage) if type(usage) is dict else {}
        self.role_owed = True  # sent with the first content (see feed)
        return []

    def on_text_start(self, event):
        text = text_of((event.get("content_block") or {}).get("text"))
        return [self.chunk({"content": text})] if text else []

    def on_text_delta(self, event):
        text = text_of(event["delta"].get("text"))
        return [self.chunk({"content": text})] if text else []

    def on_thinking_start(self, event):
        self.separate = self.reasoning_sent
        return self.reasoning((event.get("content_block") or {}).get("thinking"))

    def on_thinking_delta(self, event):
        return self.reasoning(event["delta"].get("thinking"))

    def reasoning(self, text):
        if not text or type(text) is not str:
            return []
        if self.separate:
            self.separate = False
            text = THOUGHT_SEPARATOR + text
        self.reasoning_sent = True
        return [self.chunk({"reasoning_content": text})]

    def on_tool_start(self, event):
        block = event.get("content_block") or {}
        self.tool_index += 1
        self.tool_has_arguments = False
        call = {
            "index": self.tool_index,
            "id": name_of(block.get("id")),
            "type": "function",
            "function": {"name": name_of(block.get("name")), "arguments": ""},
        }
        return [self.chunk({"tool_calls": [call]})]

    def on_json_delta(self, event):
        fragment = text_of(event["delta"].get("partial_json"))
        if not fragment:
            return []
        self.tool_has_arguments = True
        return [self.chunk({"tool_calls": [{"index": self.tool_index, "function": {"arguments": fragment}}]})]

    def on_tool_stop(self, event):
        # A call without arguments streams no fragment; OpenAI clients parse arguments as JSON.
        if self.tool_has_arguments:
            return []
        return [self.chunk({"tool_calls": [{"index": self.tool_index, "function": {"arguments": "{}"}}]})]

    def on_message_delta(self, event):
        delta = event.get("delta") or {}
        if delta.get("stop_reason") and type(delta["stop_reason"]) is str:
            self.stop_reason = delta["stop_reason"]
        usage = event.get("usage")
        if type(usage) is dict:
            self.usage.update(usage)  # cumulative counts: the latest wins
        return []

    def final_usage(self):
        """The stream's usage in OpenAI's shape (None when the provider sent none), for the call's
        account whether or not the client asked to receive it."""
        return openai_usage(self.usage) if self.usage else None

    def on_message_stop(self, event):
        out = [self.chunk({}, FINISH_REASONS.get(self.stop_reason, "stop"))]
        if self.include_usage:
            usage = orjson.dumps(openai_usage(self.usage))
            out.append(self.head + b',"choices":[],"usage":' + usage + b"}\n\n")
        out.append(DONE)
        return out
