"""Tables for the Gemini translator tests, in shapes written for these tests from the public API
reference (no captured traffic): OpenAI requests and the Gemini bodies they become, Gemini answers
and the OpenAI completions they become, error bodies, and event streams."""

import orjson

USER_HI = {"role": "user", "content": "hi"}
GEMINI_HI = {"role": "user", "parts": [{"text": "hi"}]}
WEATHER_CALL = {
    "id": "call_w1",
    "type": "function",
    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "title": "Args",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                "days": {"type": "array", "items": {"type": "integer", "minimum": 1, "additionalProperties": False}},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
WEATHER_DECLARATION = {
    "name": "weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"nullable": True, "type": "string", "enum": ["c", "f"]},
            "days": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        },
        "required": ["city"],
    },
}

# (name, OpenAI body, expected Gemini body without the fields the row does not name)
REQUEST_CASES = [
    ("plain", {"messages": [USER_HI]}, {"contents": [GEMINI_HI]}),
    (
        "system and developer -> systemInstruction parts, wherever they stand",
        {"messages": [{"role": "system", "content": "be brief"}, USER_HI, {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]}]},
        {"contents": [GEMINI_HI], "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "no emoji"}]}},
    ),
    (
        "assistant -> model; consecutive same-role turns merge; empty text dropped",
        {"messages": [USER_HI, {"role": "user", "content": [{"type": "text", "text": "there"}, {"type": "text", "text": ""}]},
                      {"role": "assistant", "content": "hello"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "again"}]},
        {"contents": [{"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]}, {"role": "model", "parts": [{"text": "hello"}]},
                      {"role": "user", "parts": [{"text": "again"}]}]},
    ),
    (
        "images: data URL -> inlineData, http URL -> fileData with a guessed type",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/image"}},
        ]}]},
        {"contents": [{"role": "user", "parts": [
            {"text": "look"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/image"}},
        ]}]},
    ),
    (
        "tool calls -> functionCall; tool results -> functionResponse in one user turn",
        {"messages": [USER_HI,
                      {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL, {"id": "call_t2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
                      {"role": "tool", "tool_call_id": "call_w1", "content": '{"temp": 3}'},
                      {"role": "tool", "tool_call_id": "call_t2", "content": [{"type": "text", "text": "noon"}]},
                      {"role": "user", "content": "thanks"}]},
        {"contents": [GEMINI_HI,
                      {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                                                  {"functionCall": {"name": "time", "args": {}}}]},
                      {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"content": {"temp": 3}}}},
                                                 {"functionResponse": {"name": "time", "response": {"content": "noon"}}},
                                                 {"text": "thanks"}]}]},
    ),
    (
        "tools: schema cleaned, strict dropped; auto",
        {"messages": [USER_HI], "tools": [WEATHER_TOOL], "tool_choice": "auto"},
        {"tools": [{"functionDeclarations": [WEATHER_DECLARATION]}], "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}},
    ),
    (
        "a function without parameters is declared without a schema; none",
        {"messages": [USER_HI], "tools": [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}], "tool_choice": "none"},
        {"tools": [{"functionDeclarations": [{"name": "now"}]}], "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}},
    ),
    (
        "required -> ANY",
        {"messages": [USER_HI], "tools": [WEATHER_TOOL], "tool_choice": "required"},
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
    ),
    (
        "named function -> ANY + allowedFunctionNames",
        {"messages": [USER_HI], "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}},
    ),
    (
        "tool_choice without tools is not sent",
        {"messages": [USER_HI], "tool_choice": "none"},
        {"contents": [GEMINI_HI], "toolConfig": None, "tools": None},
    ),
    (
        "generation config",
        {"messages": [USER_HI], "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "stop": "END", "n": 2, "seed": 7,
         "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u1", "parallel_tool_calls": False},
        {"generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 50, "stopSequences": ["END"], "candidateCount": 2,
                              "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5}},
    ),
    (
        "max_completion_tokens wins over max_tokens; stop list",
        {"messages": [USER_HI], "max_completion_tokens": 9, "max_tokens": 50, "stop": ["a", "b"]},
        {"generationConfig": {"maxOutputTokens": 9, "stopSequences": ["a", "b"]}},
    ),
    (
        "json_object",
        {"messages": [USER_HI], "response_format": {"type": "json_object"}},
        {"generationConfig": {"responseMimeType": "application/json"}},
    ),
    (
        "json_schema -> responseSchema, cleaned",
        {"messages": [USER_HI], "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": {
            "type": "object", "properties": {"n": {"type": "integer"}, "k": {"const": "x"}}, "required": ["n"], "additionalProperties": False}}}},
        {"generationConfig": {"responseMimeType": "application/json", "responseSchema": {
            "type": "object", "properties": {"n": {"type": "integer"}, "k": {"enum": ["x"], "type": "string"}}, "required": ["n"]}}},
    ),
    ("response_format text sends nothing", {"messages": [USER_HI], "response_format": {"type": "text"}}, {"generationConfig": None}),
    (
        "cache_control on parts and messages is ignored (Gemini caches prefixes by itself)",
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]},
                      {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                       "cache_control": {"type": "ephemeral"}}],
         "tools": [{**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}}]},
        {"contents": [GEMINI_HI], "systemInstruction": {"parts": [{"text": "rules"}]},
         "tools": [{"functionDeclarations": [WEATHER_DECLARATION]}]},
    ),
    (
        "reasoning_effort on a model that does not think (2.0) sends no thinkingConfig",
        {"messages": [USER_HI], "reasoning_effort": "high", "max_tokens": 50},
        {"generationConfig": {"maxOutputTokens": 50}},
    ),
]  # fmt: skip

