"""The mock upstream's replies: strict OpenAI request validation and deterministic answers.

No I/O here: each function takes the raw request body and returns what to send, either the JSON
body (``bytes``) or, for a stream, the list of Server-Sent Events (``b"data: ...\\n\\n"``) that
``mock_upstream`` frames as chunks. A refused request raises ``InvalidRequest`` whose ``param``
names the offending field the way OpenAI does (``messages[0].role``).

Rules the replies keep, because tests assert them:
- Chat content is ``"echo: "`` + the text of the last user message (text parts joined by a space).
- A token is a word: usage counts whitespace-separated words, ``max_tokens`` cuts after that many
  words (finish_reason "length"), and a stream sends one delta per word with its trailing spaces,
  so joining the deltas gives exactly the non-stream content.
- With ``tools`` and "call tool" in the last user text (or ``tool_choice`` forcing it), the reply is
  one call to the first (or the named) tool: id ``call_mock_1``, arguments ``{"query": <text>}``.
- Embeddings are unit vectors derived from a hash of the input: same input, same vector.
"""

import base64
import hashlib
import itertools
import math
import re
import struct
import time

import orjson

from alloy.errors import InvalidRequest
from alloy.headers import DONE_EVENT as DONE

FINGERPRINT = "fp_mock"
WORD = re.compile(r"\S+\s*")  # a word with the whitespace after it: pieces that join losslessly
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
EMBEDDING_DIMENSIONS = 8
MODELS = (
    "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o3-mini", "gpt-3.5-turbo-instruct",
    "text-embedding-3-small", "text-embedding-3-large",
)  # fmt: skip

# Every parameter the endpoint accepts (from the OpenAI API reference); anything else is refused
# as OpenAI refuses it, which catches a gateway that leaks its own fields upstream.
CHAT_PARAMS = frozenset((
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
))  # fmt: skip
COMPLETION_PARAMS = frozenset((
    "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens",
    "n", "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix", "temperature",
    "top_p", "user",
))  # fmt: skip
EMBEDDING_PARAMS = frozenset(("model", "input", "dimensions", "encoding_format", "user"))
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = {  # content part types each role may send in an array
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}

# --- validation, with OpenAI's messages and codes ----------------------------------------------

KINDS = {  # JSON kind -> (how OpenAI names it, check); bool is not a number in JSON
    "string": ("a string", lambda v: type(v) is str),
    "integer": ("an integer", lambda v: type(v) is int),
    "number": ("a number", lambda v: type(v) in (int, float)),
    "boolean": ("a boolean", lambda v: type(v) is bool),
    "array": ("an array", lambda v: type(v) is list),
    "object": ("an object", lambda v: type(v) is dict),
}
JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array"}
JSON_NAMES[dict] = "an object"


def invalid(message, param, code="invalid_value"):
    return InvalidRequest(message, code=code, param=param)


def missing(param):
    return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def expect(value, kind, param):
    name, check = KINDS[kind]
    if not check(value):
        got = "null" if value is None else JSON_NAMES.get(type(value), "a value")
        raise invalid(f"Invalid type for '{param}': expected {name}, but got {got} instead.", param, "invalid_type")
    return value


def required(obj, key, kind, param=None):
    param = param or key
    if obj.get(key) is None:
        raise missing(param)
    return expect(obj[key], kind, param)


def optional(obj, key, kind, param=None, low=None, high=None):
    """``obj[key]`` checked against ``kind`` and the bounds; None when absent or null (OpenAI's
    optional parameters are nullable)."""
    value = obj.get(key)
    if value is None:
        return None
    param = param or key
    expect(value, kind, param)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise invalid(f"Invalid '{param}': expected a value {bounds}, but got {value} instead.", param)
    return value


def non_empty(array, param):
    if not array:
        message = f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array."
        raise invalid(message, param, "empty_array")
    return array


