"""Anthropic Messages API shapes as Python data, written from the public API reference (request body,
message object, streaming events, error bodies), with the OpenAI shapes they translate to and from.

Each table is used in one direction by ``test_anthropic.py`` and, where it makes sense, checked
against the strict emulator (``tests/emulators/anthropic.py``) as an oracle of what Anthropic accepts.
"""

import orjson

USER_HI = {"role": "user", "content": "Hi there"}


def text(value):
    return {"type": "text", "text": value}


# --- requests: (name, OpenAI body, expected Anthropic body without model/max_tokens unless given) ---
REQUEST_CASES = [
    (
        "plain user turn",
        {"messages": [USER_HI]},
        {"messages": [{"role": "user", "content": [text("Hi there")]}]},
    ),
    (
        "system and developer join the top-level system in order",
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [text("Use metric units.")]},
                USER_HI,
                {"role": "system", "content": "Never apologise."},
            ]
        },
        {
            "system": "You are terse.\n\nUse metric units.\n\nNever apologise.",
            "messages": [{"role": "user", "content": [text("Hi there")]}],
        },
    ),
    (
        "consecutive same-role messages merge into one turn",
        {
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "user", "content": [text("second"), text("")]},
                {"role": "assistant", "content": "reply"},
                {"role": "assistant", "content": [{"type": "text", "text": "more"}]},
                {"role": "user", "content": "third"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [text("first"), text("second")]},
                {"role": "assistant", "content": [text("reply"), text("more")]},
                {"role": "user", "content": [text("third")]},
            ]
        },
    ),
    (
        "max_completion_tokens wins over max_tokens; stop string becomes a list",
        {"messages": [USER_HI], "max_tokens": 50, "max_completion_tokens": 20, "stop": "###"},
        {"max_tokens": 20, "stop_sequences": ["###"], "messages": [{"role": "user", "content": [text("Hi there")]}]},
    ),
    (
        "max_tokens, stop list, temperature, top_p, user, stream",
        {
            "messages": [USER_HI],
            "max_tokens": 64,
            "stop": ["END", "STOP"],
            "temperature": 0.3,
            "top_p": 0.9,
            "user": "user-42",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {
            "max_tokens": 64,
            "stop_sequences": ["END", "STOP"],
            "temperature": 0.3,
            "top_p": 0.9,
            "metadata": {"user_id": "user-42"},
            "stream": True,
            "messages": [{"role": "user", "content": [text("Hi there")]}],
        },
    ),
    (
        "ignored tuning fields leave no trace",
        {
            "messages": [USER_HI],
            "frequency_penalty": 0.5,
            "presence_penalty": 0.1,
            "seed": 7,
            "logit_bias": {"50256": -100},
            "store": False,
            "n": 1,
            "logprobs": False,
        },
        {"messages": [{"role": "user", "content": [text("Hi there")]}]},
    ),
    (
        "function tools, named tool_choice, parallel_tool_calls false",
        {
            "messages": [{"role": "user", "content": "weather in Oslo?"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                    },
                },
                {"type": "function", "function": {"name": "now"}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        {
            "messages": [{"role": "user", "content": [text("weather in Oslo?")]}],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
                {"name": "now", "input_schema": {"type": "object", "properties": {}}},
            ],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        },
    ),
    (
        "assistant tool_calls and tool results become tool_use and tool_result blocks",
        {
            "messages": [
                {"role": "user", "content": "weather in Oslo and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
                        {"id": "toolu_B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_A", "content": "4 C, snow"},
                {"role": "tool", "tool_call_id": "toolu_B", "content": [text("19 C, sun")]},
                {"role": "user", "content": "which is warmer?"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        },
        {
            "messages": [
                {"role": "user", "content": [text("weather in Oslo and Rome?")]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Oslo"}},
                        {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_A", "content": "4 C, snow"},
                        {"type": "tool_result", "tool_use_id": "toolu_B", "content": "19 C, sun"},
                        text("which is warmer?"),
                    ],
                },
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        },
    ),
    (
        "assistant text with a call whose arguments are empty",
        {
            "messages": [
                USER_HI,
                {
                    "role": "assistant",
                    "content": "Checking the clock.",
                    "tool_calls": [{"id": "toolu_C", "type": "function", "function": {"name": "now", "arguments": ""}}],
                },
                {"role": "tool", "tool_call_id": "toolu_C", "content": "12:00"},
            ],
            "tools": [{"type": "function", "function": {"name": "now"}}],
            "tool_choice": "auto",
        },
        {
            "messages": [
                {"role": "user", "content": [text("Hi there")]},
                {
                    "role": "assistant",
                    "content": [text("Checking the clock."), {"type": "tool_use", "id": "toolu_C", "name": "now", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_C", "content": "12:00"}]},
            ],
            "tools": [{"name": "now", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "auto"},
        },
    ),
    (
        "tool_choice required and none",
        {"messages": [USER_HI], "tools": [{"type": "function", "function": {"name": "now"}}], "tool_choice": "required"},
        {
            "messages": [{"role": "user", "content": [text("Hi there")]}],
            "tools": [{"name": "now", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "any"},
        },
    ),
    (
        "tool_choice none ignores parallel_tool_calls",
        {
            "messages": [USER_HI],
            "tools": [{"type": "function", "function": {"name": "now"}}],
            "tool_choice": "none",
            "parallel_tool_calls": False,
        },
        {
            "messages": [{"role": "user", "content": [text("Hi there")]}],
            "tools": [{"name": "now", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "none"},
        },
    ),
    (
        "tool_choice without tools is dropped",
        {"messages": [USER_HI], "tool_choice": "auto", "tools": []},
        {"messages": [{"role": "user", "content": [text("Hi there")]}]},
    ),
    (
        "images: data URL and https URL",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        text("What is in these?"),
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        text("What is in these?"),
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        },
    ),
    (
        "response_format json_object adds a system instruction",
        {"messages": [{"role": "system", "content": "Be exact."}, USER_HI], "response_format": {"type": "json_object"}},
        {
            "system": "Be exact.\n\nAnswer with one valid JSON object and nothing else: no prose before or after it, "
            "no code fences.",
            "messages": [{"role": "user", "content": [text("Hi there")]}],
        },
    ),
    (
        "response_format text changes nothing",
        {"messages": [USER_HI], "response_format": {"type": "text"}},
        {"messages": [{"role": "user", "content": [text("Hi there")]}]},
    ),
]

# A json_schema response_format: the schema must reach the system prompt (checked by substring).
JSON_SCHEMA_BODY = {
    "messages": [USER_HI],
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "greeting",
            "strict": True,
            "schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
        },
    },
}

# --- requests Anthropic cannot express: (name, OpenAI body, param named in the 400) -----------------
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{"}}
REJECT_CASES = [
    ("several choices", {"messages": [USER_HI], "n": 2}, "n"),
    ("log probabilities", {"messages": [USER_HI], "logprobs": True}, "logprobs"),
    ("top log probabilities", {"messages": [USER_HI], "top_logprobs": 3}, "top_logprobs"),
    ("audio output", {"messages": [USER_HI], "modalities": ["text", "audio"]}, "modalities"),
    ("legacy functions", {"messages": [USER_HI], "functions": [{"name": "f"}]}, "functions"),
    ("no messages", {"messages": []}, "messages"),
    ("only a system message", {"messages": [{"role": "system", "content": "x"}]}, "messages"),
    ("function role", {"messages": [{"role": "function", "name": "f", "content": "1"}]}, "messages[0].role"),
    (
        "invalid JSON arguments",
        {"messages": [USER_HI, {"role": "assistant", "tool_calls": [TOOL_CALL]}]},
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "arguments that are not an object",
        {
            "messages": [
                USER_HI,
                {"role": "assistant", "tool_calls": [{**TOOL_CALL, "function": {"name": "now", "arguments": "[1]"}}]},
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool call without id",
        {"messages": [USER_HI, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "now"}}]}]},
        "messages[1].tool_calls[0].id",
    ),
    (
        "tool message without tool_call_id",
        {"messages": [USER_HI, {"role": "tool", "content": "x"}]},
        "messages[1].tool_call_id",
    ),
    (
        "audio input part",
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
        "messages[0].content[0]",
    ),
    (
        "image from a file URL",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
        "messages[0].content[0]",
    ),
    (
        "data URL that is not base64",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
        "messages[0].content[0]",
    ),
    ("non-function tool", {"messages": [USER_HI], "tools": [{"type": "web_search"}]}, "tools[0]"),
    (
        "unknown tool_choice",
        {"messages": [USER_HI], "tools": [{"type": "function", "function": {"name": "now"}}], "tool_choice": "sometimes"},
        "tool_choice",
    ),
    ("unknown response_format", {"messages": [USER_HI], "response_format": {"type": "yaml"}}, "response_format"),
]

# --- complete answers: (name, Anthropic message, expected OpenAI message, finish_reason, usage) -----
MESSAGE_BASE = {"id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "stop_sequence": None}
RESPONSE_CASES = [
    (
        "text blocks concatenate; end_turn is stop",
        {
            **MESSAGE_BASE,
            "content": [text("Hello"), text(", world.")],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 5},
        },
        {"role": "assistant", "content": "Hello, world.", "refusal": None},
        "stop",
        {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    ),
    (
        "only tool calls: content is null",
        {
            **MESSAGE_BASE,
            "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 30, "output_tokens": 20},
        },
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "toolu_02", "type": "function", "function": {"name": "now", "arguments": "{}"}},
            ],
        },
        "tool_calls",
        {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50},
    ),
    (
        "text and a tool call; thinking dropped",
        {
            **MESSAGE_BASE,
            "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
                text("Let me check."),
                {"type": "tool_use", "id": "toolu_03", "name": "get_weather", "input": {"city": "Rome"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 8, "output_tokens": 9},
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "refusal": None,
            "tool_calls": [
                {"id": "toolu_03", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}
            ],
        },
        "tool_calls",
        {"prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17},
    ),
    (
        "max_tokens is length; cache tokens count as prompt tokens",
        {
            **MESSAGE_BASE,
            "content": [text("Once upon a")],
            "stop_reason": "max_tokens",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2000,
                "output_tokens": 3,
            },
        },
        {"role": "assistant", "content": "Once upon a", "refusal": None},
        "length",
        {
            "prompt_tokens": 2110,
            "completion_tokens": 3,
            "total_tokens": 2113,
            "prompt_tokens_details": {"cached_tokens": 2000},
        },
    ),
    (
        "stop_sequence is stop; empty content is an empty string",
        {**MESSAGE_BASE, "content": [], "stop_reason": "stop_sequence", "stop_sequence": "END", "usage": {"input_tokens": 4, "output_tokens": 0}},
        {"role": "assistant", "content": "", "refusal": None},
        "stop",
        {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4},
    ),
    (
        "refusal is content_filter",
        {**MESSAGE_BASE, "content": [text("I can't help with that.")], "stop_reason": "refusal", "usage": {"input_tokens": 4, "output_tokens": 6}},
        {"role": "assistant", "content": "I can't help with that.", "refusal": None},
        "content_filter",
        {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
    ),
]


def anthropic_error(kind, message):
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011"})


# --- error answers: (Anthropic status, body, OpenAI status, type, code, message fragment) -----------
ERROR_CASES = [
    (400, anthropic_error("invalid_request_error", "max_tokens: Field required"), 400, "invalid_request_error", "invalid_request", "max_tokens"),
    (401, anthropic_error("authentication_error", "invalid x-api-key"), 401, "invalid_request_error", "invalid_api_key", "x-api-key"),
    (403, anthropic_error("permission_error", "no access to this model"), 403, "invalid_request_error", "permission_denied", "no access"),
    (404, anthropic_error("not_found_error", "model: claude-9"), 404, "invalid_request_error", "not_found", "claude-9"),
    (413, anthropic_error("request_too_large", "Request exceeds the maximum size"), 413, "invalid_request_error", "request_too_large", "maximum size"),
    (429, anthropic_error("rate_limit_error", "Number of requests has exceeded your rate limit"), 429, "requests", "rate_limit_exceeded", "rate limit"),
    (500, anthropic_error("api_error", "Internal server error"), 500, "server_error", "internal_error", "Internal"),
    (529, anthropic_error("overloaded_error", "Overloaded"), 503, "server_error", "overloaded", "Overloaded"),
    (502, b"<html><body>Bad Gateway</body></html>", 502, "server_error", "internal_error", "Bad Gateway"),
    (529, b"", 503, "server_error", "overloaded", "529"),
    (429, b"slow down", 429, "requests", "rate_limit_exceeded", "slow down"),
    (400, b'{"unexpected": true}', 400, "invalid_request_error", "invalid_request", "400"),
    (409, b"conflict", 409, "invalid_request_error", "invalid_request", "conflict"),
]


# --- streams: lists of (event name, data) as Anthropic sends them ----------------------------------
def event(kind, **fields):
    return (kind, {"type": kind, **fields})


def message_start(message_id="msg_stream_1", input_tokens=25, **usage):
    return event(
        "message_start",
        message={
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
        },
    )


def text_delta(index, value):
    return event("content_block_delta", index=index, delta={"type": "text_delta", "text": value})


def json_delta(index, fragment):
    return event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": fragment})


def message_end(stop_reason, output_tokens):
    return [
        event("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None}, usage={"output_tokens": output_tokens}),
        event("message_stop"),
    ]


TEXT_STREAM = [
    message_start(),
    event("content_block_start", index=0, content_block=text("")),
    event("ping"),
    text_delta(0, "Hello"),
    text_delta(0, ", wor"),
    text_delta(0, "ld!"),
    event("content_block_stop", index=0),
    *message_end("end_turn", 15),
]
TEXT_STREAM_TEXT = "Hello, world!"

TOOL_STREAM = [
    message_start("msg_stream_2", input_tokens=40, cache_read_input_tokens=10),
    event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
    event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "weather twice"}),
    event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "c2ln"}),
    event("content_block_stop", index=0),
    event("content_block_start", index=1, content_block=text("")),
    text_delta(1, "Checking both."),
    event("content_block_stop", index=1),
    event("content_block_start", index=2, content_block={"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}}),
    json_delta(2, ""),
    json_delta(2, '{"ci'),
    json_delta(2, 'ty": "Os'),
    json_delta(2, 'lo"}'),
    event("content_block_stop", index=2),
    event("ping"),
    event("content_block_start", index=3, content_block={"type": "tool_use", "id": "toolu_01B", "name": "now", "input": {}}),
    event("content_block_stop", index=3),
    *message_end("tool_use", 60),
]
TOOL_STREAM_CALLS = [
    {"id": "toolu_01A", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
    {"id": "toolu_01B", "name": "now", "arguments": "{}"},
]

ERROR_STREAM = [
    message_start("msg_stream_3"),
    event("content_block_start", index=0, content_block=text("")),
    text_delta(0, "Partial"),
    event("error", error={"type": "overloaded_error", "message": "Overloaded"}),
]

BROKEN_STREAM = TEXT_STREAM[:5]  # the upstream went away after two deltas


def to_sse(events):
    """The wire bytes Anthropic sends for ``events``: ``event:`` and ``data:`` lines, blank line."""
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events)
