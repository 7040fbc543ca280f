"""OpenAI chat completions answers as Anthropic Messages answers: shared facts, complete answers, errors.

Response mapping (OpenAI ``chat.completion`` -> Anthropic ``message``); choice 0 only (the request
never asks for more)
    id                  "msg_" + the completion id without its "chatcmpl-" prefix (a fresh random
                        one when the upstream sent none; an id that already is "msg_..." is kept)
    model               the model name the client asked for, not the upstream's
    content             in Anthropic's order: ``thinking`` (from ``reasoning_content``, or the
                        ``reasoning`` some servers send; its ``signature`` is "" as no Anthropic
                        signature exists), ``text`` (``content``; ``refusal`` text too), then one
                        ``tool_use`` per tool call. Empty text makes no block: Anthropic refuses
                        empty text blocks when the client sends the history back.
    tool_use.input      the decoded ``arguments``; "" (a call without arguments) -> {}. Arguments
                        that are not a JSON object keep the call: ``input`` is
                        ``{"_unparsed_arguments": "<the raw string>"}``. The turn keeps its shape
                        (stop_reason stays tool_use, the id can be answered), the client's own input
                        validation refuses the call, and the model is shown its raw text in that
                        tool error and can retry. Dropping the call, or answering {} (which reads as
                        "no arguments"), would hide what went wrong.
    stop_reason         stop -> end_turn, or stop_sequence (with ``stop_sequence`` set) when the
                        upstream names the matched string: OpenAI does not, vLLM's ``stop_reason``
                        field does; length -> max_tokens; tool_calls (or any tool call with stop)
                        -> tool_use; content_filter or a refusal -> refusal; other -> end_turn
    usage               input_tokens = prompt_tokens - cached_tokens, cache_read_input_tokens =
                        ``prompt_tokens_details.cached_tokens`` (Anthropic counts cache reads apart
                        from input), cache_creation_input_tokens = 0 (OpenAI bills no cache writes),
                        output_tokens = completion_tokens (both count reasoning as output)

Error mapping: the status is kept; the body becomes ``{"type": "error", "error": {type, message}}``,
the type from the status (``STATUS_ERROR_TYPES``; other 4xx invalid_request_error, other 5xx
api_error), the message from the OpenAI ``error.message`` (or the body's first 200 characters).
Anthropic clients branch on the status and on ``error.type``; the OpenAI ``code`` has no place.
"""

import uuid

import orjson

from alloy.errors import UpstreamProtocolError
from alloy.providers.anthropic_stream import STATUS_ERROR_TYPES as PROVIDER_STATUS_ERROR_TYPES
from alloy.usage import positive_count

UNPARSED_ARGUMENTS = "_unparsed_arguments"

# OpenAI finish_reason -> Anthropic stop_reason; "end_turn" is refined by ``stop_reason``.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# HTTP status -> Anthropic error type: the provider translator's table (Anthropic's documented
# statuses), plus 503, which other servers say for Anthropic's own 529 "overloaded".
STATUS_ERROR_TYPES = {**PROVIDER_STATUS_ERROR_TYPES, 503: "overloaded_error"}

# An error inside a stream has no status: its OpenAI ``code`` (else ``type``) -> Anthropic type.
# Covers OpenAI's own values and those of ``alloy.errors`` and the provider translators.
OPENAI_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "invalid_api_key": "authentication_error",
    "permission_denied": "permission_error",
    "not_found": "not_found_error",
    "model_not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "context_length_exceeded": "invalid_request_error",
    "insufficient_quota": "billing_error",
    "rate_limit_exceeded": "rate_limit_error",
    "deployments_busy": "rate_limit_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
    "overloaded": "overloaded_error",
    "service_unavailable": "overloaded_error",
    "no_healthy_deployment": "overloaded_error",
    "upstream_timeout": "timeout_error",
}


# --- shared facts: ids, usage, stop reasons, error objects ------------------------------------------

def message_id(completion_id):
    """"msg_" + the completion id without "chatcmpl-" (kept whole when it already is a "msg_" id, as
    the Anthropic provider translator makes them), or a fresh one."""
    if not isinstance(completion_id, str) or not completion_id:
        return "msg_" + uuid.uuid4().hex
    bare = completion_id.removeprefix("chatcmpl-")
    return bare if bare.startswith("msg_") else "msg_" + bare