def decode_object(body, known):
    """The request body as a dict, refusing what is not a JSON object or names unknown parameters."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            None,
            None,
        ) from None
    if type(request) is not dict:
        raise invalid("Invalid type for request body: expected an object.", None, "invalid_type")
    for key in request:
        if key not in known:
            raise invalid(f"Unrecognized request argument supplied: {key}", key, "unknown_parameter")
    return request


def check_message(message, param):
    expect(message, "object", param)
    role = required(message, "role", "string", f"{param}.role")
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        raise invalid(f"Invalid value: '{role}'. Supported values are: {supported}.", f"{param}.role")
    content = message.get("content")
    if content is None:
        # Content may be left out only where a call replaces it (and on the deprecated function role).
        replaced = role == "assistant" and (message.get("tool_calls") or message.get("function_call"))
        if not (replaced or role == "function"):
            raise missing(f"{param}.content")
    elif type(content) is list and role != "function":
        for j, part in enumerate(non_empty(content, f"{param}.content")):
            where = f"{param}.content[{j}]"
            kind = required(expect(part, "object", where), "type", "string", f"{where}.type")
            if kind not in PART_TYPES[role]:
                supported = ", ".join(f"'{t}'" for t in PART_TYPES[role])
                raise invalid(f"Invalid value: '{kind}'. Supported values are: {supported}.", f"{where}.type")
            if kind == "text":
                required(part, "text", "string", f"{where}.text")
    elif type(content) is not str:
        message = f"Invalid type for '{param}.content': expected a string or an array."
        raise invalid(message, f"{param}.content", "invalid_type")
    if role == "tool":
        required(message, "tool_call_id", "string", f"{param}.tool_call_id")
    elif role == "function":
        required(message, "name", "string", f"{param}.name")
    elif role == "assistant" and message.get("tool_calls") is not None:
        calls = expect(message["tool_calls"], "array", f"{param}.tool_calls")
        for j, call in enumerate(non_empty(calls, f"{param}.tool_calls")):
            where = f"{param}.tool_calls[{j}]"
            required(expect(call, "object", where), "id", "string", f"{where}.id")
            function = required(call, "function", "object", f"{where}.function")
            required(function, "name", "string", f"{where}.function.name")
            required(function, "arguments", "string", f"{where}.function.arguments")


def check_tools(request):
    tools = optional(request, "tools", "array")
    if tools is None:
        return None
    for i, tool in enumerate(non_empty(tools, "tools")):
        where = f"tools[{i}]"
        expect(tool, "object", where)
        if tool.get("type") != "function":
            raise invalid(f"Invalid value: '{tool.get('type')}'. Supported values are: 'function'.", f"{where}.type")
        function = required(tool, "function", "object", f"{where}.function")
        name = required(function, "name", "string", f"{where}.function.name")
        if not TOOL_NAME.fullmatch(name):
            message = f"Invalid '{where}.function.name': string does not match pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
            raise invalid(message, f"{where}.function.name")
    return tools


def check_sampling(request):
    """The parameters both completion endpoints share: returns (n, max_tokens, stream, include_usage)."""
    n = optional(request, "n", "integer", low=1, high=128) or 1
    optional(request, "temperature", "number", low=0, high=2)
    optional(request, "top_p", "number", low=0, high=1)
    max_tokens = optional(request, "max_completion_tokens", "integer", low=1)
    if max_tokens is None:
        max_tokens = optional(request, "max_tokens", "integer", low=1)
    stream = optional(request, "stream", "boolean") or False
    options = optional(request, "stream_options", "object")
    if options is not None and not stream:
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    include_usage = bool(options and optional(options, "include_usage", "boolean", "stream_options.include_usage"))
    return n, max_tokens, stream, include_usage


# --- what the model "says" -----------------------------------------------------------------------


def text_of(content):
    if type(content) is str:
        return content
    if type(content) is list:
        return " ".join(part["text"] for part in content if part.get("type") == "text")
    return ""


# The echo of a long prompt stops after this many words: a 200 KB benchmark prompt must cost the
# mock microseconds, not a 200 KB reply streamed in thousands of chunks.
ECHO_WORDS = 256


def words(text, limit):
    """``text`` cut into word pieces, at most ``limit`` of them: (pieces, finish_reason)."""
    cap = ECHO_WORDS if limit is None else min(limit, ECHO_WORDS)
    pieces = [match.group() for match in itertools.islice(WORD.finditer(text), cap + 1)]
    if len(pieces) <= cap:
        return pieces, "stop"
    pieces = pieces[:cap]
    pieces[-1] = pieces[-1].rstrip()
    return pieces, "length" if limit is not None and limit <= ECHO_WORDS else "stop"


def count_tokens(text):
    """Words in ``text`` (exact for short texts; ~4 characters a token for long ones, as cheap)."""
    return len(text.split()) if len(text) < 4096 else len(text) // 4


def chosen_tool(request, tools, user_text):
    """The tool the mock calls, or None: "call tool" in the text, or a tool_choice that forces one."""
    choice = request.get("tool_choice")
    if choice is not None and not tools:
        raise invalid("Invalid 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice")
    if type(choice) is str and choice not in ("none", "auto", "required"):
        raise invalid(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto' and 'required'.", "tool_choice")
    if not tools or choice == "none":
        return None
    if type(choice) is dict and choice.get("type") == "allowed_tools":  # a subset, and how to choose in it
        allowed = required(choice, "allowed_tools", "object", "tool_choice.allowed_tools")
        named = required(allowed, "tools", "array", "tool_choice.allowed_tools.tools")
        names = [(entry.get("function") or {}).get("name") if type(entry) is dict else None for entry in named]
        subset = [tool for tool in tools if tool["function"]["name"] in names]
        if not subset:
            raise invalid("Invalid value for 'tool_choice.allowed_tools.tools': no such function in 'tools'.", "tool_choice")
        if allowed.get("mode", "auto") == "required" or "call tool" in user_text:
            return subset[0]
        return None
    if type(choice) is dict:
        function = required(choice, "function", "object", "tool_choice.function")
        name = required(function, "name", "string", "tool_choice.function.name")
        for tool in tools:
            if tool["function"]["name"] == name:
                return tool
        raise invalid(f"Invalid value for 'tool_choice': no function named '{name}' in 'tools'.", "tool_choice")
    if choice == "required" or "call tool" in user_text:
        return tools[0]
    return None


def usage(prompt_tokens, completion_tokens):
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def event(obj):
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def delta_template(chunk, index):
    """The event of ``chunk`` for choice ``index`` split around its delta: (head, tail)."""
    chunk["choices"] = [{"index": index, "delta": None, "logprobs": None, "finish_reason": None}]
    # The last match is ours: only finish_reason and usage follow it, and a '"' inside a string
    # (a model name, say) is escaped, so no string can contain the marker.
    head, _, tail = event(chunk).rpartition(b'"delta":null')
    return head + b'"delta":', tail


# --- POST /v1/chat/completions -------------------------------------------------------------------


def chat_completion(body, serial):
    request = decode_object(body, CHAT_PARAMS)
    model = required(request, "model", "string")
    messages = non_empty(required(request, "messages", "array"), "messages")
    for i, message in enumerate(messages):
        check_message(message, f"messages[{i}]")
    tools = check_tools(request)
    n, max_tokens, stream, include_usage = check_sampling(request)

    texts = [text_of(m.get("content")) for m in messages]
    user_text = next((t for m, t in zip(reversed(messages), reversed(texts)) if m["role"] == "user"), "")
    prompt_tokens = sum(count_tokens(t) for t in texts)
    tool = chosen_tool(request, tools, user_text)
    if tool is not None:
        name, arguments = tool["function"]["name"], orjson.dumps({"query": user_text}).decode()
        call = {"id": "call_mock_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        pieces, finish, content = WORD.findall(arguments), "tool_calls", None
    else:
        pieces, finish = words("echo: " + user_text, max_tokens)
        content = "".join(pieces)
    tokens = usage(prompt_tokens, len(pieces) * n)
    completion_id, created = f"chatcmpl-mock-{serial}", int(time.time())

    if not stream:
        if tool is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None, "annotations": []}
        else:
            message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)]
        return orjson.dumps({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": tokens, "service_tier": "default", "system_fingerprint": FINGERPRINT,
        })  # fmt: skip

    chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
             "service_tier": "default", "system_fingerprint": FINGERPRINT, "choices": None}  # fmt: skip
    if include_usage:
        chunk["usage"] = None  # OpenAI sends null usage on every chunk but the last

    # A stream is mostly deltas: each chunk is its constant bytes around one small dumps of the delta.
    templates = [delta_template(chunk, i) for i in range(n)]  # one chunk per choice, as OpenAI sends

    def deltas(delta):
        data = orjson.dumps(delta)
        return [head + data + tail for head, tail in templates]

    if tool is not None:
        first = {"index": 0, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
        events = deltas({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})
        for piece in pieces:
            events += deltas({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    else:
        events = deltas({"role": "assistant", "content": "", "refusal": None})
        for piece in pieces:
            events += deltas({"content": piece})
    for i in range(n):
        chunk["choices"] = [{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}]
        events.append(event(chunk))
    if include_usage:
        chunk["choices"], chunk["usage"] = [], tokens
        events.append(event(chunk))
    events.append(DONE)
    return events


def sized_chat_completion(body, serial, size):
    """A chat completion whose content is exactly ``size`` bytes ("0123456789" repeated, cut), for
    the ``huge`` fault. The request is not validated (a fault answers whatever was asked); its
    model is echoed when the body names one."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        request = None
    model = request.get("model") if type(request) is dict else None
    content = ("0123456789" * (size // 10 + 1))[:size]
    message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    return orjson.dumps({
        "id": f"chatcmpl-mock-{serial}", "object": "chat.completion", "created": int(time.time()),
        "model": model if type(model) is str else "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": usage(0, size // 4), "service_tier": "default", "system_fingerprint": FINGERPRINT,
    })  # fmt: skip


# --- POST /v1/completions (legacy) ------------------------------------------------------------------


def prompts_of(request):
    """The prompt(s) as texts: a string, strings, a token array or token arrays."""
    prompt = request.get("prompt")
    if type(prompt) is str:
        return [prompt]
    if type(prompt) is list and prompt:
        if all(type(p) is str for p in prompt):
            return prompt
        if all(type(p) is int for p in prompt):
            return [" ".join(map(str, prompt))]
        if all(type(p) is list and p and all(type(t) is int for t in p) for p in prompt):
            return [" ".join(map(str, p)) for p in prompt]
    if prompt is None:
        raise missing("prompt")
    raise invalid("Invalid 'prompt': expected a string, an array of strings or an array of token arrays.", "prompt")


def completion(body, serial):
    request = decode_object(body, COMPLETION_PARAMS)
    model = required(request, "model", "string")
    prompts = prompts_of(request)
    n, max_tokens, stream, include_usage = check_sampling(request)
    if max_tokens is None:
        max_tokens = 16  # the legacy endpoint's documented default
    replies = [words("echo: " + p, max_tokens) for p in prompts]
    completion_tokens = sum(len(pieces) for pieces, _ in replies) * n
    tokens = usage(sum(count_tokens(p) for p in prompts), completion_tokens)
    head = {"id": f"cmpl-mock-{serial}", "object": "text_completion", "created": int(time.time()), "model": model}
    indexed = [(k * n + i, pieces, finish) for k, (pieces, finish) in enumerate(replies) for i in range(n)]

    if not stream:
        choices = [{"text": "".join(p), "index": i, "logprobs": None, "finish_reason": f} for i, p, f in indexed]
        return orjson.dumps({**head, "choices": choices, "usage": tokens, "system_fingerprint": FINGERPRINT})

    events, null_usage = [], {"usage": None} if include_usage else {}
    for index, pieces, finish in indexed:
        for text, reason in [(piece, None) for piece in pieces] + [("", finish)]:
            choice = {"text": text, "index": index, "logprobs": None, "finish_reason": reason}
            events.append(event({**head, "choices": [choice], **null_usage}))
    if include_usage:
        events.append(event({**head, "choices": [], "usage": tokens}))
    events.append(DONE)
    return events


# --- POST /v1/embeddings --------------------------------------------------------------------------


def inputs_of(request):
    """(bytes to hash, token count) per input: a string, strings, a token array or token arrays."""
    value = request.get("input")
    if type(value) is str:
        value = [value]
    elif type(value) is list and value and all(type(t) is int for t in value):
        value = [value]
    if type(value) is list and value and len(value) <= 2048:
        if all(type(v) is str and v for v in value):
            return [(v.encode(), len(v.split())) for v in value]
        if all(type(v) is list and v and all(type(t) is int for t in v) for v in value):
            return [(orjson.dumps(v), len(v)) for v in value]
    if value is None:
        raise missing("input")
    message = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
    raise invalid(message, "input")


def vector(data, dimensions):
    """A unit vector from a hash of ``data``, as its exact float32 values and their little-endian bytes."""
    raw = struct.unpack(f"<{dimensions}H", hashlib.shake_128(data).digest(2 * dimensions))
    values = [v / 32767.5 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed)), packed


def embeddings(body, serial):
    request = decode_object(body, EMBEDDING_PARAMS)
    model = required(request, "model", "string")
    inputs = inputs_of(request)
    dimensions = optional(request, "dimensions", "integer", low=1, high=3072) or EMBEDDING_DIMENSIONS
    encoding = request.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid(f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.", "encoding_format")
    data = []
    for index, (text, _) in enumerate(inputs):
        values, packed = vector(text, dimensions)
        embedding = values if encoding == "float" else base64.b64encode(packed).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    prompt_tokens = sum(count for _, count in inputs)
    return orjson.dumps({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })  # fmt: skip


# --- GET /v1/models --------------------------------------------------------------------------------


def model_objects():
    """Model id -> its JSON object, and the list body: built once per server."""
    objects = {name: {"id": name, "object": "model", "created": 1700000000, "owned_by": "openai"} for name in MODELS}
    listing = orjson.dumps({"object": "list", "data": list(objects.values())})
    return {name.encode(): orjson.dumps(obj) for name, obj in objects.items()}, listing


# --- POST /v1/responses ----------------------------------------------------------------------------
# A minimal strict Responses API: enough for the gateway's passthrough tests (what reached the
# upstream, and that the SDK parses what came back). Unknown parameters are refused as OpenAI does.
# The reply follows the chat rules: "echo: " + the last user text (the function_call_output text
# when the input ends with those), and a function_call to the first tool when that text says "call
# tool" or tool_choice is "required".

RESPONSES_PARAMS = frozenset((
    "model", "input", "background", "conversation", "include", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "reasoning", "safety_identifier", "service_tier", "store", "stream",
    "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p",
    "truncation", "user",
))  # fmt: skip


def last_input_text(given, param="input"):
    """The text the mock echoes: a string input, else the last user message's text parts (or the
    outputs of the function calls the input ends with)."""
    if type(given) is str:
        return given
    items = non_empty(expect(given, "array", param), param)
    outputs = []
    for item in reversed(items):
        if type(item) is not dict:
            raise invalid(f"Invalid type for '{param}': expected an object.", param, "invalid_type")
        if item.get("type") == "function_call_output":
            outputs.append(str(item.get("output", "")))
            continue
        if outputs:
            return " ".join(reversed(outputs))
        if item.get("role") == "user":
            content = item.get("content")
            if type(content) is str:
                return content
            return " ".join(part.get("text", "") for part in content or () if part.get("type") == "input_text")
    return " ".join(reversed(outputs))


def responses(body, serial):
    request = decode_object(body, RESPONSES_PARAMS)
    model = required(request, "model", "string")
    # The answer echoes these, so they are checked as OpenAI does: metadata is a map of strings,
    # instructions a string, and the rest of bounded depth (JSON schemas nest, not forever).
    for name, value in (optional(request, "metadata", "object") or {}).items():
        expect(value, "string", f"metadata.{name}")
    optional(request, "instructions", "string")
    for name in ("text", "tools", "tool_choice"):
        if depth(request.get(name)) > MAX_ECHOED_DEPTH:
            raise invalid(f"Invalid '{name}': nested deeper than {MAX_ECHOED_DEPTH} levels.", name)
    if request.get("input") is None:
        raise missing("input")
    text = "echo: " + last_input_text(request["input"])
    tools = optional(request, "tools", "array") or []
    for i, tool in enumerate(tools):
        if tool.get("type") == "function":
            required(tool, "name", "string", f"tools[{i}].name")
    functions = [tool for tool in tools if tool.get("type") == "function"]
    call_tool = functions and request.get("tool_choice") != "none" and (
        request.get("tool_choice") == "required" or "call tool" in text
    )
    pieces, finish = words(text, optional(request, "max_output_tokens", "integer", low=16))
    response_id = f"resp_mock_{serial}"
    if call_tool:
        arguments = orjson.dumps({"query": text[len("echo: ") :]}).decode()
        item = {"id": f"fc_mock_{serial}", "type": "function_call", "status": "completed",
                "arguments": arguments, "call_id": "call_mock_1", "name": functions[0]["name"]}  # fmt: skip
    else:
        content = {"type": "output_text", "text": "".join(pieces), "annotations": [], "logprobs": []}
        item = {"id": f"msg_mock_{serial}", "type": "message", "status": "completed", "role": "assistant",
                "content": [content]}  # fmt: skip
    prompt_tokens = count_tokens(last_input_text(request["input"]))
    output_tokens = len(pieces) if not call_tool else 1
    response = {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": "completed",
        "error": None, "incomplete_details": None, "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"), "model": model, "output": [item],
        "parallel_tool_calls": request.get("parallel_tool_calls", True), "previous_response_id":
        request.get("previous_response_id"), "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0), "text": request.get("text", {"format": {"type": "text"}}),
        "tool_choice": request.get("tool_choice", "auto"), "tools": tools, "top_p": request.get("top_p", 1.0),
        "truncation": "disabled", "metadata": request.get("metadata", {}),
        "usage": {"input_tokens": prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt_tokens + output_tokens},
    }  # fmt: skip
    if finish == "length" and not call_tool:
        response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
    if request.get("stream") is not True:
        return orjson.dumps(response)
    return responses_events(response, pieces)


# /v1/responses/input_tokens and /v1/responses/compact take the request's context fields only.
COUNTED_PARAMS = frozenset((
    "model", "input", "conversation", "instructions", "parallel_tool_calls", "previous_response_id",
    "reasoning", "text", "tool_choice", "tools", "truncation",
))  # fmt: skip


def responses_input_tokens(body, serial):
    """``POST /v1/responses/input_tokens``: the count of the input's last text (the mock's words),
    plus the instructions'; every field is optional, as OpenAI documents."""
    request = decode_object(body, COUNTED_PARAMS)
    optional(request, "model", "string")
    instructions = optional(request, "instructions", "string") or ""
    given = request.get("input")
    text = "" if given is None else last_input_text(given)
    return orjson.dumps({"object": "response.input_tokens", "input_tokens": count_tokens(text) + count_tokens(instructions)})


def responses_compact(body, serial):
    """``POST /v1/responses/compact``: the input's user messages, then one compaction item (its
    ``encrypted_content`` opaque, as OpenAI's is), and the usage of the pass."""
    request = decode_object(body, COUNTED_PARAMS)
    model = required(request, "model", "string")
    given = request.get("input")
    if given is None:
        raise missing("input")
    users = [given] if type(given) is str else [
        item.get("content") for item in non_empty(expect(given, "array", "input"), "input")
        if type(item) is dict and item.get("role") == "user"
    ]  # fmt: skip
    kept = [
        {"id": f"msg_mock_{serial}_{i}", "type": "message", "status": "completed", "role": "user",
         "content": [{"type": "input_text", "text": content}] if type(content) is str else content}
        for i, content in enumerate(users)
    ]  # fmt: skip
    compaction = {"id": f"cmp_mock_{serial}", "type": "compaction", "encrypted_content": f"mock-compaction-{serial}"}
    input_tokens = count_tokens(last_input_text(given))
    return orjson.dumps({
        "id": f"resp_mock_compact_{serial}", "object": "response.compaction", "created_at": int(time.time()),
        "model": model, "output": [*kept, compaction],
        "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input_tokens + 1},
    })  # fmt: skip


MAX_ECHOED_DEPTH = 64  # orjson writes at most 254 levels; what is echoed stays far below


def depth(value):
    """How deeply ``value`` nests arrays and objects (0 for a scalar or None)."""
    deepest, level, todo = 0, 0, [(value, 1)]
    while todo:
        value, level = todo.pop()
        if type(value) is dict or type(value) is list:
            deepest = max(deepest, level)
            todo.extend((item, level + 1) for item in (value.values() if type(value) is dict else value))
    return deepest


def responses_events(response, pieces):
    """The documented event sequence for ``response``, one output_text.delta per word."""
    events = []

    def say(payload):
        payload["sequence_number"] = len(events)
        events.append(b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    final_status = response["status"]
    started = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    say({"type": "response.created", "response": started})
    say({"type": "response.in_progress", "response": started})
    item = response["output"][0]
    where = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "function_call":
        say({"type": "response.output_item.added", "output_index": 0,
             "item": {**item, "status": "in_progress", "arguments": ""}})  # fmt: skip
        say({"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]})
        say({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
    else:
        part = item["content"][0]
        say({"type": "response.output_item.added", "output_index": 0,
             "item": {**item, "status": "in_progress", "content": []}})  # fmt: skip
        where["content_index"] = 0
        say({"type": "response.content_part.added", **where, "part": {**part, "text": ""}})
        for piece in pieces:
            say({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []})
        say({"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []})
        say({"type": "response.content_part.done", **where, "part": part})
    say({"type": "response.output_item.done", "output_index": 0, "item": item})
    kind = "response.completed" if final_status == "completed" else "response.incomplete"
    say({"type": kind, "response": response})
    return events
