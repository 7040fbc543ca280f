"""Chat completions answers (chunk streams and complete completions) as OpenAI Responses: the output
items, the Response object, and the Responses streaming events.

Theory of operation
One ``ResponseBuilder`` follows one answer. Fed chat completion chunk data (``feed``), it builds
the Response's output items as the deltas come and, with ``events=True``, says each step as the
Responses stream does. Every event carries ``type`` and a ``sequence_number`` counting from 0:

    response.created, response.in_progress          the Response, no output yet
    per output item, at ``output_index`` 0, 1, 2... (one open at a time, never interleaved):
      reasoning   response.output_item.added, response.reasoning_summary_part.added,
                  response.reasoning_summary_text.delta..., response.reasoning_summary_text.done,
                  response.reasoning_summary_part.done, response.output_item.done
      message     response.output_item.added, response.content_part.added (output_text),
                  response.output_text.delta..., response.output_text.done,
                  response.content_part.done, response.output_item.done
      function_call
                  response.output_item.added, response.function_call_arguments.delta...,
                  response.function_call_arguments.done, response.output_item.done
    response.completed (or response.incomplete)     the whole Response with status and usage

A delta of another kind than the open item (text after reasoning, a tool call after text, a tool
call with a new ``index``) closes the open item and opens the next one. The end goes out at
``[DONE]`` (after the usage chunk that ``stream_options.include_usage`` asks for), or at ``finish``
when the stream ended after a finish reason. What cannot be said (an upstream error object, data
that is not a chunk, a stream that ends before its finish reason, a tool call's arguments
resumed after another item) ends the stream with ``response.failed``: the Response with status
"failed" and ``error`` {code, message}, and nothing after it.

A complete chat completion takes the same path (``response_from_chat``: its message replayed as
deltas, no events), so the non-stream Response and the streamed one are built by the same code;
``response_events`` gives the event sequence for a complete answer when the client asked for a
stream and the upstream answered whole.
"""

import orjson

from alloy.client_apis.chat_stream import TOOL, ChatStreamReader, StreamViolation
from alloy.client_apis.messages_response import reasoning_text, text_content
from alloy.client_apis.responses_response import bare_id, finished_status, response_shell, response_usage
from alloy.errors import UpstreamProtocolError

REASONING, TEXT = "reasoning", "text"


