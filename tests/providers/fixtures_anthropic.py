"""Anthropic Messages API shapes as Python data, written from the public API reference (request body,
message object, streaming events, error bodies), with the OpenAI shapes they translate to and from.

Each table is used in one direction by ``test_anthropic.py`` and, where it makes sense, checked
against the strict emulator (``tests/emulators/anthropic.py``) as an oracle of what Anthropic accepts.
"""

import orjson

USER_HI = {"role": "user", "content": "Hi there"}


def text(value, **fields):
    return {"type": "text", "text": value, **fields}


def usage(prompt, completion, cached=0, written=0):
    """The OpenAI usage every translated answer carries: cache reads and writes always named."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
    }


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
        "max_tokens, stop list, temperature (which wins over top_p: one or the other), user, stream",
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
            "metadata": {"user_id": "user-42"},
            "stream": True,
            "messages": [{"role": "user", "content": [text("Hi there")]}],
        },
    ),
    (
        "top_p alone is sent",
        {"messages": [USER_HI], "top_p": 0.9},
        {"top_p": 0.9, "messages": [{"role": "user", "content": [text("Hi there")]}]},
    ),
    (
        "a temperature above Anthropic's 1 (OpenAI allows 2) is sent as 1",
        {"messages": [USER_HI], "temperature": 1.5},
        {"temperature": 1, "messages": [{"role": "user", "content": [text("Hi there")]}]},
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

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
ASK = [{"role": "user", "content": [text("Hi there")]}]
WEATHER_FUNCTION = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL_A = {"id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}


def thinking(budget):
    return {"type": "enabled", "budget_tokens": budget}


# reasoning_effort -> thinking (the model of the tests, claude-sonnet-4-5, thinks).
REASONING_CASES = [
    (
        "reasoning_effort low: a 2048 budget, max_tokens raised to budget + the default",
        {"messages": [USER_HI], "reasoning_effort": "low"},
        {"thinking": thinking(2048), "max_tokens": 6144, "messages": ASK},
    ),
    (
        "a client max above the budget is kept: it bounds thinking and answer together",
        {"messages": [USER_HI], "reasoning_effort": "high", "max_completion_tokens": 40000},
        {"thinking": thinking(16384), "max_tokens": 40000, "messages": ASK},
    ),
    (
        "a client max below the budget is raised by the budget: the answer keeps its room",
        {"messages": [USER_HI], "reasoning_effort": "medium", "max_tokens": 300},
        {"thinking": thinking(8192), "max_tokens": 8492, "messages": ASK},
    ),
    (
        "a client max just above the budget is raised so the answer keeps the default's room",
        {"messages": [USER_HI], "reasoning_effort": "minimal", "max_completion_tokens": 5000},
        {"thinking": thinking(1024), "max_tokens": 5120, "messages": ASK},
    ),
    (
        "with thinking, temperature other than 1 is dropped and top_p raised to 0.95",
        {"messages": [USER_HI], "reasoning_effort": "low", "temperature": 0.2, "top_p": 0.5},
        {"thinking": thinking(2048), "max_tokens": 6144, "top_p": 0.95, "messages": ASK},
    ),
    (
        "with thinking, temperature 1 stays, and wins over top_p",
        {"messages": [USER_HI], "reasoning_effort": "low", "temperature": 1, "top_p": 0.97},
        {"thinking": thinking(2048), "max_tokens": 6144, "temperature": 1, "messages": ASK},
    ),
    (
        "reasoning_effort none asks for no thinking",
        {"messages": [USER_HI], "reasoning_effort": "none", "temperature": 0.2},
        {"temperature": 0.2, "messages": ASK},
    ),
    (
        "a forced tool call gets no thinking (Anthropic refuses both together)",
        {"messages": [USER_HI], "reasoning_effort": "high", "tools": [WEATHER_FUNCTION], "tool_choice": "required"},
        {
            "messages": ASK,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
        },
    ),
    (
        "a turn that continues a tool call gets no thinking (its signed block cannot come back)",
        {
            "messages": [USER_HI, {"role": "assistant", "tool_calls": [CALL_A]},
                         {"role": "tool", "tool_call_id": "toolu_A", "content": "4 C"}],
            "reasoning_effort": "high",
            "tools": [WEATHER_FUNCTION],
        },
        {
            "messages": [
                {"role": "user", "content": [text("Hi there")]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_A", "name": "get_weather",
                                                   "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "4 C"}]},
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        },
    ),
    (
        "a tool call answered in an earlier exchange does not stop thinking",
        {
            "messages": [USER_HI, {"role": "assistant", "tool_calls": [CALL_A]},
                         {"role": "tool", "tool_call_id": "toolu_A", "content": "4 C"},
                         {"role": "assistant", "content": "It is 4 C."}, {"role": "user", "content": "And now?"}],
            "reasoning_effort": "low",
            "tools": [WEATHER_FUNCTION],
        },
        {
            "thinking": thinking(2048),
            "max_tokens": 6144,
            "messages": [
                {"role": "user", "content": [text("Hi there")]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_A", "name": "get_weather",
                                                   "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "4 C"}]},
                {"role": "assistant", "content": [text("It is 4 C.")]},
                {"role": "user", "content": [text("And now?")]},
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        },
    ),
]  # fmt: skip
# Every effort's budget and the max_tokens it gets when the client sent none (default 4096).
EFFORT_BUDGETS = [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384), ("xhigh", 24576),
                  ("max", 27904)]  # fmt: skip

# cache_control on content parts, messages and tools -> the blocks they become.
CACHE_CASES = [
    (
        "cache_control on a user text part and an image part",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "A long document.", "cache_control": HOUR},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}, "cache_control": EPHEMERAL},
            {"type": "text", "text": "Summarise it."},
        ]}]},
        {"messages": [{"role": "user", "content": [
            text("A long document.", cache_control=HOUR),
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}, "cache_control": EPHEMERAL},
            text("Summarise it."),
        ]}]},
    ),
    (
        "cache_control in the system prompt: system becomes text blocks, one per part",
        {"messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are terse."},
                                           {"type": "text", "text": "Rules: ...", "cache_control": EPHEMERAL}]},
            {"role": "developer", "content": "Use metric units."},
            USER_HI,
        ]},
        {
            "system": [text("You are terse."), text("Rules: ...", cache_control=EPHEMERAL), text("Use metric units.")],
            "messages": ASK,
        },
    ),
    (
        "cache_control on a message marks its last block; the JSON instruction follows the system blocks",
        {"messages": [
            {"role": "system", "content": "Be exact.", "cache_control": EPHEMERAL},
            {"role": "user", "content": "Hi there", "cache_control": EPHEMERAL},
        ], "response_format": {"type": "json_object"}},
        {
            "system": [text("Be exact.", cache_control=EPHEMERAL), text(
                "Answer with one valid JSON object and nothing else: no prose before or after it, no code fences.")],
            "messages": [{"role": "user", "content": [text("Hi there", cache_control=EPHEMERAL)]}],
        },
    ),
    (
        "cache_control on an assistant part, a tool result part and a tool definition",
        {
            "messages": [
                USER_HI,
                {"role": "assistant", "content": [{"type": "text", "text": "Checking.", "cache_control": EPHEMERAL}],
                 "tool_calls": [CALL_A]},
                {"role": "tool", "tool_call_id": "toolu_A",
                 "content": [{"type": "text", "text": "4 C"}, {"type": "text", "text": "snow", "cache_control": EPHEMERAL}]},
            ],
            "tools": [{**WEATHER_FUNCTION, "cache_control": EPHEMERAL}],
        },
        {
            "messages": [
                {"role": "user", "content": [text("Hi there")]},
                {"role": "assistant", "content": [
                    text("Checking.", cache_control=EPHEMERAL),
                    {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Oslo"}},
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "4 C\nsnow",
                                              "cache_control": EPHEMERAL}]},
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
        },
    ),
    (
        "cache_control with thinking: both reach Anthropic",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there", "cache_control": EPHEMERAL}]}],
         "reasoning_effort": "medium"},
        {"thinking": thinking(8192), "max_tokens": 12288,
         "messages": [{"role": "user", "content": [text("Hi there", cache_control=EPHEMERAL)]}]},
    ),
]  # fmt: skip
REQUEST_CASES += REASONING_CASES + CACHE_CASES

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
    ("unknown reasoning_effort", {"messages": [USER_HI], "reasoning_effort": "extreme"}, "reasoning_effort"),
    ("reasoning_effort not a string", {"messages": [USER_HI], "reasoning_effort": 3}, "reasoning_effort"),
    (
        "cache_control that is not an object",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "ephemeral"}]}]},
        "messages[0].content[0].cache_control",
    ),
    (
        "cache_control on a message that is not an object",
        {"messages": [{"role": "user", "content": "x", "cache_control": True}]},
        "messages[0].cache_control",
    ),
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
        usage(12, 5),
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
        usage(30, 20),
    ),
    (
        "text and a tool call; thinking becomes reasoning_content, its signature dropped",
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
            "reasoning_content": "The user wants weather.",
            "tool_calls": [
                {"id": "toolu_03", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}
            ],
        },
        "tool_calls",
        usage(8, 9),
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
        usage(2110, 3, cached=2000, written=100),
    ),
    (
        "stop_sequence is stop; empty content is an empty string",
        {**MESSAGE_BASE, "content": [], "stop_reason": "stop_sequence", "stop_sequence": "END", "usage": {"input_tokens": 4, "output_tokens": 0}},
        {"role": "assistant", "content": "", "refusal": None},
        "stop",
        usage(4, 0),
    ),
    (
        "refusal is content_filter",
        {**MESSAGE_BASE, "content": [text("I can't help with that.")], "stop_reason": "refusal", "usage": {"input_tokens": 4, "output_tokens": 6}},
        {"role": "assistant", "content": "I can't help with that.", "refusal": None},
        "content_filter",
        usage(4, 6),
    ),
    (
        "thinking blocks join with a blank line; redacted and empty thinking dropped",
        {
            **MESSAGE_BASE,
            "content": [
                {"type": "thinking", "thinking": "First, the units.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw"},
                {"type": "thinking", "thinking": "", "signature": "EqQBCgIYAhIMempty"},
                {"type": "thinking", "thinking": "Then the answer.", "signature": "EqQBCgIYAhIM2hcdEb0HKxaB"},
                text("42 km."),
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 20, "output_tokens": 90, "cache_creation_input_tokens": None,
                      "cache_read_input_tokens": None},
        },
        {
            "role": "assistant",
            "content": "42 km.",
            "refusal": None,
            "reasoning_content": "First, the units.\n\nThen the answer.",
        },
        "stop",
        usage(20, 90),
    ),
    (
        "cache writes of both lifetimes count as prompt tokens and cache_write_tokens",
        {
            **MESSAGE_BASE,
            "content": [text("ok")],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 3,
                "cache_creation_input_tokens": 1500,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 500},
                "output_tokens": 1,
                "service_tier": "standard",
            },
        },
        {"role": "assistant", "content": "ok", "refusal": None},
        "stop",
        usage(1503, 1, written=1500),
    ),
]  # fmt: skip


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
    (503, b"Service Unavailable", 503, "server_error", "internal_error", "Unavailable"),
    (507, b"Insufficient Storage", 502, "server_error", "internal_error", "Insufficient"),
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

def thinking_delta(index, value):
    return event("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": value})


def signature_delta(index, value):
    return event("content_block_delta", index=index, delta={"type": "signature_delta", "signature": value})


# Extended thinking with prompt caching: two thinking blocks around a redacted one, then the text.
# Newer API versions repeat the cache counts in message_delta (cumulative, like output_tokens).
THINKING_STREAM = [
    message_start("msg_stream_4", input_tokens=12, cache_creation_input_tokens=300, cache_read_input_tokens=2000),
    event("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""}),
    thinking_delta(0, "The user asks "),
    thinking_delta(0, "for a sum."),
    signature_delta(0, "EqQBCgIYAhIM1gbcDa9GJwZA"),
    event("content_block_stop", index=0),
    event("content_block_start", index=1, content_block={"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pz"}),
    event("content_block_stop", index=1),
    event("content_block_start", index=2, content_block={"type": "thinking", "thinking": "", "signature": ""}),
    event("ping"),
    thinking_delta(2, "2 + 2 = 4."),
    signature_delta(2, "EqQBCgIYAhIM2hcdEb0HKxaB"),
    event("content_block_stop", index=2),
    event("content_block_start", index=3, content_block=text("")),
    text_delta(3, "It is 4."),
    event("content_block_stop", index=3),
    event("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None},
          usage={"input_tokens": 12, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000,
                 "output_tokens": 57}),
    event("message_stop"),
]  # fmt: skip
THINKING_STREAM_REASONING = "The user asks for a sum.\n\n2 + 2 = 4."
THINKING_STREAM_USAGE = usage(2312, 57, cached=2000, written=300)
# The same message, complete: what translate_response must read as the stream's sum.
THINKING_MESSAGE = {
    **MESSAGE_BASE,
    "id": "msg_stream_4",
    "content": [
        {"type": "thinking", "thinking": "The user asks for a sum.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pz"},
        {"type": "thinking", "thinking": "2 + 2 = 4.", "signature": "EqQBCgIYAhIM2hcdEb0HKxaB"},
        text("It is 4."),
    ],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000,
              "output_tokens": 57},
}  # fmt: skip

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
