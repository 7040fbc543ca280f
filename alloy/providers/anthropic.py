"""Anthropic Messages API (``POST /v1/messages``) behind the OpenAI Chat Completions API.

Request mapping (OpenAI -> Anthropic)
    messages            ``system`` / ``developer`` messages -> top-level ``system`` (text joined
                        with a blank line, in order, wherever they stand; a list of text blocks, one
                        per part, when any of them carries ``cache_control``); user / assistant /
                        tool messages -> alternating turns of content blocks: consecutive messages of
                        one role merge into one turn, ``tool`` messages become ``tool_result`` blocks
                        of a user turn (placed before that turn's text, as Anthropic requires)
    content parts       text -> text block (empty text dropped: Anthropic refuses empty blocks);
                        image_url data: URL -> base64 image; http(s) URL -> url image;
                        file with ``file_data`` (a data URL): PDF -> base64 document, text/plain ->
                        text document, other types and ``file_id`` -> 400;
                        refusal (assistant) -> text; input_audio -> 400
    cache_control       on a content part (``{"type": "text", "text": ..., "cache_control":
                        {"type": "ephemeral"}}``, the form OpenAI clients use with Anthropic-compatible
                        gateways) -> the same ``cache_control`` on the block it becomes (text, image,
                        system text; on a tool message's part -> its ``tool_result`` block); on a
                        message itself -> its last block; on a function tool (beside ``function``)
                        -> that tool. Passed as it is (Anthropic checks the type, the ttl and its limit
                        of 4 breakpoints)
    tool_calls          -> ``tool_use`` blocks, ``input`` = the decoded ``arguments`` (a JSON object;
                        "" reads as {}; anything else -> 400 naming the message)
    max_completion_tokens / max_tokens -> ``max_tokens`` (the first present; else the provider's
                        ``max_tokens_default``: Anthropic requires it). With thinking, see below
    reasoning_effort    Claude 4.6 and later (and a Claude name without a version: the previews)
                        -> ``thinking: {type: adaptive}`` and ``output_config: {effort}``: minimal and
                        low -> low, medium, high, max as named, xhigh -> xhigh from Claude 4.7 on,
                        high on 4.6 (which predates it). Claude 4.7 and later refuse the budget form
                        below; 4.6 deprecates it. max_tokens is left as it is.
                        Earlier models -> ``thinking: {type: enabled, budget_tokens}`` by ``THINKING_BUDGETS``:
                        minimal 1024 (Anthropic's minimum), low 2048, medium 8192, high 16384, xhigh
                        24576, max 27904; "none" sends no thinking. Anthropic counts thinking inside
                        ``max_tokens`` and wants ``budget_tokens < max_tokens``, so max_tokens is
                        RAISED, never clamped: it becomes max(M, budget + min(M, D)) for the
                        client's max M (D = max_tokens_default when the client sent none): never
                        below the client's, and the answer keeps min(M, D) tokens beside the
                        budget. With thinking, Anthropic accepts temperature 1 only and top_p 0.95..1:
                        another temperature is dropped, a lower top_p raised to 0.95. Thinking is
                        NOT requested (the effort is ignored) when tool_choice forces a tool
                        (required or a named function: Anthropic refuses forced tool use with
                        thinking), when the last assistant turn holds tool calls (Anthropic wants
                        that turn to start with its signed thinking block, which an OpenAI history
                        cannot carry), and for models that do not think (Claude 2 and 3 before 3.7)
    stop                str or list -> ``stop_sequences``
    temperature, top_p  temperature clamped to Anthropic's 0..1 (OpenAI's range is 0..2: 1.5 is sent
                        as 1); top_p passed as it is, unless temperature is sent too: Anthropic says
                        to set one or the other, and Claude Sonnet 4.5, Opus 4.1 and later answer
                        400 to both, so temperature wins and top_p is dropped
    tools               function tools -> {name, description, input_schema}; other tool types -> 400
    tool_choice         auto/none/required/{function} -> {auto}/{none}/{any}/{tool, name}; sent only
                        with tools; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``;
                        ``{type: allowed_tools, allowed_tools: {mode, tools}}`` -> only those tools
                        sent, ``mode`` (auto or required) as the choice
    response_format     json_object / json_schema -> an instruction appended to ``system`` asking
                        for one JSON value and nothing else (with the schema, pretty-printed, for
                        json_schema). Anthropic then answers JSON text; it is not enforced by a
                        grammar as with OpenAI's strict mode, so clients should still validate.
    user                -> ``metadata.user_id``
    stream              -> ``stream``; ``stream_options.include_usage`` is read by the proxy
Rejected with 400 (the client asked for something the answer cannot contain): ``n`` > 1,
``logprobs: true``, ``top_logprobs``, ``audio`` / ``modalities`` with audio, the legacy
``functions`` / ``function_call`` (use ``tools``), ``function`` role messages, a
``reasoning_effort`` OpenAI does not define, and the embeddings endpoint (Anthropic has none).
Ignored (tuning or bookkeeping with no Anthropic counterpart; the answer keeps its shape):
``frequency_penalty``, ``presence_penalty``, ``seed``, ``logit_bias``, ``service_tier``, ``store``,
``metadata``, ``prediction``, ``verbosity``, ``web_search_options`` and any field this table does
not name.

Response mapping (Anthropic -> OpenAI)
    text blocks         -> ``content`` (joined); tool_use -> ``tool_calls``
    thinking blocks     -> ``reasoning_content`` (joined with a blank line; the field DeepSeek and
                        vLLM use, read by the openai SDK as an extra field). The ``signature`` and
                        ``redacted_thinking`` blocks are dropped: an OpenAI message has no place for
                        them, so a signed thinking block cannot survive an OpenAI round trip (hence
                        no thinking on a turn that continues a tool call, above)
    usage               prompt_tokens = input + cache read + cache creation tokens;
                        ``prompt_tokens_details``: ``cached_tokens`` = cache_read_input_tokens,
                        ``cache_write_tokens`` = cache_creation_input_tokens (0 when absent), on
                        every answer. Anthropic counts thinking inside output_tokens and reports no
                        count of its own, so there is no ``completion_tokens_details``
Complete answers: ``translate_response``; streams: ``anthropic_stream``.
"""

