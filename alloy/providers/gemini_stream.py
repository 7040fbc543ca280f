"""Gemini answers as OpenAI chat completions: shared facts (finish reasons, errors, usage, parts) and
the stream translator.

Theory of operation
``streamGenerateContent?alt=sse`` sends a sequence of unnamed SSE events, each a whole
``GenerateContentResponse``: candidates with the parts generated since the previous event, the
``finishReason`` of a candidate on its last event, and ``usageMetadata`` (cumulative: the last one
wins). A function call always arrives whole, in one part. So, unlike Anthropic's, the stream has
no block structure to follow: each event is translated on its own, and the translator only keeps

    per candidate index: whether the role chunk went out, how many tool calls it sent, whether it
    finished (and with calls, so STOP reads as "tool_calls"),
    the chunk id (from the first event's ``responseId``), the latest usage, and ``done``.

Rules it keeps:
1. Each Gemini event yields its OpenAI chunks at once, in order: the role chunk (first time a
   candidate appears), one ``reasoning_content`` chunk for its thought parts, one content chunk for
   its text, one chunk per function call (index, id, type, name and the whole ``arguments`` JSON in
   one delta), then the finish chunk when the event carries ``finishReason``.
2. The usage chunk (``choices: []``, when asked for; with the cached and reasoning token details
   of a complete answer) and ``[DONE]`` are owed until the upstream stream ends (``finish``):
   Gemini may send usage after the finish reason.
3. An ``error`` object in the stream, a prompt blocked before any candidate, an event that is not a
   JSON object, or the end of the stream before every candidate seen has a ``finishReason`` ends the
   stream with one OpenAI error event, then ``[DONE]``. Nothing is sent after ``[DONE]``.
4. Parts OpenAI cannot express (executable code, inline media) are dropped, and so is a text
   part's ``thoughtSignature``; a function call's is remembered under its tool call id
   (``alloy.providers.gemini_signatures``), so the next turn can send it back.
"""

import time
import uuid

import orjson

from alloy.errors import UpstreamProtocolError, error_payload
from alloy.headers import DONE_EVENT as DONE
from alloy.usage import count
from alloy.providers import gemini_signatures as signatures

# Gemini finishReason -> OpenAI finish_reason; STOP with function calls reads as "tool_calls".
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# Finish reasons that say the model's tool call failed. With nothing else said the answer is empty,
# so it is an error the SDKs retry (a 502, or an error event in a stream), not an empty success.
TOOL_CALL_FAILURES = frozenset(("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"))
# Google's canonical status -> (HTTP status, OpenAI error type, code).
STATUS_ERRORS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error", "invalid_request"),
    "FAILED_PRECONDITION": (400, "invalid_request_error", "failed_precondition"),
    "OUT_OF_RANGE": (400, "invalid_request_error", "invalid_request"),
    "UNAUTHENTICATED": (401, "invalid_request_error", "invalid_api_key"),
    "PERMISSION_DENIED": (403, "invalid_request_error", "permission_denied"),
    "NOT_FOUND": (404, "invalid_request_error", "not_found"),
    "RESOURCE_EXHAUSTED": (429, "requests", "rate_limit_exceeded"),
    "INTERNAL": (500, "server_error", "internal_error"),
    "UNAVAILABLE": (503, "server_error", "service_unavailable"),
    "DEADLINE_EXCEEDED": (504, "server_error", "upstream_timeout"),
}
# When the body names no known status: the one its HTTP status implies.
HTTP_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Google answers a bad API key with 400 INVALID_ARGUMENT and this ErrorInfo reason; OpenAI clients
# know it as 401.
KEY_INVALID = "API_KEY_INVALID"


def finish_reason(reason, with_calls):
    """The OpenAI finish reason for a Gemini one (None while the candidate goes on)."""
    if not reason:
        return None
    finish = FINISH_REASONS.get(reason, "stop") if type(reason) is str else "stop"
    return "tool_calls" if finish == "stop" and with_calls else finish


def tool_call_failure(candidate):
    """OpenAI's error object for a candidate that ended because its tool call failed (None for any
    other finish), with Gemini's ``finishMessage`` when it gives one."""
    reason = candidate.get("finishReason")
    if type(reason) is not str or reason not in TOOL_CALL_FAILURES:
        return None
    detail = candidate.get("finishMessage")
    message = f"Gemini could not complete the model's tool call ({reason})"
    if isinstance(detail, str) and detail:
        message += f": {detail}"
    return openai_error("server_error", "malformed_tool_call", message)


