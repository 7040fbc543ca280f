"""OpenAI chat completion chunk streams as Anthropic Messages event streams.

Theory of operation
OpenAI streams one completion as ``chat.completion.chunk`` objects, each carrying deltas of its
choices: ``content`` text, ``reasoning_content`` (or ``reasoning``), ``refusal`` text, and
``tool_calls`` fragments keyed by an ``index`` (the first fragment of a call carries its id and
name, later ones pieces of the ``arguments`` JSON). A chunk with ``finish_reason`` ends the choice;
with ``stream_options.include_usage`` a last chunk with empty ``choices`` carries ``usage``; then
``[DONE]``. Anthropic streams one message as named events, which its SDK accumulates by block index:

    message_start                       the message with empty content and usage so far
    content_block_start  (index i)      a block: text, thinking or tool_use (input {})
    content_block_delta  (index i)...   text_delta / thinking_delta / input_json_delta (partial_json)
    content_block_stop   (index i)
    ... one start/deltas/stop per block, indexes 0, 1, 2... never interleaved ...
    message_delta                       stop_reason, stop_sequence, usage (cumulative)
    message_stop

The translator keeps one open block at a time. A delta of another kind than the open block (text
after thinking, a tool call after text, a tool call with a new ``index``) closes the open block and
opens the next index, so blocks come out in the order their deltas came in, each started before its
first delta and stopped once. Rules it keeps:
1. ``message_start`` goes out with the first upstream chunk (its id becomes "msg_..."). Its
   ``input_tokens`` is what that chunk's usage says, else the ``input_tokens`` the translator was
   given (an estimate the caller may pass, default 0). The real counts come at the end, in
   ``message_delta.usage`` (input, cache read, output), which the SDK lets override the start's.
2. The finish reason and usage are remembered; ``message_delta`` and ``message_stop`` go out at
   ``[DONE]``, after the usage chunk, with the open block stopped first. A stream that ends after a
   finish reason but without ``[DONE]`` is complete all the same (``finish`` sends the end then).
3. Every fragment is relayed at once (no reordering, no buffering beyond one event), so the proxy can
   flush per upstream read. Tool arguments go out as the fragments they came in; empty fragments
   send nothing (the SDK keeps ``input`` {} for a call without arguments). Arguments that are not
   valid JSON are relayed as they are: the SDK then raises its own "Unable to parse tool parameter
   JSON" error, as it does for Anthropic's own answers; a stream cannot take a fragment back.
4. What cannot be expressed ends the stream with one Anthropic ``error`` event and nothing after it:
   an upstream error object (``{"error": {...}}`` in the stream, typed by ``stream_error_type``),
   data that is not a JSON object, a field of the wrong type, a tool call that starts without a
   name, or a fragment for a tool call whose block is already stopped (a provider interleaving two
   calls' arguments: Anthropic blocks cannot reopen). A stream that ends before any finish reason
   (``finish``) broke off: an ``error`` event (api_error), so the client does not take a truncated
   answer for a whole one. Choices other than 0 are ignored (the request asks for one).
"""

import orjson

from alloy.client_apis.chat_stream import TOOL, ChatStreamReader
from alloy.client_apis.messages_response import (
    anthropic_error,
    anthropic_usage,
    message_id,
    openai_error_message,
    reasoning_text,
    stop_reason,
    stream_error_type,
    tool_use_id,
)

THINKING = "thinking"
TEXT = "text"
BLOCK_STARTS = {
    THINKING: {"type": "thinking", "thinking": "", "signature": ""},
    TEXT: {"type": "text", "text": ""},
}