# (model, reasoning_effort, the generationConfig.thinkingConfig sent, or None when none is)
THINKING_CASES = [
    ("gemini-2.5-flash", "minimal", {"includeThoughts": True, "thinkingBudget": 512}),
    ("gemini-2.5-flash", "low", {"includeThoughts": True, "thinkingBudget": 2048}),
    ("gemini-2.5-flash", "medium", {"includeThoughts": True, "thinkingBudget": 8192}),
    ("gemini-2.5-flash", "high", {"includeThoughts": True, "thinkingBudget": 16384}),
    ("gemini-2.5-flash", "xhigh", {"includeThoughts": True, "thinkingBudget": 24576}),
    ("gemini-2.5-flash", "max", {"includeThoughts": True, "thinkingBudget": 24576}),
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
    ("gemini-2.5-flash-lite", "minimal", {"includeThoughts": True, "thinkingBudget": 512}),
    ("gemini-2.5-flash-lite", "none", {"thinkingBudget": 0}),
    ("gemini-2.5-pro", "minimal", {"includeThoughts": True, "thinkingBudget": 512}),
    ("gemini-2.5-pro", "max", {"includeThoughts": True, "thinkingBudget": 24576}),
    ("gemini-2.5-pro", "none", None),  # 2.5 Pro cannot stop thinking
    ("gemini-flash-latest", "low", {"includeThoughts": True, "thinkingBudget": 2048}),
    ("gemini-3-pro-preview", "minimal", {"includeThoughts": True, "thinkingLevel": "low"}),
    ("gemini-3-pro-preview", "medium", {"includeThoughts": True, "thinkingLevel": "high"}),
    ("gemini-3-pro-preview", "high", {"includeThoughts": True, "thinkingLevel": "high"}),
    ("gemini-3-pro-preview", "none", None),
    ("gemini-3-flash-preview", "minimal", {"includeThoughts": True, "thinkingLevel": "minimal"}),
    ("gemini-3-flash-preview", "medium", {"includeThoughts": True, "thinkingLevel": "medium"}),
    ("gemini-3-flash-preview", "max", {"includeThoughts": True, "thinkingLevel": "high"}),
    ("gemini-2.0-flash", "high", None),
    ("gemini-2.0-flash-lite", "low", None),
    ("gemini-1.5-pro", "low", None),
    ("gemma-3-27b-it", "low", None),
]