def openai_error(kind, code, message):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def google_error(status, body):
    """(HTTP status, OpenAI error dict) for a Google error body ``{"error": {code, message, status}}``
    (or a one-element array of it, as the JSON-array stream answers)."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, list) and decoded:
        decoded = decoded[0]
    error = decoded.get("error") if isinstance(decoded, dict) else None
    error = error if isinstance(error, dict) else {}
    name = error.get("status") if error.get("status") in STATUS_ERRORS else HTTP_STATUSES.get(status)
    if name is None and isinstance(error.get("code"), int):
        name = HTTP_STATUSES.get(error["code"])
    # A status Google's table does not name (a 413, a 409 from a proxy in front): the client's
    # error when it is a 4xx, the upstream's otherwise.
    unnamed = (status, "invalid_request_error", "invalid_request") if 400 <= status < 500 else (502, "server_error", "upstream_error")
    mapped, kind, code = STATUS_ERRORS.get(name) or unnamed
    reasons = [detail.get("reason") for detail in error.get("details") or () if isinstance(detail, dict)]
    if KEY_INVALID in reasons:
        mapped, kind, code = 401, "invalid_request_error", "invalid_api_key"
    message = error.get("message")
    if not isinstance(message, str) or not message:
        excerpt = body[:200].decode("utf-8", "replace").strip()
        message = f"Gemini answered status {status}" + (f": {excerpt}" if excerpt else "")
    if status >= 400 and mapped != 401:
        # The HTTP status wins over the body's (a 4xx stays itself); unknown 5xx become 502.
        mapped = status if status < 500 or status in (500, 503, 504) else 502
    return mapped, openai_error(kind, code, message)


def translate_error(status, body):
    mapped, payload = google_error(status, body)
    return mapped, orjson.dumps(payload)


def chat_id(data):
    """The chat completion id for a Gemini answer: its ``responseId`` when it is a string."""
    given = data.get("responseId")
    return "chatcmpl-" + (given if type(given) is str and given else uuid.uuid4().hex)


def block_reason(data):
    """Why Gemini blocked the prompt (``promptFeedback.blockReason``), or None."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if type(feedback) is dict else None
    return reason if type(reason) is str and reason else None


def candidate_index(candidate, position):
    """A candidate's ``index``, or its position in the list when it has none that is a number."""
    index = candidate.get("index")
    return index if type(index) is int and index >= 0 else position