import base64
import re
import time

import orjson

# The package, not its names: ``alloy.providers`` imports this module while it is initialising, so
# ``UpstreamCall`` is looked up when a request is built, not at import time.
from alloy.providers import types as providers  # UpstreamCall
from alloy.errors import InvalidRequest, UpstreamProtocolError, error_payload
from alloy.providers.anthropic_stream import (
    FINISH_REASONS,
    STATUS_ERROR_TYPES,
    THOUGHT_SEPARATOR,
    StreamTranslator,
    chat_id,
    name_of,
    openai_error,
    openai_status,
    openai_usage,
    text_of,
)

__all__ = ["StreamTranslator", "build_request", "translate_response"]

PATH = b"/v1/messages"
DEFAULT_VERSION = b"2023-06-01"
CHAT = "chat/completions"
SYSTEM_ROLES = frozenset(("system", "developer"))
TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
# reasoning_effort -> thinking.budget_tokens. Each sits inside the band the Messages client API
# maps back to the same effort (< 4096 low, < 16384 medium, else high); max leaves 4096 tokens of
# answer under the 32000 output tokens of the smallest thinking Claude models (Opus 4 and 4.1).
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 27904}
MIN_THINKING_TOP_P = 0.95  # with thinking, Anthropic accepts top_p from 0.95 to 1
# Models that do not think (Claude Instant, 2, and 3 before 3.7): reasoning_effort is ignored there.
NO_THINKING = re.compile(r"claude-(?:instant|2|3-(?!7))")
# A Claude model's version, in both spellings: claude-opus-4-7(-date), claude-3-7-sonnet(-date);
# also behind a prefix (anthropic.claude-..., a Vertex @date). A minor has one or two digits: the
# eight of a date are not one.
NAMED_VERSION = re.compile(r"claude-[a-z]+-(\d+)(?:[-.](\d{1,2}))?(?!\d)")
NUMBERED_VERSION = re.compile(r"claude-(\d+)(?:[-.](\d{1,2}))?(?!\d)")
ADAPTIVE_SINCE = (4, 6)  # thinking {type: adaptive} + output_config.effort; 4.7 refuses budgets
XHIGH_SINCE = (4, 7)  # the first with the xhigh effort
ADAPTIVE_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}
MAX_TEMPERATURE = 1  # Anthropic's range is 0..1
JSON_OBJECT_INSTRUCTION = (
    "Answer with one valid JSON object and nothing else: no prose before or after it, no code fences."
)
JSON_SCHEMA_INSTRUCTION = (
    "Answer with one valid JSON value that conforms to the JSON Schema below, and nothing else: "
    "no prose before or after it, no code fences.\nSchema"
)