def anthropic_usage(usage):
    """OpenAI usage (or None) -> Anthropic usage (see the module docstring)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = positive_count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = min(positive_count(details.get("cached_tokens")), prompt) if isinstance(details, dict) else 0
    return {
        "input_tokens": prompt - cached,
        "output_tokens": positive_count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def stop_reason(finish_reason, matched_stop=None, tool_calls=False, refused=False):
    """(stop_reason, stop_sequence) for what the choice ended with (see the module docstring)."""
    reason = STOP_REASONS.get(finish_reason, "end_turn") if type(finish_reason) is str else "end_turn"
    if reason != "end_turn":
        return reason, None
    # A plain end says less than the answer itself: a refusal, tool calls, a named stop string.
    if refused:
        return "refusal", None
    if tool_calls:
        return "tool_use", None
    if isinstance(matched_stop, str) and matched_stop:
        return "stop_sequence", matched_stop
    return "end_turn", None


def anthropic_error(kind, message):
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error_type(status):
    """The Anthropic error type an HTTP error status carries."""
    if status in STATUS_ERROR_TYPES:
        return STATUS_ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def openai_error_message(error):
    """The message of a decoded OpenAI-style error body, or None (also reads the common variants
    ``{"error": "text"}``, ``{"message": ...}`` and ``{"detail": ...}``)."""
    if not isinstance(error, dict):
        return None
    inner = error.get("error")
    if isinstance(inner, dict):
        message = inner.get("message")
    elif isinstance(inner, str):
        message = inner
    else:
        message = error.get("message") or error.get("detail")
    return message if isinstance(message, str) and message else None


def stream_error_type(error):
    """The Anthropic type of an OpenAI error object met inside a stream (no status to go by)."""
    for name in ("code", "type"):
        value = error.get(name) if isinstance(error, dict) else None
        if isinstance(value, str) and value in OPENAI_ERROR_TYPES:
            return OPENAI_ERROR_TYPES[value]
    return "api_error"


# --- errors -------------------------------------------------------------------------------------------

def anthropic_error_body(status, openai_error_body):
    """An error answer's status and OpenAI-shaped body (bytes) -> the Anthropic error body (bytes).

    Any body is accepted (not JSON, another shape): the message then quotes its start.
    """
    message = upstream_error_message(status, decoded_error(openai_error_body), openai_error_body)
    return orjson.dumps(anthropic_error(anthropic_error_type(status), message))


def decoded_error(body):
    """An upstream error body decoded, or None when it is not JSON (a proxy's HTML page...)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def upstream_error_message(status, decoded, body):
    """The message of an upstream error answer: its own where it has one (``decoded``), else the
    status and the start of its ``body``."""
    message = openai_error_message(decoded)
    if message is None:
        excerpt = bytes(body[:200]).decode("utf-8", "replace").strip()
        message = f"upstream answered status {status}" + (f": {excerpt}" if excerpt else "")
    return message


# --- complete answers ---------------------------------------------------------------------------------

def messages_response_from_chat(chat, model, names=None):
    """An OpenAI chat completion (decoded) -> the Anthropic Message (a dict) for ``model``;
    ``names``: the client's long tool names by their short ones (``alloy.client_apis.tool_names``).

    Raises:
        alloy.errors.UpstreamProtocolError: ``chat`` is not a completion with ``choices[0].message``
            (502 to the client, through ``anthropic_error_body``).
    """
    try:
        choice = chat["choices"][0]
        message = choice["message"]
        content = content_blocks(message, names)
    except (KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamProtocolError("the upstream answer is not a chat completion") from None
    reason, sequence = stop_reason(
        choice.get("finish_reason"),
        choice.get("stop_reason"),
        tool_calls=any(block["type"] == "tool_use" for block in content),
        refused=bool(message.get("refusal")),
    )
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(chat.get("usage")),
    }


def reasoning_text(holder):
    """The reasoning of a message or a delta: ``reasoning_content`` (DeepSeek, vLLM...) or
    ``reasoning`` (OpenRouter, newer vLLM), whichever is a non-empty string; else the ``thinking``
    parts of a ``content`` array (Mistral's reasoning models, in answers and stream deltas alike)."""
    for name in ("reasoning_content", "reasoning"):
        value = holder.get(name)
        if isinstance(value, str) and value:
            return value
    content = holder.get("content")
    if isinstance(content, list):
        return "".join(_part_text(part.get("thinking")) for part in content if isinstance(part, dict) and part.get("type") == "thinking")
    return ""


def text_content(content):
    """``content`` as text: a string, or the text of an array of parts (some servers send one;
    Mistral's reasoning models put ``thinking`` parts there too, read by ``reasoning_text``)."""
    if isinstance(content, list):
        return "".join(_part_text(part.get("text")) for part in content if isinstance(part, dict) and part.get("type") != "thinking")
    return content if isinstance(content, str) else ""


def _part_text(value):
    """A part's text: a string, or (a Mistral thinking part's) an array of text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part.get("text") or "" for part in value if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def content_blocks(message, names=None):
    blocks = []
    thinking = reasoning_text(message)
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": ""})
    for text in (text_content(message.get("content")), message.get("refusal")):
        if isinstance(text, str) and text:
            blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        blocks.append(tool_use_block(call, names))
    return blocks


def tool_use_id(call_id):
    return call_id if isinstance(call_id, str) and call_id else "toolu_" + uuid.uuid4().hex[:24]


def tool_use_block(call, names=None):
    function = call["function"]
    name = function["name"]
    if not isinstance(name, str):
        raise TypeError("a tool call without a name")
    if names:
        name = names.get(name, name)
    arguments = tool_input(function.get("arguments"))
    return {"type": "tool_use", "id": tool_use_id(call.get("id")), "name": name, "input": arguments}


def tool_input(arguments):
    """Tool call ``arguments`` -> a tool_use ``input`` object (see the module docstring)."""
    if isinstance(arguments, dict):
        return arguments  # some servers send the object itself
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        decoded = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        decoded = None
    if isinstance(decoded, dict):
        return decoded
    raw = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return {UNPARSED_ARGUMENTS: raw}