def sse_event(payload):
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponseBuilder(ChatStreamReader):
    """Chat completion chunks -> Response output items and, with ``events``, Responses SSE events."""

    def __init__(self, request, model, events=True):
        self.request = request  # the client's decoded Responses body (echoed in the Response)
        self.model = model  # the name the client asked for
        self.events = events
        self.sequence = 0
        self.response = None  # the Response, once the first chunk came
        self.item = None  # the open output item (a dict in response["output"])
        self.key = None  # what the open item is: (REASONING,), (TEXT,) or (TOOL, index)
        self.pieces = []  # the open part's text (or arguments) so far: joined once, when it closes
        self.closed_tools = set()
        self.finish_reason = None
        self.usage = None
        self.done = False
        self.suffix = ""

    # --- the driver's hooks (alloy.client_apis.chat_stream) ------------------------------------------

    def fail(self, message, code="server_error"):
        out = []
        self.start({}, out)
        self.settle()
        self.done = True
        response = self.response
        response["status"] = "failed"
        response["error"] = {"code": code, "message": message}
        self.emit(out, {"type": "response.failed", "response": response})
        return out

    # --- the Response -------------------------------------------------------------------------------

    def start(self, chunk, out):
        if self.response is not None:
            return
        self.suffix = bare_id(chunk.get("id"))
        self.response = response_shell(self.request, "resp_" + self.suffix, self.model)
        self.emit(out, {"type": "response.created", "response": self.response})
        self.emit(out, {"type": "response.in_progress", "response": self.response})

    def end(self):
        out = []
        self.start({}, out)
        self.close_item(out)
        response = self.response
        status, details = finished_status(self.finish_reason)
        response["status"] = status
        response["incomplete_details"] = details
        response["usage"] = response_usage(self.usage)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self.emit(out, {"type": kind, "response": response})
        self.done = True  # only once its events are made: should that raise, fail() still ends it
        return out

    def emit(self, out, event):
        if self.events:
            event["sequence_number"] = self.sequence
            out.append(sse_event(event))
        self.sequence += 1

    # --- chunks -------------------------------------------------------------------------------------

    def on_chunk(self, chunk, out):
        self.start(chunk, out)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            self.on_delta(choice.get("delta") or {}, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def on_delta(self, delta, out):
        thinking = reasoning_text(delta)
        if thinking:
            self.on_reasoning(thinking, out)
        text = self.text_of(delta, self.key)
        if text:
            self.on_text(text, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.on_refusal(refusal, out)
        for call in delta.get("tool_calls") or ():
            self.on_tool(call, out)

    def on_reasoning(self, text, out):
        if self.key != (REASONING,):
            item = {"id": "rs_" + self.next_suffix(), "type": "reasoning", "summary": []}
            self.open_item((REASONING,), item, out)
            item["summary"].append({"type": "summary_text", "text": ""})
            self.emit(out, {
                "type": "response.reasoning_summary_part.added", "item_id": item["id"],
                "output_index": self.index, "summary_index": 0, "part": {"type": "summary_text", "text": ""},
            })  # fmt: skip
        self.pieces.append(text)
        self.emit(out, {
            "type": "response.reasoning_summary_text.delta", "item_id": self.item["id"],
            "output_index": self.index, "summary_index": 0, "delta": text,
        })  # fmt: skip

    def message_part(self, kind, out):
        """The open message's last part if it is of ``kind``, else a new one (opening the message)."""
        if self.key != (TEXT,):
            item = {"id": "msg_" + self.next_suffix(), "type": "message", "status": "in_progress",
                    "role": "assistant", "content": []}  # fmt: skip
            self.open_item((TEXT,), item, out)
        content = self.item["content"]
        if content and content[-1]["type"] == kind:
            return content[-1]
        if content:
            self.close_part(out)
        part = {"type": "output_text", "text": "", "annotations": []} if kind == "output_text" else {
            "type": "refusal", "refusal": ""}  # fmt: skip
        content.append(part)
        self.emit(out, {
            "type": "response.content_part.added", "item_id": self.item["id"], "output_index": self.index,
            "content_index": len(content) - 1, "part": dict(part),
        })  # fmt: skip
        return part

    def on_text(self, text, out):
        self.message_part("output_text", out)
        self.pieces.append(text)
        self.emit(out, {
            "type": "response.output_text.delta", "item_id": self.item["id"], "output_index": self.index,
            "content_index": len(self.item["content"]) - 1, "delta": text, "logprobs": [],
        })  # fmt: skip

    def on_refusal(self, text, out):
        self.message_part("refusal", out)
        self.pieces.append(text)
        self.emit(out, {
            "type": "response.refusal.delta", "item_id": self.item["id"], "output_index": self.index,
            "content_index": len(self.item["content"]) - 1, "delta": text,
        })  # fmt: skip

    def on_tool(self, call, out):
        key, name, arguments = self.tool_fragment(call, self.key, self.closed_tools)
        if name is not None:
            call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else "call_" + bare_id(None)
            item = {"id": "fc_" + self.next_suffix(), "type": "function_call", "status": "in_progress",
                    "arguments": "", "call_id": call_id, "name": name}  # fmt: skip
            self.open_item((TOOL, key), item, out)
        if arguments:
            self.pieces.append(arguments)
            self.emit(out, {
                "type": "response.function_call_arguments.delta", "item_id": self.item["id"],
                "output_index": self.index, "delta": arguments,
            })  # fmt: skip

    # --- items --------------------------------------------------------------------------------------

    @property
    def index(self):
        return len(self.response["output"]) - 1

    def next_suffix(self):
        """Item ids: the response's own suffix and the item's position, unique within it."""
        return f"{self.suffix}_{len(self.response['output'])}"

    def open_item(self, key, item, out):
        self.close_item(out)
        self.key, self.item = key, item
        self.response["output"].append(item)
        added = dict(item)
        if "content" in added:
            added["content"] = []
        if added["type"] == "reasoning":
            added["summary"] = []
        self.emit(out, {"type": "response.output_item.added", "output_index": self.index, "item": added})

    def settle(self):
        """The open part's pieces joined into it (a text grows by one join, not one copy a delta)."""
        item = self.item
        if item is None:
            return
        text = "".join(self.pieces)
        kind = item["type"]
        if kind == "message":
            if not item["content"]:
                return
            part = item["content"][-1]
            part["text" if part["type"] == "output_text" else "refusal"] = text
        elif kind == "reasoning":
            item["summary"][0]["text"] = text
        else:
            item["arguments"] = text or "{}"  # a call without arguments: OpenAI's "{}", never ""

    def close_part(self, out):
        self.settle()
        self.pieces = []
        part = self.item["content"][-1]
        where = {"item_id": self.item["id"], "output_index": self.index, "content_index": len(self.item["content"]) - 1}
        if part["type"] == "output_text":
            self.emit(out, {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []})
        else:
            self.emit(out, {"type": "response.refusal.done", **where, "refusal": part["refusal"]})
        self.emit(out, {"type": "response.content_part.done", **where, "part": dict(part)})

    def close_item(self, out):
        item = self.item
        if item is None:
            return
        kind = item["type"]
        where = {"item_id": item["id"], "output_index": self.index}
        self.settle()
        if kind == "message":
            self.close_part(out)
        elif kind == "reasoning":
            text = item["summary"][0]["text"]
            self.emit(out, {"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": text})
            part = {"type": "summary_text", "text": text}
            self.emit(out, {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": part})
        else:
            self.closed_tools.add(self.key[1])
            self.emit(out, {
                "type": "response.function_call_arguments.done", **where,
                "name": item["name"], "arguments": item["arguments"],
            })  # fmt: skip
        if kind != "reasoning":
            item["status"] = "completed"
        self.emit(out, {"type": "response.output_item.done", "output_index": self.index, "item": item})
        self.item = self.key = None
        self.pieces = []


# --- complete answers ---------------------------------------------------------------------------------

def replay(chat, builder):
    """Feed a complete chat completion (decoded) to ``builder`` as if it had streamed; returns the
    events. Raises ``UpstreamProtocolError`` when ``chat`` is not a completion."""
    try:
        choice = chat["choices"][0]
        message = choice["message"]
        out = []
        builder.start(chat, out)
        thinking = reasoning_text(message)
        if thinking:
            builder.on_reasoning(thinking, out)
        text = text_content(message.get("content"))
        if text:
            builder.on_text(text, out)
        if isinstance(message.get("refusal"), str) and message["refusal"]:
            builder.on_refusal(message["refusal"], out)
        for index, call in enumerate(message.get("tool_calls") or ()):
            builder.on_tool({**call, "index": index}, out)
    except (KeyError, IndexError, TypeError, AttributeError, StreamViolation):
        raise UpstreamProtocolError("the upstream answer is not a chat completion") from None
    builder.finish_reason = choice.get("finish_reason") or "stop"
    builder.usage = chat.get("usage")
    return out + builder.end()


def response_from_chat(chat, request, model):
    """A complete chat completion (decoded) -> the Response object (a dict)."""
    builder = ResponseBuilder(request, model, events=False)
    replay(chat, builder)
    return builder.response


def response_events(chat, request, model):
    """A complete chat completion (decoded) -> the Responses SSE events a stream of it would send."""
    return replay(chat, ResponseBuilder(request, model))