def _reject_n(value):
    return value not in (None, 1)


def _truthy(value):
    return bool(value)


def _present(value):
    return value is not None


def _audio_modality(value):
    return isinstance(value, list) and "audio" in value


# field -> (test of the value, why). A field whose test is true cannot be answered faithfully.
REJECTED = {
    "n": (_reject_n, "Anthropic returns one choice per request; n must be 1"),
    "logprobs": (_truthy, "Anthropic does not return log probabilities"),
    "top_logprobs": (_present, "Anthropic does not return log probabilities"),
    "audio": (_present, "Anthropic does not produce audio"),
    "modalities": (_audio_modality, "Anthropic does not produce audio"),
    "functions": (_present, "the legacy functions field is not supported; use tools"),
    "function_call": (_present, "the legacy function_call field is not supported; use tool_choice"),
}


# --- request ----------------------------------------------------------------------------------------

def build_request(body, upstream_model, endpoint, settings):
    """An OpenAI chat completions body -> the Anthropic Messages call (see the module docstring).

    Raises:
        alloy.errors.InvalidRequest: what Anthropic cannot express, with ``param`` naming the field.
    """
    if endpoint != CHAT:
        raise InvalidRequest(f"the Anthropic API has no {endpoint} endpoint", code="unsupported_endpoint")
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for name, (test, why) in REJECTED.items():
        if test(body.get(name)):
            raise InvalidRequest(f"{name}: {why}", param=name, code="unsupported_parameter")
    effort = reasoning_effort(body.get("reasoning_effort"))
    system, turns = convert_messages(body.get("messages"))
    instruction = response_format_instruction(body.get("response_format"))
    if instruction:
        system.append({"type": "text", "text": instruction})
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out = {
        "model": upstream_model,
        "messages": turns,
        "max_tokens": settings.max_tokens_default if max_tokens is None else max_tokens,
    }
    if system:
        cached = any("cache_control" in block for block in system)
        out["system"] = system if cached else "\n\n".join(block["text"] for block in system)
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    temperature = out.get("temperature")
    if isinstance(temperature, (int, float)) and temperature > MAX_TEMPERATURE:
        out["temperature"] = MAX_TEMPERATURE
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidRequest("tools must be an array", param="tools")
        tools, choice = providers.allowed_tools(tools, body.get("tool_choice"))
        out["tools"] = [convert_tool(tool, i) for i, tool in enumerate(tools)]
        choice = convert_tool_choice(choice, body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if effort is not None and thinking_allowed(upstream_model, out):
        version = claude_version(upstream_model)
        if version is None or version >= ADAPTIVE_SINCE:
            add_adaptive_thinking(out, effort, version)
        else:
            add_thinking(out, THINKING_BUDGETS[effort], settings.max_tokens_default, max_tokens)
    if out.get("temperature") is not None and out.get("top_p") is not None:
        del out["top_p"]  # one or the other (see the module docstring)
    if body.get("user") is not None:
        out["metadata"] = {"user_id": body["user"]}
    stream = bool(body.get("stream"))
    if stream:
        out["stream"] = True
    headers = [
        (b"anthropic-version", settings.api_version.encode() if settings.api_version else DEFAULT_VERSION),
        (b"content-type", b"application/json"),
    ]
    if settings.api_key:
        headers.insert(0, (b"x-api-key", settings.api_key.encode()))
    return providers.UpstreamCall(method=b"POST", path=PATH, headers=headers, body=orjson.dumps(out), stream=stream)


# --- thinking ---------------------------------------------------------------------------------------

def reasoning_effort(value):
    """The effort that asks for thinking, None for none (absent or "none"); 400 for an unknown one."""
    if value is None or value == "none":
        return None
    if not isinstance(value, str) or value not in THINKING_BUDGETS:
        efforts = ", ".join(("none", *THINKING_BUDGETS))
        raise InvalidRequest(f"reasoning_effort must be one of {efforts}", param="reasoning_effort")
    return value


def thinking_allowed(model, out):
    """Whether Anthropic would take ``thinking`` with this request (see the module docstring)."""
    if NO_THINKING.match(model):
        return False
    if (out.get("tool_choice") or {}).get("type") in ("any", "tool"):
        return False
    for turn in reversed(out["messages"]):
        if turn["role"] == "assistant":
            return not any(block["type"] == "tool_use" for block in turn["content"])
    return True


def claude_version(model):
    """(major, minor) of a Claude model's name, or None when it names no version."""
    found = NAMED_VERSION.search(model) or NUMBERED_VERSION.search(model)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def add_thinking(out, budget, default, client_max):
    """``thinking`` with ``budget`` on the Messages body ``out``, and what it requires of the rest."""
    room = default if client_max is None else client_max
    if type(room) is int:  # anything else is the client's error: Anthropic answers it
        out["max_tokens"] = max(room, budget + min(room, default))
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    thinking_sampling(out)


def add_adaptive_thinking(out, effort, version):
    """Adaptive ``thinking`` at ``effort`` (Claude 4.6 and later): the model decides how much."""
    named = ADAPTIVE_EFFORTS[effort]
    if named == "xhigh" and version is not None and version < XHIGH_SINCE:
        named = "high"
    out["thinking"] = {"type": "adaptive"}
    out["output_config"] = {"effort": named}
    thinking_sampling(out)


def thinking_sampling(out):
    """With thinking, Anthropic accepts temperature 1 only and top_p from 0.95 to 1."""
    if out.get("temperature") is not None and out["temperature"] != 1:
        del out["temperature"]
    top_p = out.get("top_p")
    if isinstance(top_p, (int, float)) and top_p < MIN_THINKING_TOP_P:
        out["top_p"] = MIN_THINKING_TOP_P


# --- messages ---------------------------------------------------------------------------------------

def convert_messages(messages):
    """OpenAI messages -> (system text blocks, Anthropic turns)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    system, turns = [], []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{param} must be an object", param=param)
        role = message.get("role")
        if not isinstance(role, str):
            raise InvalidRequest(f"{param}.role must be a string", param=f"{param}.role")
        if role in SYSTEM_ROLES:
            system.extend(with_message_cache(system_blocks(message.get("content"), param), message, param))
            continue
        if role == "user":
            blocks = user_blocks(message.get("content"), param)
        elif role == "assistant":
            blocks = assistant_blocks(message, param)
        elif role == "tool":
            blocks = [tool_result(message, param)]
            role = "user"
        else:
            raise InvalidRequest(f"{param}.role {role!r} is not supported", param=f"{param}.role")
        blocks = with_message_cache(blocks, message, param)
        if not blocks:
            continue  # an empty turn carries nothing, and Anthropic refuses it
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants a user turn's tool_result blocks first; the order among them is kept.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    if not turns:
        # Every turn was empty (an empty string, no parts): the provider would refuse the request.
        raise InvalidRequest(
            "messages must contain a user or assistant message with some content: Anthropic refuses empty messages",
            param="messages",
        )
    return system, turns


def cache_control(holder, param):
    """The ``cache_control`` of a content part, message or tool (None when it has none)."""
    value = holder.get("cache_control")
    if value is not None and not isinstance(value, dict):
        raise InvalidRequest(f"{param}.cache_control must be an object", param=f"{param}.cache_control")
    return value


def with_cache(block, cache):
    if cache is not None:
        block["cache_control"] = cache
    return block


def with_message_cache(blocks, message, param):
    """A message's own ``cache_control`` marks its last block (the end of what it adds)."""
    cache = cache_control(message, param)
    if cache is not None and blocks:
        blocks[-1]["cache_control"] = cache
    return blocks


def text_parts(content, param):
    """[(text, cache_control)] of a string or an array of text parts (system, developer, tool)."""
    if content is None or isinstance(content, str):
        return [(content or "", None)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{param}.content must be a string or an array", param=f"{param}.content")
    parts = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequest(f"{where} must be a text part", param=where)
        parts.append((part["text"], cache_control(part, where)))
    return parts


def system_blocks(content, param):
    """The text blocks of a system or developer message: its parts joined into one block, or one
    block per non-empty part when a part carries ``cache_control`` (the breakpoint stays where it is)."""
    parts = text_parts(content, param)
    if all(cache is None for _, cache in parts):
        return text_block("\n".join(text for text, _ in parts))
    return [block for text, cache in parts for block in text_block(text, cache)]


def text_block(text, cache=None):
    return [with_cache({"type": "text", "text": text}, cache)] if text else []


def user_blocks(content, param):
    if content is None or isinstance(content, str):
        return text_block(content)
    if not isinstance(content, list):
        raise InvalidRequest(f"{param}.content must be a string or an array", param=f"{param}.content")
    blocks = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.extend(text_block(part.get("text"), cache_control(part, where)))
        elif kind == "image_url":
            blocks.append(with_cache(image_block(part.get("image_url"), where), cache_control(part, where)))
        elif kind == "file":
            blocks.append(with_cache(document_block(part, where), cache_control(part, where)))
        else:
            raise InvalidRequest(f"{where}: content part type {kind!r} is not supported", param=where)
    return blocks


def document_block(part, param):
    """A ``file`` part -> a document block: Anthropic reads PDFs (base64) and plain text."""
    media_type, data = providers.file_data(part, param)
    if media_type == "application/pdf":
        return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if media_type == "text/plain":
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(f"{param}: a text/plain file must be base64 of UTF-8 text", param=param) from None
        return {"type": "document", "source": {"type": "text", "media_type": media_type, "data": text}}
    raise InvalidRequest(f"{param}: Anthropic reads PDF and plain-text files, not {media_type}", param=param)


def image_block(image, param):
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest(f"{param}.image_url.url must be a string", param=param)
    if url.startswith("data:"):
        media_type, data = providers.data_url(url, param, "image")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{param}: an image URL must be http(s) or a base64 data URL", param=param)


def assistant_blocks(message, param):
    content = message.get("content")
    blocks = []
    if isinstance(content, list):
        for j, part in enumerate(content):
            where = f"{param}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "refusal"):
                raise InvalidRequest(f"{where}: assistant content part {kind!r} is not supported", param=where)
            blocks.extend(text_block(part.get(kind), cache_control(part, where)))
    elif content is None or isinstance(content, str):
        blocks.extend(text_block(content))
    else:
        raise InvalidRequest(f"{param}.content must be a string or an array", param=f"{param}.content")
    calls = message.get("tool_calls") or ()
    if not isinstance(calls, (list, tuple)):
        raise InvalidRequest(f"{param}.tool_calls must be an array", param=f"{param}.tool_calls")
    for k, call in enumerate(calls):
        where = f"{param}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{where} must be a function call with a name", param=where)
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise InvalidRequest(f"{where}.id is required", param=f"{where}.id")
        arguments = function.get("arguments") or "{}"
        try:
            decoded = orjson.loads(arguments)
        except (orjson.JSONDecodeError, TypeError):
            decoded = None
        if not isinstance(decoded, dict):
            raise InvalidRequest(
                f"{where}.function.arguments must be a JSON object", param=f"{where}.function.arguments"
            )
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function["name"], "input": decoded})
    return blocks