def openai_usage(usage):
    """Gemini ``usageMetadata`` -> OpenAI usage. Thinking tokens count as completion tokens (as
    OpenAI's reasoning tokens do) and are reported as ``reasoning_tokens``; cached tokens are part of
    the prompt count on both sides. The details are there on every answer, 0 when Gemini has none."""
    prompt = count(usage, "promptTokenCount") + count(usage, "toolUsePromptTokenCount")  # both billed as input
    thoughts = count(usage, "thoughtsTokenCount")
    completion = count(usage, "candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": count(usage, "totalTokenCount") or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": count(usage, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def choice_parts(candidate):
    """(texts, OpenAI tool calls, thought texts) of one candidate's parts; media parts are dropped."""
    texts, calls, thoughts = [], [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            if isinstance(part.get("text"), str):
                thoughts.append(part["text"])
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            given = call.get("id")
            call_id = given if type(given) is str and given else "call_" + uuid.uuid4().hex[:24]
            if type(call["name"]) is not str or not call["name"]:
                raise TypeError("a function call without a name")  # the answer is malformed (a 502)
            arguments = orjson.dumps(call.get("args") or {}).decode()
            function = {"name": call["name"], "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
            signatures.remember(call_id, part.get("thoughtSignature"))  # for the next turn
    return texts, calls, thoughts


class Candidate:
    __slots__ = ("role_sent", "calls", "spoke", "finished")

    def __init__(self):
        self.role_sent = False
        self.calls = 0
        self.spoke = False  # some text went out
        self.finished = False


class StreamTranslator:
    """Gemini ``streamGenerateContent?alt=sse`` events -> OpenAI ``chat.completion.chunk`` events."""

    def __init__(self, model, include_usage):
        self.model = model
        self.include_usage = include_usage
        # With include_usage, OpenAI gives every chunk before the usage chunk "usage": null.
        self.end = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self.created = int(time.time())
        self.head = b""  # {"id":..,"object":..,"created":..,"model":.. without the closing brace
        self.candidates = {}  # index -> Candidate
        self.usage = None
        self.done = False

    def feed(self, event_name, data):
        """One Gemini SSE event (the ``event:`` value, unused, and the ``data:`` bytes) -> OpenAI events."""
        if self.done:
            return []
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.fail("upstream stream event is not JSON")
        if type(event) is not dict:
            return self.fail("upstream stream event is not a JSON object")
        if "error" in event:
            self.done = True
            _, payload = google_error(200, data)
            return [sse(payload), DONE]
        if not self.head:
            chunk_id = chat_id(event)
            head = {"id": chunk_id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            self.head = orjson.dumps(head)[:-1]  # the fixed part of every chunk, serialised once
        if event.get("usageMetadata"):
            self.usage = event["usageMetadata"]
        candidates = event.get("candidates") or []
        if not candidates and not self.candidates:
            reason = block_reason(event)
            if reason:
                self.done = True
                message = f"Gemini blocked the prompt ({reason})"
                return [sse(openai_error("invalid_request_error", "content_filter", message)), DONE]
        out = []
        for position, candidate in enumerate(candidates):
            if type(candidate) is not dict:
                return self.fail("upstream stream candidate is not a JSON object")
            try:
                out.extend(self.on_candidate(candidate_index(candidate, position), candidate))
            except (AttributeError, KeyError, TypeError):  # a part or field of the wrong JSON type
                return out + self.fail("malformed upstream stream candidate")
        return out

    def on_candidate(self, index, candidate):
        state = self.candidates.get(index)
        if state is None:
            state = self.candidates[index] = Candidate()
        out = []
        texts, calls, thoughts = choice_parts(candidate)
        if not state.role_sent:
            state.role_sent = True
            # OpenAI opens an answer that is only tool calls with content null, and a text with "":
            # what the SDK's accumulated message.content ends as (None, as without streaming).
            out.append(self.chunk(index, {"role": "assistant", "content": None if calls and not texts else ""}))
        thought = "".join(thoughts)
        if thought:
            out.append(self.chunk(index, {"reasoning_content": thought}))
        text = "".join(texts)
        if text:
            state.spoke = True
            out.append(self.chunk(index, {"content": text}))
        for call in calls:
            call["index"] = state.calls
            state.calls += 1
            out.append(self.chunk(index, {"tool_calls": [call]}))
        if not state.finished and not state.spoke and not state.calls:
            failure = tool_call_failure(candidate)
            if failure is not None:  # an empty answer: the stream ends with the error instead
                self.done = True
                return out + [sse(failure), DONE]
        finish = finish_reason(candidate.get("finishReason"), state.calls > 0)
        if finish is not None and not state.finished:
            state.finished = True
            out.append(self.chunk(index, {}, finish))
        return out

    def final_usage(self):
        """The stream's usage in OpenAI's shape (None when the provider sent none), for the call's
        account whether or not the client asked to receive it."""
        return openai_usage(self.usage) if self.usage else None

    def complete(self):
        """Every candidate gave its finishReason (or [DONE] went out): what is still owed is only
        ``finish``'s usage chunk and [DONE], which a failure of the upstream's framing after it need
        not cost the client (a Gemini stream ends with its connection's close, nothing else)."""
        return self.done or (bool(self.candidates) and all(state.finished for state in self.candidates.values()))

    def finish(self):
        """The upstream stream ended: the usage chunk and [DONE], or an error when it broke off."""
        if self.done:
            return []
        if not self.candidates or not all(state.finished for state in self.candidates.values()):
            return self.fail("upstream stream ended before a finishReason")
        self.done = True
        out = []
        if self.include_usage:
            usage = orjson.dumps(openai_usage(self.usage or {}))
            out.append(b"data: " + self.head + b',"choices":[],"usage":' + usage + b"}\n\n")
        out.append(DONE)
        return out

    def fail(self, message):
        self.done = True
        return [sse(error_payload(UpstreamProtocolError(message))), DONE]

    def chunk(self, index, delta, finish=None):
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + self.head + b',"choices":[' + orjson.dumps(choice) + self.end


def sse(payload):
    return b"data: " + orjson.dumps(payload) + b"\n\n"
