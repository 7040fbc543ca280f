"""A field of the wrong JSON type is the client's error, never the gateway's: every translator (the
Anthropic Messages and Responses client APIs, the Anthropic and Gemini providers) either accepts a
request whose field was replaced by another JSON type, or refuses it with a 400 (``AlloyError``,
answered in the client's API's own shape), and never raises an exception of its own, which the
gateway answers with a 500 and a traceback in its log.

Each test walks a rich valid request and replaces every field in turn (and every item of every
list) with each JSON type; what fails is listed whole, so one run shows every field at fault."""

import copy

import orjson
import pytest

from alloy.client_apis import chat_request_from_messages, messages_response_from_chat
from alloy.client_apis.responses_request import chat_request_from_responses
from alloy.client_apis.responses_stream import response_from_chat
from alloy.errors import AlloyError
from alloy.providers import TranslateSettings, anthropic, gemini

# Every JSON type, and the shapes that reach a dict or a set lookup unhashable. The largest integer
# orjson decodes as an int is 2**64 - 1 (a larger one comes as a float).
REPLACEMENTS = (None, True, 0, -1, 1.5, 2**64 - 1, "", "x", [], ["x"], {}, {"x": 1})
PNG = "iVBORw0KGgo="
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

MESSAGES_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}, "title": "t"},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}], "is_error": False},
        ]},
    ],
    "tools": [{"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "output_config": {"effort": "medium"},
    "metadata": {"user_id": "u-1"},
    "stop_sequences": ["###"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "stream": True,
}  # fmt: skip

RESPONSES_REQUEST = {
    "model": "claude-x",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is in this image?"},
            {"type": "input_image", "image_url": "data:image/png;base64," + PNG, "detail": "low"},
        ]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ],
    "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": SCHEMA, "strict": True}],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}},
    "max_output_tokens": 500,
    "temperature": 0.5,
    "top_p": 0.9,
    "user": "u-1",
    "metadata": {"k": "v"},
    "parallel_tool_calls": False,
    "stream": True,
}  # fmt: skip

CHAT_REQUEST = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG, "detail": "low"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "reasoning_effort": "low",
    "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}},
    "max_completion_tokens": 500,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": ["###"],
    "n": 1,
    "user": "u-1",
    "stream": True,
    "stream_options": {"include_usage": True},
}  # fmt: skip

