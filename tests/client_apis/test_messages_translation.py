"""The Anthropic Messages client API, complete requests and answers: Messages request -> OpenAI chat
request (mapping and Anthropic's validation), chat completion -> Message, errors -> Anthropic's
error shape. Tables of (Anthropic in, OpenAI out) or the reverse, written from both public API
references."""

import orjson
import pytest

from alloy.client_apis import anthropic_error_body, chat_request_from_messages, messages_response_from_chat
from alloy.client_apis.messages_response import UNPARSED_ARGUMENTS
from alloy.errors import InvalidRequest, UpstreamProtocolError, error_response_body
from fixtures_messages import completion, usage

MODEL = "claude-sonnet-4-5"
HI = {"role": "user", "content": "Hi"}
PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_FUNCTION = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_TOOL["input_schema"]},
}


def text(value, **extra):
    return {"type": "text", "text": value, **extra}


def tool_use(call_id, name, arguments):
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def tool_result(call_id, content, **extra):
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def image(source):
    return {"type": "image", "source": source}


def call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def request(**fields):
    return {"model": MODEL, "max_tokens": 100, "messages": [HI], **fields}


def translate(body):
    return chat_request_from_messages(body)


# --- requests: (name, Anthropic fields over request(), expected OpenAI fields over model/max/messages) --
REQUEST_CASES = [
    ("plain string turn", {}, {"messages": [{"role": "user", "content": "Hi"}]}),
    (
        "system string leads",
        {"system": "Be terse."},
        {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]},
    ),
    (
        "system blocks join with a blank line; cache_control is dropped",
        {"system": [text("You are Claude Code."), text("Rules.", cache_control={"type": "ephemeral"})]},
        {"messages": [{"role": "system", "content": "You are Claude Code.\n\nRules."}, {"role": "user", "content": "Hi"}]},
    ),
    (
        "text-only blocks become one string",
        {"messages": [{"role": "user", "content": [text("<reminder>"), text("Fix the bug")]}]},
        {"messages": [{"role": "user", "content": "<reminder>\n\nFix the bug"}]},
    ),
    (
        "an empty text block next to others adds no blank line",
        {"messages": [{"role": "user", "content": [text(""), text("Fix the bug")]}]},
        {"messages": [{"role": "user", "content": "Fix the bug"}]},
    ),
    (
        "images become image_url parts: base64 as a data URL, url as it is",
        {"messages": [{"role": "user", "content": [
            image({"type": "base64", "media_type": "image/png", "data": PNG}),
            image({"type": "url", "url": "https://example.com/cat.jpg"}),
            text("What is this?"),
        ]}]},
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "What is this?"},
        ]}]},
    ),
    (
        "documents: a base64 PDF is a file part, a text document is text",
        {"messages": [{"role": "user", "content": [
            {"type": "document", "title": "spec.pdf", "source": {"type": "base64", "media_type": "application/pdf",
                                                                  "data": "JVBERi0="}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        ]}]},
        {"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "text", "text": "plain words"},
        ]}]},
    ),
    (
        "a tool round: tool_use -> tool_calls; tool_results -> tool messages first, then the user text",
        {"messages": [
            HI,
            {"role": "assistant", "content": [text("Checking."), tool_use("toolu_1", "get_weather", {"city": "Paris"}),
                                              tool_use("toolu_2", "get_weather", {"city": "Oslo"})]},
            {"role": "user", "content": [tool_result("toolu_1", "18C"), tool_result("toolu_2", [text("4C"), text("snow")]),
                                         text("And tomorrow?")]},
        ]},
        {"messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                call("toolu_1", "get_weather", '{"city":"Paris"}'), call("toolu_2", "get_weather", '{"city":"Oslo"}')]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "4C\n\nsnow"},
            {"role": "user", "content": "And tomorrow?"},
        ]},
    ),
    (
        "an assistant turn of tool calls only has null content; a user turn of results only adds no user message",
        {"messages": [HI, {"role": "assistant", "content": [tool_use("t1", "now", {})]},
                      {"role": "user", "content": [tool_result("t1", "noon")]}]},
        {"messages": [{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": None, "tool_calls": [call("t1", "now", "{}")]},
                      {"role": "tool", "tool_call_id": "t1", "content": "noon"}]},
    ),
    (
        "is_error prefixes the tool text; an empty result reads Error",
        {"messages": [{"role": "user", "content": [
            tool_result("t1", "<tool_use_error>No such file</tool_use_error>", is_error=True),
            {"type": "tool_result", "tool_use_id": "t2", "is_error": True},
        ]}]},
        {"messages": [{"role": "tool", "tool_call_id": "t1", "content": "Error: <tool_use_error>No such file</tool_use_error>"},
                      {"role": "tool", "tool_call_id": "t2", "content": "Error"}]},
    ),
    (
        "an image a tool returned moves to the next user message, and the tool text says so",
        {"messages": [{"role": "user", "content": [
            tool_result("t1", [text("screenshot taken"), image({"type": "base64", "media_type": "image/jpeg", "data": "AA=="})]),
            text("What do you see?"),
        ]}]},
        {"messages": [
            {"role": "tool", "tool_call_id": "t1",
             "content": "screenshot taken\n[1 attachment(s) returned by this tool follow in the next user message]"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AA=="}},
                                         {"type": "text", "text": "What do you see?"}]},
        ]},
    ),
    (
        "thinking blocks are dropped; a turn of thinking alone disappears",
        {"messages": [
            HI,
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                              {"type": "redacted_thinking", "data": "xyz"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "so", "signature": "s"}, text("Hello")]},
            {"role": "user", "content": "Bye"},
        ]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                      {"role": "user", "content": "Bye"}]},
    ),
    (
        "a last assistant turn (prefill) is sent as it is",
        {"messages": [HI, {"role": "assistant", "content": "The answer is ("}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is ("}]},
    ),
    ("custom tools become function tools", {"tools": [WEATHER_TOOL]}, {"tools": [WEATHER_FUNCTION]}),
    (
        "type custom, strict and cache_control on a tool",
        {"tools": [{**WEATHER_TOOL, "type": "custom", "strict": True, "cache_control": {"type": "ephemeral"}}]},
        {"tools": [{"type": "function", "function": {**WEATHER_FUNCTION["function"], "strict": True}}]},
    ),
    ("tool_choice auto", {"tools": [WEATHER_TOOL], "tool_choice": {"type": "auto"}},
     {"tools": [WEATHER_FUNCTION], "tool_choice": "auto"}),
    ("tool_choice any is required", {"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}},
     {"tools": [WEATHER_FUNCTION], "tool_choice": "required"}),
    ("tool_choice none", {"tools": [WEATHER_TOOL], "tool_choice": {"type": "none"}},
     {"tools": [WEATHER_FUNCTION], "tool_choice": "none"}),
    (
        "tool_choice tool names a function; disable_parallel_tool_use",
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}},
        {"tools": [WEATHER_FUNCTION], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
         "parallel_tool_calls": False},
    ),
    ("tool_choice without tools is dropped", {"tool_choice": {"type": "any"}}, {}),
    (
        "sampling: temperature and top_p pass, top_k is dropped, stop_sequences -> stop",
        {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop_sequences": ["###", "END"]},
        {"temperature": 0.2, "top_p": 0.9, "stop": ["###", "END"]},
    ),
    ("empty stop_sequences send no stop", {"stop_sequences": []}, {}),
    ("metadata.user_id -> user", {"metadata": {"user_id": "user_abc"}}, {"user": "user_abc"}),
    ("metadata without user_id", {"metadata": {}}, {}),
    ("stream asks for the usage chunk", {"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
    ("stream false", {"stream": False}, {}),
    ("thinking disabled", {"thinking": {"type": "disabled"}}, {}),
    ("adaptive thinking sends no effort", {"thinking": {"type": "adaptive"}}, {}),
    ("output_config effort", {"output_config": {"effort": "medium"}}, {"reasoning_effort": "medium"}),
    ("effort max is high", {"output_config": {"effort": "max"}}, {"reasoning_effort": "high"}),
    (
        "an explicit effort wins over a thinking budget",
        {"thinking": {"type": "enabled", "budget_tokens": 30000}, "output_config": {"effort": "low"}},
        {"reasoning_effort": "low"},
    ),
    (
        "output_config.format -> response_format json_schema",
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}}},
    ),
    (
        "the beta output_format too",
        {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}}},
    ),
    (
        "hints without an OpenAI counterpart are ignored, unknown fields too",
        {"service_tier": "auto", "cache_control": {"type": "ephemeral"}, "context_management": {"edits": []},
         "container": None, "mcp_servers": [], "some_future_beta_field": 1},
        {},
    ),
]  # fmt: skip