# (name, OpenAI body, the param the 400 names)
REJECT_CASES = [
    ("no messages", {"messages": []}, "messages"),
    ("only a system message", {"messages": [{"role": "system", "content": "x"}]}, "messages"),
    ("function role", {"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ("audio part", {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages[0].content[0]"),
    ("ftp image", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}, "messages[0].content[0]"),
    ("data URL not base64", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}, "messages[0].content[0]"),
    ("arguments not an object", {"messages": [USER_HI, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ("tool result for an unknown call", {"messages": [USER_HI, {"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "messages[1].tool_call_id"),
    ("non-function tool", {"messages": [USER_HI], "tools": [{"type": "web_search"}]}, "tools[0]"),
    ("bad tool_choice", {"messages": [USER_HI], "tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ("logprobs", {"messages": [USER_HI], "logprobs": True}, "logprobs"),
    ("legacy functions", {"messages": [USER_HI], "functions": []}, "functions"),
    ("unknown reasoning_effort", {"messages": [USER_HI], "reasoning_effort": "extreme"}, "reasoning_effort"),
    ("reasoning_effort not a string", {"messages": [USER_HI], "reasoning_effort": ["low"]}, "reasoning_effort"),
    ("audio output", {"messages": [USER_HI], "modalities": ["text", "audio"]}, "modalities"),
    ("json_schema without schema", {"messages": [USER_HI], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
    ("unknown response_format", {"messages": [USER_HI], "response_format": {"type": "yaml"}}, "response_format"),
]  # fmt: skip

USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14}


def usage(prompt, completion, cached=0, reasoning=0, total=None):
    """The OpenAI usage every translated answer carries: cached and reasoning tokens always named."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def answer(parts, finish="STOP", **extra):
    """A one-candidate GenerateContentResponse."""
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
            "usageMetadata": USAGE, "modelVersion": "gemini-2.0-flash", "responseId": "resp1", **extra}  # fmt: skip


# (name, Gemini answer, expected choices[0] fields, expected usage or None to skip)
RESPONSE_CASES = [
    ("text joined", answer([{"text": "Hel"}, {"text": "lo"}]),
     {"message": {"role": "assistant", "content": "Hello", "refusal": None}, "finish_reason": "stop"},
     usage(10, 4)),
    ("thought parts become reasoning_content, their signature dropped",
     answer([{"text": "**Planning** ", "thought": True}, {"text": "the reply.", "thought": True},
             {"text": "ok", "thoughtSignature": "CiQB0e2Kb8kV"}]),
     {"message": {"role": "assistant", "content": "ok", "refusal": None, "reasoning_content": "**Planning** the reply."}},
     None),
    ("a thought part without text adds nothing", answer([{"thought": True, "thoughtSignature": "CiQB"}, {"text": "ok"}]),
     {"message": {"role": "assistant", "content": "ok", "refusal": None}}, None),
    ("max tokens", answer([{"text": "cut"}], "MAX_TOKENS"), {"finish_reason": "length"}, None),
    ("safety", answer([], "SAFETY"), {"message": {"role": "assistant", "content": "", "refusal": None}, "finish_reason": "content_filter"}, None),
    ("recitation", answer([{"text": "x"}], "RECITATION"), {"finish_reason": "content_filter"}, None),
    ("blocklist", answer([{"text": "x"}], "BLOCKLIST"), {"finish_reason": "content_filter"}, None),
    ("prohibited", answer([{"text": "x"}], "PROHIBITED_CONTENT"), {"finish_reason": "content_filter"}, None),
    ("spii", answer([{"text": "x"}], "SPII"), {"finish_reason": "content_filter"}, None),
    ("other reads as stop", answer([{"text": "x"}], "OTHER"), {"finish_reason": "stop"}, None),
    ("cached and thinking tokens",
     {**answer([{"text": "x"}]), "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60,
                                                  "candidatesTokenCount": 5, "thoughtsTokenCount": 20, "totalTokenCount": 125}},
     {"finish_reason": "stop"},
     usage(100, 25, cached=60, reasoning=20)),
    ("thinking with a tool call",
     {**answer([{"text": "Need the weather.", "thought": True},
                {"functionCall": {"id": "c1", "name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "CiQB"}]),
      "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 8, "thoughtsTokenCount": 40, "totalTokenCount": 78}},
     {"finish_reason": "tool_calls",
      "message": {"role": "assistant", "content": None, "refusal": None, "reasoning_content": "Need the weather.",
                  "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]}},
     usage(30, 48, reasoning=40, total=78)),
    ("tokens of a tool's prompt count as prompt tokens (Gemini bills them as input)",
     {**answer([{"text": "x"}]), "usageMetadata": {"promptTokenCount": 10, "toolUsePromptTokenCount": 7,
                                                  "candidatesTokenCount": 3, "totalTokenCount": 20}},
     {"finish_reason": "stop"},
     usage(17, 3, total=20)),
]  # fmt: skip

CALL_ANSWER = answer([{"text": "Let me check."}, {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                      {"functionCall": {"name": "time", "args": {}}}])  # fmt: skip
TWO_CANDIDATES = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
        {"content": {"role": "model", "parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
    ],
    "usageMetadata": USAGE,
}
BLOCKED = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}


def google_error(code, status, message, reason=None):
    error = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}]
    return orjson.dumps({"error": error})


# (name, HTTP status, body, expected status, type, code)
ERROR_CASES = [
    ("invalid argument", 400, google_error(400, "INVALID_ARGUMENT", "bad field"), 400, "invalid_request_error", "invalid_request"),
    ("failed precondition", 400, google_error(400, "FAILED_PRECONDITION", "billing"), 400, "invalid_request_error", "failed_precondition"),
    ("bad key", 400, google_error(400, "INVALID_ARGUMENT", "API key not valid.", "API_KEY_INVALID"), 401, "invalid_request_error", "invalid_api_key"),
    ("unauthenticated", 401, google_error(401, "UNAUTHENTICATED", "no creds"), 401, "invalid_request_error", "invalid_api_key"),
    ("permission denied", 403, google_error(403, "PERMISSION_DENIED", "no key"), 403, "invalid_request_error", "permission_denied"),
    ("not found", 404, google_error(404, "NOT_FOUND", "no model"), 404, "invalid_request_error", "not_found"),
    ("quota", 429, google_error(429, "RESOURCE_EXHAUSTED", "quota"), 429, "requests", "rate_limit_exceeded"),
    ("internal", 500, google_error(500, "INTERNAL", "oops"), 500, "server_error", "internal_error"),
    ("unavailable", 503, google_error(503, "UNAVAILABLE", "overloaded"), 503, "server_error", "service_unavailable"),
    ("deadline", 504, google_error(504, "DEADLINE_EXCEEDED", "slow"), 504, "server_error", "upstream_timeout"),
    ("not JSON 502", 502, b"<html>Bad Gateway</html>", 502, "server_error", "upstream_error"),
    ("array-wrapped 429", 429, b"[" + google_error(429, "RESOURCE_EXHAUSTED", "quota") + b"]", 429, "requests", "rate_limit_exceeded"),
    ("status from HTTP when the body has none", 503, b"{}", 503, "server_error", "service_unavailable"),
    ("a 4xx Google's table does not name is the client's", 413, b"Request Entity Too Large", 413, "invalid_request_error", "invalid_request"),
]  # fmt: skip


# --- streams ---------------------------------------------------------------------------------------

def chunk(parts=None, finish=None, usage=None, index=0, response_id="s1"):
    candidate = {"content": {"role": "model", "parts": parts or []}, "index": index}
    if finish:
        candidate["finishReason"] = finish
    event = {"candidates": [candidate], "modelVersion": "gemini-2.0-flash", "responseId": response_id}
    if usage:
        event["usageMetadata"] = usage
    return orjson.dumps(event)


TEXT_STREAM = [
    chunk([{"text": "Hel"}], usage={"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}),
    chunk([{"text": "lo, "}]),
    chunk([{"text": "world"}], "STOP", {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}),
]
TEXT_STREAM_TEXT = "Hello, world"
TEXT_STREAM_USAGE = usage(5, 3)
TOOL_STREAM = [
    chunk([{"text": "Checking"}]),
    chunk([{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}, {"functionCall": {"name": "time", "args": {}}}]),
    chunk([], "STOP", USAGE),
]
USAGE_AFTER_FINISH = [chunk([{"text": "x"}], "STOP"), orjson.dumps({"usageMetadata": USAGE, "responseId": "s1"})]
# Thought summaries first (includeThoughts), then the answer; cumulative usage with thoughts and an
# implicit cache hit on the last event.
THINKING_STREAM = [
    chunk([{"text": "**Weighing it** ", "thought": True}],
          usage={"promptTokenCount": 1200, "thoughtsTokenCount": 12, "totalTokenCount": 1212}),
    chunk([{"text": "I add them.", "thought": True}]),
    chunk([{"text": "It is ", "thoughtSignature": "CiQB0e2Kb8kV"}]),
    chunk([{"text": "4."}], "STOP", {"promptTokenCount": 1200, "cachedContentTokenCount": 1024, "candidatesTokenCount": 3,
                                      "thoughtsTokenCount": 30, "totalTokenCount": 1233}),
]  # fmt: skip
THINKING_STREAM_REASONING = "**Weighing it** I add them."
THINKING_STREAM_USAGE = usage(1200, 33, cached=1024, reasoning=30)
THINKING_ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "**Weighing it** ", "thought": True}, {"text": "I add them.", "thought": True},
        {"text": "It is ", "thoughtSignature": "CiQB0e2Kb8kV"}, {"text": "4."}]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 1200, "cachedContentTokenCount": 1024, "candidatesTokenCount": 3,
                      "thoughtsTokenCount": 30, "totalTokenCount": 1233},
    "modelVersion": "gemini-2.5-flash", "responseId": "s1",
}  # fmt: skip
ERROR_STREAM = [chunk([{"text": "x"}]), google_error(429, "RESOURCE_EXHAUSTED", "quota in stream")]
BROKEN_STREAM = [chunk([{"text": "x"}])]
BLOCKED_STREAM = [orjson.dumps(BLOCKED)]


def to_sse(events):
    """Events as Gemini frames them: ``data: ...`` lines ending in CRLF, a blank CRLF line after each."""
    return b"".join(b"data: " + data + b"\r\n\r\n" for data in events)