# Chat's allowed_tools choice, which providers without it take apart (alloy.providers.types)
CHAT_ALLOWED_TOOLS = {**CHAT_REQUEST, "tool_choice": {"type": "allowed_tools", "allowed_tools": {
    "mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}}  # fmt: skip
RESPONSES_ALLOWED_TOOLS = {**RESPONSES_REQUEST, "tool_choice": {
    "type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_weather"}]}}  # fmt: skip

EMBEDDINGS_REQUEST = {"model": "m", "input": ["one", "two"], "dimensions": 256, "encoding_format": "float"}

SETTINGS_ANTHROPIC = TranslateSettings(api_key="sk-ant-test")
SETTINGS_GEMINI = TranslateSettings(api_key="AIza-test")

TRANSLATORS = {
    "messages to chat": (chat_request_from_messages, MESSAGES_REQUEST),
    "responses to chat": (chat_request_from_responses, RESPONSES_REQUEST),
    "responses with allowed tools to chat": (chat_request_from_responses, RESPONSES_ALLOWED_TOOLS),
    "chat to anthropic": (
        lambda body: anthropic.build_request(body, "claude-sonnet-4-5", "chat/completions", SETTINGS_ANTHROPIC),
        CHAT_REQUEST,
    ),
    "chat with allowed tools to anthropic": (
        lambda body: anthropic.build_request(body, "claude-sonnet-4-5", "chat/completions", SETTINGS_ANTHROPIC),
        CHAT_ALLOWED_TOOLS,
    ),
    "chat with allowed tools to gemini": (
        lambda body: gemini.build_request(body, "gemini-2.5-flash", "chat/completions", SETTINGS_GEMINI),
        CHAT_ALLOWED_TOOLS,
    ),
    "chat to gemini": (lambda body: gemini.build_request(body, "gemini-2.5-flash", "chat/completions", SETTINGS_GEMINI), CHAT_REQUEST),
    "embeddings to gemini": (
        lambda body: gemini.build_request(body, "gemini-embedding-001", "embeddings", SETTINGS_GEMINI),
        EMBEDDINGS_REQUEST,
    ),
}


def paths(value, at=()):
    """Every place in a JSON document: a key of an object, an item of a list (not the root)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, inner in items:
        yield (*at, key)
        yield from paths(inner, (*at, key))


def replaced(document, path, new):
    changed = copy.deepcopy(document)
    place = changed
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = new
    return changed


def unexpected_raises(translate, document, expected_status):
    """``translate`` over ``document`` (valid: it must pass) with each field replaced by each JSON
    type in turn: what raised anything but an ``AlloyError`` whose status ``expected_status``
    accepts, one line each."""
    translate(copy.deepcopy(document))
    failures = []
    for path in paths(document):
        for new in REPLACEMENTS:
            where = f"{'.'.join(map(str, path))} = {new!r}"
            try:
                translate(replaced(document, path, new))
            except AlloyError as error:
                if not expected_status(error.status):
                    failures.append(f"{where}: {error.status} {error}")
            except Exception as error:  # noqa: BLE001 - the point: no other exception may escape
                failures.append(f"{where}: {type(error).__name__}: {error}")
    return failures


@pytest.mark.parametrize("name", TRANSLATORS)
def test_a_field_of_any_other_type_is_accepted_or_refused_as_the_clients_error(name):
    translate, request = TRANSLATORS[name]
    failures = unexpected_raises(translate, request, lambda status: status < 500)
    assert not failures, f"{len(failures)} replacements raised:\n" + "\n".join(failures[:60])


# --- answers: an upstream's answer of the wrong shape is a 502 (its fault), never a 500 (ours) ------

ANTHROPIC_ANSWER = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "It is sunny."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1},
}  # fmt: skip
GEMINI_ANSWER = {
    "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": True},
            {"text": "It is sunny."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        ]},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19, "thoughtsTokenCount": 3,
                      "cachedContentTokenCount": 2},
    "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
}  # fmt: skip
GEMINI_EMBEDDINGS = {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}], "usageMetadata": {"promptTokenCount": 4}}
CHAT_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "It is sunny.", "reasoning_content": "hmm", "refusal": None,
                    "tool_calls": [{"id": "call_1", "type": "function",
                                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        "finish_reason": "tool_calls", "logprobs": None,
    }],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19,
              "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 3}},
}  # fmt: skip


def answered(translate):
    """A provider translator's answer: (status, body) with a status a client may get for a bad
    upstream answer (200: read as well as it could be; 4xx: what the upstream said; 502: not readable)."""

    def read(answer):
        status, body = translate(200, orjson.dumps(answer))
        assert status == 200 or 400 <= status < 500 or status == 502, status
        orjson.loads(body)

    return read


ANSWER_TRANSLATORS = {
    "anthropic answer to chat": (answered(lambda s, b: anthropic.translate_response(s, b, "m", "chat/completions")), ANTHROPIC_ANSWER),
    "gemini answer to chat": (answered(lambda s, b: gemini.translate_response(s, b, "m", "chat/completions")), GEMINI_ANSWER),
    "gemini embeddings to openai": (answered(lambda s, b: gemini.translate_response(s, b, "m", "embeddings")), GEMINI_EMBEDDINGS),
    "chat answer to messages": (lambda answer: messages_response_from_chat(answer, "claude-x"), CHAT_ANSWER),
    "chat answer to responses": (lambda answer: response_from_chat(answer, {"model": "m", "input": "hi"}, "m"), CHAT_ANSWER),
}


@pytest.mark.parametrize("name", ANSWER_TRANSLATORS)
def test_an_answer_field_of_any_other_type_is_read_or_refused_as_the_upstreams_error(name):
    read, answer = ANSWER_TRANSLATORS[name]
    failures = unexpected_raises(read, answer, lambda status: status == 502)
    assert not failures, f"{len(failures)} replacements raised:\n" + "\n".join(failures[:60])