def tool_result(message, param):
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise InvalidRequest(f"{param}.tool_call_id is required", param=f"{param}.tool_call_id")
    parts = text_parts(message.get("content"), param)
    block = {"type": "tool_result", "tool_use_id": tool_call_id, "content": "\n".join(text for text, _ in parts)}
    caches = [cache for _, cache in parts if cache is not None]
    return with_cache(block, caches[-1] if caches else None)


def convert_tool(tool, i):
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"tools[{i}] must be a function tool with a name", param=f"tools[{i}]")
    out = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return with_cache(out, cache_control(tool, f"tools[{i}]"))


def convert_tool_choice(choice, parallel):
    if choice is None:
        out = {"type": "auto"} if parallel is False else None
    elif isinstance(choice, str) and choice in TOOL_CHOICES:
        out = dict(TOOL_CHOICES[choice])
    elif providers.function_name(choice) is not None:
        out = {"type": "tool", "name": providers.function_name(choice)}
    else:
        raise InvalidRequest("tool_choice must be auto, none, required or a named function", param="tool_choice")
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def response_format_instruction(response_format):
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if response_format is None or kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object", param="response_format")
        name = f" {spec['name']}" if isinstance(spec.get("name"), str) else ""
        return JSON_SCHEMA_INSTRUCTION + name + ":\n" + orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()
    raise InvalidRequest(f"response_format type {kind!r} is not supported", param="response_format")


