"""A stored answer, and the ways it is given back.

An ``Entry`` is what one successful answer left behind: either its JSON body (``JSON``) or the
Server-Sent Events of its stream, in order, ending with ``data: [DONE]`` (``SSE``), exactly the
bytes the first client received (unframed). It also notes when it was stored (for ``age``), when
it expires, and, for a stream, where its usage event sits (the chunk with ``"choices": []`` that
``stream_options.include_usage`` asks for), so a client who did not ask for usage gets the stream
without it, as OpenAI would send it.

``entry_from_recording`` decides whether a recording may be stored at all: a JSON body must parse
whole, a stream must end with ``[DONE]`` and carry no error event (OpenAI's ``error`` object, an
``"object": "error"`` chunk as vLLM sends, or an ``event: error``). A stream that broke off midway
never ends with ``[DONE]`` in the recording (the relay writes its error event and its own ending
to the client only), so it is never stored.

Chat completions cross over (``/v1/chat/completions`` only: the key leaves ``stream`` out there):
a stored stream answers a non-stream request with the ``chat.completion`` its chunks assemble to
(content, refusal, tool calls, finish reasons, usage), and a stored JSON answer answers a stream
with the chunks that assemble back to it. The SDK parses both as it parses the provider's own.

``pack``/``unpack`` turn an entry into bytes and back for a shared store (Redis).
"""

import struct

import orjson

from alloy.headers import DONE_EVENT

JSON, SSE = 0, 1
_PACKED = struct.Struct("<Bddii")  # kind, stored_at, expires_at, usage event span


class Entry:
    __slots__ = ("kind", "body", "stored_at", "expires_at", "usage_start", "usage_end", "namespace")

    def __init__(self, kind, body, stored_at, expires_at, usage_start=-1, usage_end=-1, namespace=""):
        self.kind = kind
        self.body = body
        self.stored_at = stored_at  # time.time(): shared stores compare it across processes
        self.expires_at = expires_at
        self.usage_start = usage_start  # a stream's usage event, body[start:end]; -1: none
        self.usage_end = usage_end
        self.namespace = namespace

    @property
    def has_usage(self):
        return self.kind == JSON or self.usage_start >= 0

    def size(self):
        # the body, its namespace (a string of its own per entry), and what the entry, its slots and
        # the bytes headers cost (measured: ~250)
        return len(self.body) + len(self.namespace) + 256

    def stream_body(self, include_usage):
        """The SSE bytes of a stored stream for a client who did (not) ask for the usage event."""
        if include_usage or self.usage_start < 0:
            return self.body
        return self.body[: self.usage_start] + self.body[self.usage_end :]


def entry_from_recording(pieces, stream, stored_at, expires_at, namespace):
    """The entry a recorded answer makes, or None when it must not be stored (incomplete, not
    JSON, an error event in the stream)."""
    body = b"".join(pieces)
    if not stream:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None  # cut short (the upstream broke off) or not JSON: nothing to replay
        if not isinstance(document, dict) or "error" in document or document.get("object") == "error":
            return None
        return Entry(JSON, body, stored_at, expires_at, namespace=namespace)
    if not body.endswith(DONE_EVENT):
        return None  # the stream did not finish
    usage_start = usage_end = -1
    position = 0
    for event in body.split(b"\n\n")[:-1]:
        end = position + len(event) + 2
        if _is_error_event(event):
            return None  # an error said as a named event (event: error), whatever its data
        data = _data_of(event)
        if data is not None and data != b"[DONE]":
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(chunk, dict) or "error" in chunk or chunk.get("object") == "error":
                return None  # OpenAI's error shape, or vLLM's and others' ("object": "error")
            if chunk.get("usage") and not chunk.get("choices"):
                usage_start, usage_end = position, end
        position = end
    return Entry(SSE, body, stored_at, expires_at, usage_start, usage_end, namespace)


def _is_error_event(event):
    return any(line.startswith(b"event:") and line[6:].strip() == b"error" for line in event.split(b"\n"))