@pytest.mark.parametrize("name, fields, expected", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_request_mapping(name, fields, expected):
    out = translate(request(**fields))
    assert out == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 100,
                   **expected}  # fmt: skip


@pytest.mark.parametrize(
    "budget, effort",
    [(1024, "low"), (4000, "low"), (4095, "low"), (4096, "medium"), (10000, "medium"), (16383, "medium"),
     (16384, "high"), (31999, "high"), (128000, "high")],
)  # fmt: skip
def test_thinking_budget_sets_reasoning_effort(budget, effort):
    out = translate(request(max_tokens=200000, thinking={"type": "enabled", "budget_tokens": budget}))
    assert out["reasoning_effort"] == effort


def test_the_body_is_not_changed():
    body = request(system=[text("s")], tools=[WEATHER_TOOL], stream=True)
    before = orjson.dumps(body)
    translate(body)
    assert orjson.dumps(body) == before


# --- requests Anthropic refuses, or the OpenAI request cannot express: (name, body, param) -------------
def messages(*content_or_turns):
    return {"messages": list(content_or_turns)}


REJECT_CASES = [
    ("no model", {"max_tokens": 10, "messages": [HI]}, "model"),
    ("empty model", request(model=""), "model"),
    ("no max_tokens", {"model": MODEL, "messages": [HI]}, "max_tokens"),
    ("max_tokens 0", request(max_tokens=0), "max_tokens"),
    ("max_tokens a string", request(max_tokens="100"), "max_tokens"),
    ("max_tokens a boolean", request(max_tokens=True), "max_tokens"),
    ("max_tokens a float", request(max_tokens=1.5), "max_tokens"),
    ("no messages", {"model": MODEL, "max_tokens": 10}, "messages"),
    ("empty messages", request(messages=[]), "messages"),
    ("messages not a list", request(messages={"role": "user"}), "messages"),
    ("a message not an object", request(messages=["hi"]), "messages.0"),
    ("system role in messages", request(messages=[HI, {"role": "system", "content": "x"}]), "messages.1.role"),
    ("no role", request(messages=[{"content": "x"}]), "messages.0.role"),
    ("content a number", request(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    ("content missing", request(messages=[{"role": "user"}]), "messages.0.content"),
    ("a block not an object", request(messages=[{"role": "user", "content": ["x"]}]), "messages.0.content.0"),
    ("a block without type", request(messages=[{"role": "user", "content": [{"text": "x"}]}]), "messages.0.content.0.type"),
    ("text not a string", request(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
     "messages.0.content.0.text"),
    ("tool_use in a user turn", request(messages=[{"role": "user", "content": [tool_use("t", "f", {})]}]),
     "messages.0.content.0.type"),
    ("tool_result in an assistant turn", request(messages=[HI, {"role": "assistant", "content": [tool_result("t", "x")]}]),
     "messages.1.content.0.type"),
    ("a server tool block", request(messages=[HI, {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]), "messages.1.content.0.type"),
    ("tool_use input not an object", request(messages=[HI, {"role": "assistant", "content": [tool_use("t", "f", "x")]}]),
     "messages.1.content.0.input"),
    ("tool_use without id", request(messages=[HI, {"role": "assistant", "content": [
        {"type": "tool_use", "name": "f", "input": {}}]}]), "messages.1.content.0.id"),
    ("tool_result without tool_use_id", request(messages=[{"role": "user", "content": [{"type": "tool_result"}]}]),
     "messages.0.content.0.tool_use_id"),
    ("tool_result content a number", request(messages=[{"role": "user", "content": [tool_result("t", 3)]}]),
     "messages.0.content.0.content"),
    ("a tool_result holding a tool_use", request(messages=[{"role": "user", "content": [
        tool_result("t", [tool_use("u", "f", {})])]}]), "messages.0.content.0.content.0.type"),
    ("an image from the Files API", request(messages=[{"role": "user", "content": [
        image({"type": "file", "file_id": "file_1"})]}]), "messages.0.content.0.source.type"),
    ("an image of another type", request(messages=[{"role": "user", "content": [
        image({"type": "base64", "media_type": "image/bmp", "data": "AA=="})]}]), "messages.0.content.0.source.media_type"),
    ("an image without data", request(messages=[{"role": "user", "content": [
        image({"type": "base64", "media_type": "image/png"})]}]), "messages.0.content.0.source.data"),
    ("an image without source", request(messages=[{"role": "user", "content": [{"type": "image"}]}]),
     "messages.0.content.0.source"),
    ("a URL document", request(messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]), "messages.0.content.0.source.type"),
    ("system a number", request(system=5), "system"),
    ("system with an image block", request(system=[image({"type": "url", "url": "https://x"})]), "system.0.type"),
    ("temperature above 1", request(temperature=1.5), "temperature"),
    ("top_p below 0", request(top_p=-0.1), "top_p"),
    ("temperature a string", request(temperature="0.5"), "temperature"),
    ("top_k negative", request(top_k=-1), "top_k"),
    ("stop_sequences a string", request(stop_sequences="###"), "stop_sequences"),
    ("stream a string", request(stream="yes"), "stream"),
    ("metadata not an object", request(metadata="u"), "metadata"),
    ("metadata.user_id a number", request(metadata={"user_id": 7}), "metadata.user_id"),
    ("tools not a list", request(tools={}), "tools"),
    ("a tool not an object", request(tools=["f"]), "tools.0"),
    ("a server tool", request(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
    ("an Anthropic-defined client tool", request(tools=[{"type": "bash_20250124", "name": "bash"}]), "tools.0.type"),
    ("a tool without input_schema", request(tools=[{"name": "f"}]), "tools.0.input_schema"),
    ("a tool without name", request(tools=[{"input_schema": {"type": "object"}}]), "tools.0.name"),
    ("a tool description not a string", request(tools=[{**WEATHER_TOOL, "description": 3}]), "tools.0.description"),
    ("tool_choice of another type", request(tools=[WEATHER_TOOL], tool_choice={"type": "required"}), "tool_choice"),
    ("tool_choice a string", request(tools=[WEATHER_TOOL], tool_choice="auto"), "tool_choice"),
    ("tool_choice tool without name", request(tools=[WEATHER_TOOL], tool_choice={"type": "tool"}), "tool_choice.name"),
    ("thinking not an object", request(thinking="enabled"), "thinking"),
    ("thinking budget below 1024", request(thinking={"type": "enabled", "budget_tokens": 1023}),
     "thinking.enabled.budget_tokens"),
    ("thinking budget missing", request(thinking={"type": "enabled"}), "thinking.enabled.budget_tokens"),
    ("output_config not an object", request(output_config="high"), "output_config"),
    ("an unknown effort", request(output_config={"effort": "ultra"}), "output_config.effort"),
    ("output format not json_schema", request(output_config={"format": {"type": "text"}}), "output_config.format.type"),
    ("output format without schema", request(output_format={"type": "json_schema"}), "output_format.schema"),
    ("MCP servers", request(mcp_servers=[{"type": "url", "url": "https://mcp", "name": "m"}]), "mcp_servers"),
]  # fmt: skip


@pytest.mark.parametrize("name, body, param", REJECT_CASES, ids=[case[0] for case in REJECT_CASES])
def test_a_request_that_cannot_go_is_a_400_naming_the_field(name, body, param):
    with pytest.raises(InvalidRequest) as caught:
        translate(body)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")
    assert caught.value.status == 400


def test_a_body_that_is_not_an_object():
    with pytest.raises(InvalidRequest, match="JSON object"):
        translate([1])


def test_the_error_a_client_sees_for_an_invalid_request_is_anthropic_shaped():
    with pytest.raises(InvalidRequest) as caught:
        translate(request(max_tokens=None))
    exc = caught.value
    body = orjson.loads(anthropic_error_body(exc.status, error_response_body(exc)))
    assert body == {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}


# --- responses: (name, OpenAI completion, Anthropic content, stop_reason, stop_sequence) -----------------
RESPONSE_CASES = [
    ("text", completion({"content": "Hello!"}), [text("Hello!")], "end_turn", None),
    (
        "text and two tool calls",
        completion({"content": "Checking.", "tool_calls": [call("call_1", "get_weather", '{"city":"Paris"}'),
                                                           call("call_2", "now", "")]}, "tool_calls"),
        [text("Checking."), tool_use("call_1", "get_weather", {"city": "Paris"}), tool_use("call_2", "now", {})],
        "tool_use",
        None,
    ),
    (
        "tool calls with finish stop (some servers) still mean tool_use",
        completion({"content": None, "tool_calls": [call("c", "f", "{}")]}, "stop"),
        [tool_use("c", "f", {})],
        "tool_use",
        None,
    ),
    (
        "arguments that are not a JSON object keep the raw text",
        completion({"content": None, "tool_calls": [call("c", "f", '{"city": "Par'), call("d", "g", "[1]")]}, "tool_calls"),
        [tool_use("c", "f", {UNPARSED_ARGUMENTS: '{"city": "Par'}), tool_use("d", "g", {UNPARSED_ARGUMENTS: "[1]"})],
        "tool_use",
        None,
    ),
    (
        "reasoning_content is a thinking block before the text",
        completion({"content": "42", "reasoning_content": "six times seven"}),
        [{"type": "thinking", "thinking": "six times seven", "signature": ""}, text("42")],
        "end_turn",
        None,
    ),
    (
        "a refusal is text with stop_reason refusal",
        completion({"content": None, "refusal": "I can't help with that."}),
        [text("I can't help with that.")],
        "refusal",
        None,
    ),
    ("length is max_tokens", completion({"content": "Once upon"}, "length"), [text("Once upon")], "max_tokens", None),
    ("content_filter is refusal", completion({"content": ""}, "content_filter"), [], "refusal", None),
    (
        "a stop string the server names is a stop_sequence",
        completion({"content": "a b"}, "stop", stop_reason="###"),
        [text("a b")],
        "stop_sequence",
        "###",
    ),
    ("no content makes no block", completion({"content": None}), [], "end_turn", None),
    ("content as text parts", completion({"content": [text("a"), text("b")]}), [text("ab")], "end_turn", None),
    ("an unknown finish reason", completion({"content": "x"}, None), [text("x")], "end_turn", None),
]  # fmt: skip


@pytest.mark.parametrize("name, chat, content, reason, sequence", RESPONSE_CASES, ids=[c[0] for c in RESPONSE_CASES])
def test_response_mapping(name, chat, content, reason, sequence):
    message = messages_response_from_chat(chat, "my-claude")
    assert message == {
        "id": "msg_A1b2C3",
        "type": "message",
        "role": "assistant",
        "model": "my-claude",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": {"input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def test_cached_prompt_tokens_are_cache_reads_apart_from_input():
    chat = completion({"content": "x"}, usage=usage(1000, 7, cached=896))
    assert messages_response_from_chat(chat, "m")["usage"] == {
        "input_tokens": 104, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 896,
    }  # fmt: skip


def test_missing_usage_and_id():
    chat = completion({"content": "x"})
    del chat["usage"], chat["id"]
    message = messages_response_from_chat(chat, "m")
    assert message["usage"]["input_tokens"] == 0 and message["usage"]["output_tokens"] == 0
    assert message["id"].startswith("msg_") and len(message["id"]) > 10


def test_a_tool_call_without_id_gets_one():
    chat = completion({"content": None, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    assert messages_response_from_chat(chat, "m")["content"][0]["id"].startswith("toolu_")


@pytest.mark.parametrize(
    "chat",
    [{}, {"choices": []}, {"choices": [{"message": None}]}, {"choices": "x"}, [],
     {"choices": [{"message": {"tool_calls": [{"function": {"name": 5}}]}}]},
     {"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]}],
)  # fmt: skip
def test_an_answer_that_is_not_a_completion_is_a_502(chat):
    with pytest.raises(UpstreamProtocolError) as caught:
        messages_response_from_chat(chat, "m")
    assert caught.value.status == 502


# --- errors ---------------------------------------------------------------------------------------------
def openai_error(message, kind="invalid_request_error", code=None):
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


@pytest.mark.parametrize(
    "status, kind",
    [(400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"), (403, "permission_error"),
     (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
     (503, "overloaded_error"), (529, "overloaded_error"), (504, "timeout_error"), (422, "invalid_request_error"),
     (405, "invalid_request_error"), (502, "api_error")],
)  # fmt: skip
def test_error_type_follows_the_status_and_the_message_is_kept(status, kind):
    body = orjson.loads(anthropic_error_body(status, openai_error("Something precise went wrong.")))
    assert body == {"type": "error", "error": {"type": kind, "message": "Something precise went wrong."}}


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<html>Bad Gateway</html>", "upstream answered status 502: <html>Bad Gateway</html>"),
        (b"", "upstream answered status 502"),
        (b'{"error": "model is loading"}', "model is loading"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b'{"message": "quota"}', "quota"),
        (b'{"error": {"message": ""}}', 'upstream answered status 502: {"error": {"message": ""}}'),
        (b"x" * 500, "upstream answered status 502: " + "x" * 200),
    ],
)
def test_error_bodies_of_other_shapes_still_say_something(body, message):
    assert orjson.loads(anthropic_error_body(502, body))["error"]["message"] == message