def sse_event(name, payload):
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesStreamTranslator(ChatStreamReader):
    """OpenAI chunk events -> Anthropic Messages SSE events (see the module docstring)."""

    def __init__(self, model, input_tokens=0, names=None):
        self.model = model
        self.input_tokens = input_tokens
        self.names = names  # the client's long tool names by their short ones (tool_names.restored)
        self.started = False  # message_start sent
        self.done = False  # message_stop or error sent: everything else is dropped
        self.block = None  # the open block: (THINKING,), (TEXT,), (TOOL, key of the call) or None
        self.index = -1  # the open block's Anthropic index
        self.stopped_tools = set()  # keys of tool calls whose block is stopped
        self.finish_reason = None
        self.matched_stop = None  # the stop string, when the upstream names it (vLLM)
        self.usage = None
        self.tool_calls = False
        self.refused = False

    # --- the driver's hooks (alloy.client_apis.chat_stream) ------------------------------------------

    def upstream_error(self, chunk):
        message = openai_error_message(chunk) or "upstream stream error"
        return self.fail(message, stream_error_type(chunk["error"]))

    def fail(self, message, kind="api_error"):
        self.done = True
        return [sse_event(b"error", anthropic_error(kind, message))]

    # --- message and blocks -----------------------------------------------------------------------

    def start(self, chunk, out):
        self.started = True
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            start_usage = anthropic_usage(usage)
        else:
            start_usage = anthropic_usage(None) | {"input_tokens": self.input_tokens}
        message = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        out.append(sse_event(b"message_start", {"type": "message_start", "message": message}))

    def end(self):
        out = []
        if not self.started:
            self.start({}, out)
        self.close_block(out)
        reason, sequence = stop_reason(self.finish_reason, self.matched_stop, self.tool_calls, self.refused)
        if self.usage is None:
            usage = {"output_tokens": 0}
        else:
            usage = anthropic_usage(self.usage)
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage}
        out.append(sse_event(b"message_delta", delta))
        out.append(sse_event(b"message_stop", {"type": "message_stop"}))
        self.done = True
        return out

    def open_block(self, block, content_block, out):
        self.close_block(out)
        self.index += 1
        self.block = block
        start = {"type": "content_block_start", "index": self.index, "content_block": content_block}
        out.append(sse_event(b"content_block_start", start))

    def close_block(self, out):
        if self.block is None:
            return
        if self.block[0] == TOOL:
            self.stopped_tools.add(self.block[1])
        self.block = None
        out.append(sse_event(b"content_block_stop", {"type": "content_block_stop", "index": self.index}))

    def delta(self, delta, out):
        event = {"type": "content_block_delta", "index": self.index, "delta": delta}
        out.append(sse_event(b"content_block_delta", event))

    # --- chunks ------------------------------------------------------------------------------------

    def on_chunk(self, chunk, out):
        if not self.started:
            self.start(chunk, out)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage  # cumulative where servers repeat it: the latest wins
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            self.on_delta(choice.get("delta") or {}, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.matched_stop = choice.get("stop_reason")

    def on_delta(self, delta, out):
        thinking = reasoning_text(delta)
        if thinking:
            self.text_like(THINKING, {"type": "thinking_delta", "thinking": thinking}, out)
        text = self.text_of(delta, self.block)
        if text:
            self.text_like(TEXT, {"type": "text_delta", "text": text}, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.refused = True
            self.text_like(TEXT, {"type": "text_delta", "text": refusal}, out)
        for call in delta.get("tool_calls") or ():
            self.on_tool_delta(call, out)

    def text_like(self, kind, delta, out):
        if self.block != (kind,):
            self.open_block((kind,), dict(BLOCK_STARTS[kind]), out)
        self.delta(delta, out)

    def on_tool_delta(self, call, out):
        key, name, arguments = self.tool_fragment(call, self.block, self.stopped_tools)
        if name is not None:
            if self.names:
                name = self.names.get(name, name)
            block = {"type": "tool_use", "id": tool_use_id(call.get("id")), "name": name, "input": {}}
            self.open_block((TOOL, key), block, out)
            self.tool_calls = True
        if arguments:
            self.delta({"type": "input_json_delta", "partial_json": arguments}, out)