def _data_of(event):
    """The data of one SSE event (its ``data:`` lines joined), None without any."""
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _chunks(body):
    for event in body.split(b"\n\n"):
        data = _data_of(event)
        if data is not None and data != b"[DONE]":
            yield orjson.loads(data)


# --- a stored stream as a chat.completion ------------------------------------------------------------


def completion_from_stream(body):
    """The ``chat.completion`` JSON a stored chat stream assembles to."""
    completion, choices, usage = None, {}, None
    for chunk in _chunks(body):
        if completion is None:
            completion = {key: chunk.get(key) for key in ("id", "created", "model")}
            for key in ("service_tier", "system_fingerprint"):
                if key in chunk:
                    completion[key] = chunk[key]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = choices.get(part.get("index", 0))
            if choice is None:
                choice = choices[part.get("index", 0)] = {
                    "role": "assistant", "content": None, "refusal": None, "tool_calls": {},
                    "finish_reason": None, "logprobs": None,
                }  # fmt: skip
            _add_delta(choice, part.get("delta") or {})
            if part.get("finish_reason") is not None:
                choice["finish_reason"] = part["finish_reason"]
            if part.get("logprobs"):
                logprobs = choice["logprobs"] = choice["logprobs"] or {"content": []}
                logprobs["content"].extend(part["logprobs"].get("content") or ())
    document = {**(completion or {}), "object": "chat.completion", "choices": [_choice(i, c) for i, c in sorted(choices.items())]}
    document["usage"] = usage
    return orjson.dumps(document)


def _add_delta(choice, delta):
    if delta.get("role"):
        choice["role"] = delta["role"]
    for key in ("content", "refusal"):
        if delta.get(key) is not None:
            choice[key] = (choice[key] or "") + delta[key]
    for call in delta.get("tool_calls") or ():
        kept = choice["tool_calls"].setdefault(call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        if call.get("id"):
            kept["id"] = call["id"]
        if call.get("type"):
            kept["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            kept["function"]["name"] += function["name"]
        if function.get("arguments"):
            kept["function"]["arguments"] += function["arguments"]


def _choice(index, kept):
    message = {"role": kept["role"], "content": kept["content"], "refusal": kept["refusal"]}
    if kept["tool_calls"]:
        message["tool_calls"] = [call for _, call in sorted(kept["tool_calls"].items())]
    return {"index": index, "message": message, "logprobs": kept["logprobs"], "finish_reason": kept["finish_reason"]}


# --- a stored chat.completion as a stream ---------------------------------------------------------------


def stream_from_completion(body, include_usage):
    """The SSE chunks (ending with ``[DONE]``) that assemble to a stored ``chat.completion``: per
    choice, one delta with the whole message, then one with its finish reason; the usage event
    last when asked for."""
    document = orjson.loads(body)
    base = {key: document.get(key) for key in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    for key in ("service_tier", "system_fingerprint"):
        if key in document:
            base[key] = document[key]
    if include_usage:
        base["usage"] = None
    events = []
    for choice in document.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta = {"role": message.get("role", "assistant"), "content": message.get("content")}
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        events.append(_event(base, [{"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}]))
        events.append(_event(base, [{"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")}]))
    if include_usage:
        events.append(_event({**base, "usage": document.get("usage")}, []))
    events.append(DONE_EVENT)
    return b"".join(events)


def _event(base, choices):
    return b"data: " + orjson.dumps({**base, "choices": choices}) + b"\n\n"


# --- bytes for a shared store ----------------------------------------------------------------------------


def pack(entry):
    return _PACKED.pack(entry.kind, entry.stored_at, entry.expires_at, entry.usage_start, entry.usage_end) + entry.body


def unpack(data, namespace=""):
    """The entry ``pack`` made, or None when ``data`` is not one (another version wrote it)."""
    if len(data) < _PACKED.size:
        return None
    kind, stored_at, expires_at, usage_start, usage_end = _PACKED.unpack_from(data)
    if kind not in (JSON, SSE):
        return None
    return Entry(kind, data[_PACKED.size :], stored_at, expires_at, usage_start, usage_end, namespace)