# --- response ----------------------------------------------------------------------------------------

def translate_response(status, body, model, endpoint):
    """A complete Anthropic answer -> (status, OpenAI JSON bytes): a chat.completion or an error."""
    if status != 200:
        return translate_error(status, body)
    try:
        message = orjson.loads(body)
        choice = completion_choice(message)
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
        error = UpstreamProtocolError("the Anthropic answer is not a Messages API message")
        return error.status, orjson.dumps(error_payload(error))
    completion = {
        "id": chat_id(message),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": openai_usage(message.get("usage") or {}),
    }
    return 200, orjson.dumps(completion)


def completion_choice(message):
    texts, calls, thoughts = [], [], []
    for block in message["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(text_of(block["text"]) or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": name_of(block["name"]), "arguments": arguments}
            calls.append({"id": name_of(block["id"]), "type": "function", "function": function})
        elif kind == "thinking" and block["thinking"]:
            thoughts.append(block["thinking"])  # its signature has no OpenAI counterpart
        # redacted_thinking and server-tool blocks have no OpenAI counterpart
    reply = {"role": "assistant", "content": "".join(texts) if texts or not calls else None, "refusal": None}
    if thoughts:
        reply["reasoning_content"] = THOUGHT_SEPARATOR.join(thoughts)
    if calls:
        reply["tool_calls"] = calls
    stop_reason = message.get("stop_reason")
    finish = FINISH_REASONS.get(stop_reason, "stop") if type(stop_reason) is str else "stop"
    return {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}


def translate_error(status, body):
    """An Anthropic error answer (``{"type": "error", "error": {type, message}}`` or anything else)."""
    # Anthropic uses invalid_request_error for the 4xx statuses it does not list apart.
    kind = STATUS_ERROR_TYPES.get(status) or ("invalid_request_error" if 400 <= status < 500 else "api_error")
    message = None
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        decoded = None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") if isinstance(error.get("type"), str) else kind
        message = error.get("message")
    if not isinstance(message, str) or not message:
        excerpt = body[:200].decode("utf-8", "replace").strip()
        message = f"Anthropic answered status {status}" + (f": {excerpt}" if excerpt else "")
    return openai_status(status), orjson.dumps(openai_error(kind, message))
