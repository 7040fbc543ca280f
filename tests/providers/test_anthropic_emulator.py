"""The strict Anthropic emulator (``tests/emulators/anthropic.py``) as a real process over raw HTTP:
it refuses what Anthropic refuses, in Anthropic's error shape, and answers what the translator
builds. The emulator's validator is also the oracle for every translated request fixture."""

import http.client
import importlib.util
import os
import re
import subprocess
import sys
import threading

import orjson
import pytest

from alloy.core import SSESplitter
from alloy.providers import TranslateSettings, anthropic
from fixtures_anthropic import JSON_SCHEMA_BODY, REQUEST_CASES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "tests", "emulators", "anthropic.py")
LISTENING = re.compile(r"^anthropic-emulator listening on http://127\.0\.0\.1:(\d+)$")
KEY = "sk-ant-emulator"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
BASIC = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]}
TOOLS = [{"name": "lookup", "description": "Look something up", "input_schema": {"type": "object"}}]


def load_emulator():
    # Loaded under its own name: "anthropic" would shadow (or be shadowed by) the SDK package.
    spec = importlib.util.spec_from_file_location("anthropic_emulator", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


emulator_module = load_emulator()


@pytest.fixture(scope="module")
def port():
    process = subprocess.Popen(
        [sys.executable, SCRIPT, "--port", "0", "--api-key", KEY],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    found, ready, lines = [], threading.Event(), []

    def read():
        for line in process.stderr:
            lines.append(line)
            match = LISTENING.match(line.rstrip("\n"))
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(20) or not found:
            raise RuntimeError("the emulator did not start:\n" + "".join(lines))
        yield found[0]
    finally:
        process.terminate()
        process.wait(10)


def request(port, body, headers=HEADERS, method="POST", path="/v1/messages"):
    """-> (status, headers dict, raw body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        try:
            raw = response.read()
        except http.client.IncompleteRead as cut:  # the cut-mid-stream fault: keep what arrived
            raw = cut.partial
        return response.status, dict(response.getheaders()), raw
    finally:
        connection.close()


def without(name):
    return {k: v for k, v in HEADERS.items() if k != name}


TOOL_TURN = [
    {"role": "user", "content": "call tool please"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
]
SONNET = "claude-sonnet-4-5"
THINK = {"type": "enabled", "budget_tokens": 2048}
THINKING = {**BASIC, "max_tokens": 4096, "thinking": THINK}
EPHEMERAL = {"type": "ephemeral"}


def user(*blocks):
    return {"role": "user", "content": list(blocks)}


def text(value, **fields):
    return {"type": "text", "text": value, **fields}


FORGED = {"type": "thinking", "thinking": "I made this up.", "signature": "c2lnbmF0dXJl"}
RESULT = user({"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"})
REFUSALS = [
    ("no key", without("x-api-key"), BASIC, 401, "authentication_error", "x-api-key"),
    ("wrong key", {**HEADERS, "x-api-key": "sk-wrong"}, BASIC, 401, "authentication_error", "x-api-key"),
    ("no version", without("anthropic-version"), BASIC, 400, "invalid_request_error", "anthropic-version"),
    ("not JSON", HEADERS, b"{nope", 400, "invalid_request_error", "JSON"),
    ("no max_tokens", HEADERS, {k: v for k, v in BASIC.items() if k != "max_tokens"}, 400, "invalid_request_error", "max_tokens"),
    ("unknown field", HEADERS, {**BASIC, "frequency_penalty": 1}, 400, "invalid_request_error", "frequency_penalty"),
    (
        "system role in messages",
        HEADERS,
        {**BASIC, "messages": [{"role": "system", "content": "be nice"}, *BASIC["messages"]]},
        400, "invalid_request_error", "system",
    ),
    (
        "first turn is the assistant's",
        HEADERS,
        {**BASIC, "messages": [{"role": "assistant", "content": "hi"}, *BASIC["messages"]]},
        400, "invalid_request_error", "first message",
    ),
    (
        "roles do not alternate",
        HEADERS,
        {**BASIC, "messages": [*BASIC["messages"], {"role": "user", "content": "again"}]},
        400, "invalid_request_error", "alternate",
    ),
    (
        "tool_result without its tool_use",
        HEADERS,
        {**BASIC, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_404", "content": "x"}]},
        ]},
        400, "invalid_request_error", "toolu_404",
    ),
    (
        "tool_use left unanswered",
        HEADERS,
        {**BASIC, "tools": TOOLS, "messages": [*TOOL_TURN, {"role": "user", "content": "never mind"}]},
        400, "invalid_request_error", "toolu_1",
    ),
    ("temperature above 1", HEADERS, {**BASIC, "temperature": 1.5}, 400, "invalid_request_error", "temperature"),
    ("empty text block", HEADERS, {**BASIC, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, 400, "invalid_request_error", "non-empty"),
    ("thinking budget below 1024", HEADERS, {**THINKING, "thinking": {"type": "enabled", "budget_tokens": 1000}}, 400,
     "invalid_request_error", "greater than or equal to 1024"),
    ("thinking budget not below max_tokens", HEADERS, {**THINKING, "max_tokens": 2048}, 400, "invalid_request_error",
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ("thinking without a budget", HEADERS, {**THINKING, "thinking": {"type": "enabled"}}, 400, "invalid_request_error", "budget_tokens"),
    ("an unknown thinking type", HEADERS, {**THINKING, "thinking": {"type": "on"}}, 400, "invalid_request_error", "thinking"),
    ("a thinking field it does not have", HEADERS, {**THINKING, "thinking": {**THINK, "budget": 1}}, 400,
     "invalid_request_error", "thinking.enabled.budget"),
    ("thinking on a model that does not think", HEADERS, {**THINKING, "model": "claude-3-5-haiku-20241022"}, 400,
     "invalid_request_error", "does not support extended thinking"),
    ("a budget on a model that only thinks adaptively", HEADERS, {**THINKING, "model": "claude-opus-4-7"}, 400,
     "invalid_request_error", "adaptive"),
    ("temperature with thinking", HEADERS, {**THINKING, "temperature": 0.5}, 400, "invalid_request_error", "`temperature` may only be set to 1"),
    ("top_k with thinking", HEADERS, {**THINKING, "top_k": 5}, 400, "invalid_request_error", "top_k"),
    ("top_p below 0.95 with thinking", HEADERS, {**THINKING, "top_p": 0.9}, 400, "invalid_request_error", "top_p"),
    ("a forced tool with thinking", HEADERS, {**THINKING, "tools": TOOLS, "tool_choice": {"type": "any"}}, 400,
     "invalid_request_error", "tool_choice forces tool use"),
    ("a tool loop with thinking but without the thinking block", HEADERS,
     {**THINKING, "tools": TOOLS, "messages": [*TOOL_TURN, RESULT]}, 400, "invalid_request_error",
     "Expected `thinking` or `redacted_thinking`, but found `tool_use`"),
    ("a thinking block with a signature Anthropic did not issue", HEADERS,
     {**BASIC, "messages": [BASIC["messages"][0], {"role": "assistant", "content": [FORGED, text("hi")]}, user(text("ok"))]},
     400, "invalid_request_error", "Invalid `signature`"),
    ("a thinking block in a user turn", HEADERS,
     {**BASIC, "messages": [user({**FORGED, "signature": emulator_module.sign(FORGED["thinking"])})]}, 400,
     "invalid_request_error", "not permitted in a user message"),
    ("redacted thinking Anthropic did not issue", HEADERS,
     {**BASIC, "messages": [BASIC["messages"][0], {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "eHl6"}]},
                            user(text("ok"))]},
     400, "invalid_request_error", "Invalid `data`"),
    ("cache_control of another type", HEADERS, {**BASIC, "messages": [user(text("hi", cache_control={"type": "persistent"}))]},
     400, "invalid_request_error", "messages.0.content.0.cache_control"),
    ("cache_control with an unknown ttl", HEADERS,
     {**BASIC, "messages": [user(text("hi", cache_control={"type": "ephemeral", "ttl": "10m"}))]}, 400, "invalid_request_error", "ttl"),
    ("cache_control on a thinking block", HEADERS,
     {**BASIC, "messages": [BASIC["messages"][0], {"role": "assistant", "content": [
         {"type": "thinking", "thinking": "t", "signature": emulator_module.sign("t"), "cache_control": EPHEMERAL}]}, user(text("ok"))]},
     400, "invalid_request_error", "cache_control: Extra inputs are not permitted"),
    ("five cache breakpoints", HEADERS,
     {**BASIC, "system": [text("s", cache_control=EPHEMERAL)],
      "messages": [user(*[text(f"t{i}", cache_control=EPHEMERAL) for i in range(4)])]},
     400, "invalid_request_error", "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ("a 1h breakpoint after a 5m one", HEADERS,
     {**BASIC, "system": [text("s", cache_control=EPHEMERAL)],
      "messages": [user(text("t", cache_control={"type": "ephemeral", "ttl": "1h"}))]},
     400, "invalid_request_error", "ttl='1h'"),
    ("a field a text block does not have", HEADERS, {**BASIC, "messages": [user(text("hi", reasoning="x"))]}, 400,
     "invalid_request_error", "messages.0.content.0.reasoning: Extra inputs"),
    ("a field a system block does not have", HEADERS, {**BASIC, "system": [text("s", priority=1)]}, 400,
     "invalid_request_error", "system.0.priority"),
    ("injected 529", {**HEADERS, "x-emulator-fault": "status=529"}, BASIC, 529, "overloaded_error", "529"),
    ("injected 429", {**HEADERS, "x-emulator-fault": "status=429"}, BASIC, 429, "rate_limit_error", "429"),
    ("injected 500", {**HEADERS, "x-emulator-fault": "status=500"}, BASIC, 500, "api_error", "500"),
]  # fmt: skip


@pytest.mark.parametrize("name, headers, body, status, kind, fragment", REFUSALS, ids=[case[0] for case in REFUSALS])
def test_refuses_like_the_real_api(port, name, headers, body, status, kind, fragment):
    got_status, got_headers, raw = request(port, body, headers)
    error = orjson.loads(raw)
    assert got_status == status
    assert error["type"] == "error" and error["error"]["type"] == kind
    assert fragment in error["error"]["message"]
    assert got_headers["request-id"].startswith("req_")


def test_an_overloaded_answer_reaches_openai_clients_as_503(port):
    status, _, raw = request(port, BASIC, {**HEADERS, "x-emulator-fault": "status=529"})
    translated_status, translated = anthropic.translate_response(status, raw, "alias", "chat/completions")
    assert translated_status == 503
    assert orjson.loads(translated)["error"]["code"] == "overloaded"


def test_echoes_and_counts_words(port):
    status, headers, raw = request(port, BASIC)
    message = orjson.loads(raw)
    assert status == 200 and headers["content-type"] == "application/json"
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 3 and message["usage"]["input_tokens"] == 2


def test_max_tokens_cuts_the_reply(port):
    message = orjson.loads(request(port, {**BASIC, "max_tokens": 2})[2])
    assert message["content"][0]["text"] == "echo: hello" and message["stop_reason"] == "max_tokens"


def test_call_tool_answers_with_tool_use(port):
    body = {**BASIC, "tools": TOOLS, "messages": [{"role": "user", "content": "please call tool now"}]}
    message = orjson.loads(request(port, body)[2])
    assert message["stop_reason"] == "tool_use"
    [block] = message["content"]
    assert (block["type"], block["name"], block["input"]) == ("tool_use", "lookup", {"query": "please call tool now"})


def test_stream_is_the_documented_event_sequence(port):
    status, headers, raw = request(port, {**BASIC, "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = SSESplitter().feed(raw)
    names = [name for name, _ in events]
    assert names == [
        b"message_start", b"content_block_start", b"ping",
        b"content_block_delta", b"content_block_delta", b"content_block_delta",
        b"content_block_stop", b"message_delta", b"message_stop",
    ]  # fmt: skip
    assert all(orjson.loads(data)["type"] == name.decode() for name, data in events)


def translated_stream(port, openai_body, headers=HEADERS):
    call = anthropic.build_request(openai_body, "claude-sonnet-4-5", "chat/completions", TranslateSettings(api_key=KEY))
    status, _, raw = request(port, call.body, {**headers, **{k.decode(): v.decode() for k, v in call.headers}})
    assert status == 200, raw
    translator = anthropic.StreamTranslator("alias", True)
    out = []
    for name, data in SSESplitter().feed(raw):
        out.extend(translator.feed(name, data))
    out.extend(translator.finish())
    assert out[-1] == b"data: [DONE]\n\n"
    return [orjson.loads(item[6:]) for item in out[:-1]]


def test_a_translated_tool_stream_round_trips(port):
    body = {
        "stream": True,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "call tool for weather"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    }
    chunks = translated_stream(port, body)
    arguments = "".join(
        call["function"]["arguments"] for chunk in chunks if chunk.get("choices")
        for call in chunk["choices"][0]["delta"].get("tool_calls", ())
    )  # fmt: skip
    assert orjson.loads(arguments) == {"query": "call tool for weather"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("fault, code", [("mid-stream-error", "overloaded"), ("cut-mid-stream", "upstream_protocol_error")])
def test_stream_faults_end_in_one_openai_error(port, fault, code):
    chunks = translated_stream(port, {"stream": True, "messages": [{"role": "user", "content": "a b c"}]},
                               {**HEADERS, "x-emulator-fault": fault})  # fmt: skip
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["error"]["code"] == code


# --- thinking -----------------------------------------------------------------------------------------------

def test_a_thinking_answer_starts_with_a_signed_thinking_block(port):
    status, _, raw = request(port, {**THINKING, "messages": [{"role": "user", "content": "what is six times seven"}]})
    message = orjson.loads(raw)
    assert status == 200, raw
    thinking, answer = message["content"]
    assert thinking == {"type": "thinking", "thinking": "Considering: what is six times seven",
                        "signature": emulator_module.sign("Considering: what is six times seven")}  # fmt: skip
    assert answer == {"type": "text", "text": "echo: what is six times seven"}
    assert message["usage"]["output_tokens"] == 6 + 6  # thinking words count as output


def test_thinking_blocks_come_back_in_a_tool_loop(port):
    first = orjson.loads(request(port, {**THINKING, "tools": TOOLS, "messages": [{"role": "user", "content": "call tool now"}]})[2])
    assert [block["type"] for block in first["content"]] == ["thinking", "tool_use"]
    tool_id = first["content"][1]["id"]
    history = [
        {"role": "user", "content": "call tool now"},
        {"role": "assistant", "content": first["content"]},
        user({"type": "tool_result", "tool_use_id": tool_id, "content": "42"}),
    ]
    status, _, raw = request(port, {**THINKING, "tools": TOOLS, "messages": history})
    assert status == 200, raw
    assert orjson.loads(raw)["content"][-1] == {"type": "text", "text": "echo: 42"}
    # Without thinking the same history is fine too: earlier thinking blocks are accepted and ignored.
    assert request(port, {**BASIC, "tools": TOOLS, "messages": history})[0] == 200


def test_adaptive_and_disabled_thinking(port):
    adaptive = orjson.loads(request(port, {**BASIC, "model": "claude-opus-4-7", "thinking": {"type": "adaptive"}})[2])
    assert adaptive["content"][0]["type"] == "thinking"
    disabled = orjson.loads(request(port, {**BASIC, "thinking": {"type": "disabled"}, "temperature": 0.2})[2])
    assert [block["type"] for block in disabled["content"]] == ["text"]


def test_the_documented_trigger_answers_redacted_thinking(port):
    ask = {"role": "user", "content": emulator_module.REDACTED_TRIGGER}
    message = orjson.loads(request(port, {**THINKING, "messages": [ask]})[2])
    assert [block["type"] for block in message["content"]] == ["thinking", "redacted_thinking", "text"]
    history = [ask, {"role": "assistant", "content": message["content"]}, user(text("and?"))]
    assert request(port, {**THINKING, "messages": history})[0] == 200


def test_a_thinking_stream_sends_thinking_deltas_then_the_signature(port):
    status, _, raw = request(port, {**THINKING, "stream": True, "messages": [{"role": "user", "content": "a b"}]})
    events = [orjson.loads(data) for _, data in SSESplitter().feed(raw)]
    assert status == 200
    assert events[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert "".join(d.get("thinking", "") for d in deltas) == "Considering: a b"
    assert deltas[-1] == {"type": "signature_delta", "signature": emulator_module.sign("Considering: a b")}
    assert events[-2]["usage"]["output_tokens"] == 3 + 3


def test_validate_takes_thinking_without_max_tokens_for_count_tokens():
    body = {**THINKING, "max_tokens": 1}  # what count_tokens checks: its body has no max_tokens
    emulator_module.validate(body)
    with pytest.raises(emulator_module.Reject):
        emulator_module.validate_messages(body)


# --- prompt caching -------------------------------------------------------------------------------------------

def cached_body(marker, words=1100, ttl=None, tail="summarise"):
    cache = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    document = " ".join([marker] * words)
    return {**BASIC, "system": [text(document, cache_control=cache)], "messages": [{"role": "user", "content": tail}]}


def test_a_breakpoint_prefix_is_written_then_read(port):
    first = orjson.loads(request(port, cached_body("alpha"))[2])["usage"]
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"], first["input_tokens"]) == (1100, 0, 1)
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": 1100, "ephemeral_1h_input_tokens": 0}
    second = orjson.loads(request(port, cached_body("alpha", tail="summarise it again please"))[2])["usage"]
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"], second["input_tokens"]) == (0, 1100, 4)
    other_model = orjson.loads(request(port, {**cached_body("alpha"), "model": "claude-opus-4-1"})[2])["usage"]
    assert other_model["cache_read_input_tokens"] == 0  # caches are per model


def test_a_prefix_below_the_minimum_is_not_cached(port):
    for _ in range(2):
        usage = orjson.loads(request(port, cached_body("beta", words=100))[2])["usage"]
        assert (usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"], usage["input_tokens"]) == (0, 0, 101)


def test_a_later_breakpoint_writes_what_follows_the_cached_one(port):
    body = cached_body("gamma", ttl="1h")
    request(port, body)
    body["messages"] = [user(text(" ".join(["delta"] * 50)), text("question", cache_control=EPHEMERAL))]
    usage = orjson.loads(request(port, body)[2])["usage"]
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"], usage["input_tokens"]) == (1100, 51, 1)
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 51, "ephemeral_1h_input_tokens": 0}


def test_stream_usage_carries_the_cache_counts(port):
    request(port, cached_body("epsilon"))
    _, _, raw = request(port, {**cached_body("epsilon"), "stream": True})
    events = [orjson.loads(data) for _, data in SSESplitter().feed(raw)]
    assert events[0]["message"]["usage"]["cache_read_input_tokens"] == 1100
    assert events[-2]["usage"]["cache_read_input_tokens"] == 1100 and events[-2]["usage"]["input_tokens"] == 1


# --- the translator against the emulator ------------------------------------------------------------------------

def translated(port, openai_body):
    call = anthropic.build_request(openai_body, SONNET, "chat/completions", TranslateSettings(api_key=KEY))
    status, _, raw = request(port, call.body, {**HEADERS, **{k.decode(): v.decode() for k, v in call.headers}})
    assert status == 200, raw
    return orjson.loads(anthropic.translate_response(status, raw, "alias", "chat/completions")[1])


def test_reasoning_effort_round_trips_as_reasoning_content(port):
    completion = translated(port, {"messages": [{"role": "user", "content": "six times seven"}], "reasoning_effort": "low",
                                   "temperature": 0.3})  # fmt: skip
    message = completion["choices"][0]["message"]
    assert message["reasoning_content"] == "Considering: six times seven"
    assert message["content"] == "echo: six times seven"


def test_a_translated_tool_loop_with_reasoning_effort_is_accepted(port):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "call tool please"}]
    first = translated(port, {"messages": messages, "tools": tools, "reasoning_effort": "medium"})["choices"][0]["message"]
    assert first["reasoning_content"] and first["tool_calls"]
    messages += [first, {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "42"}]
    second = translated(port, {"messages": messages, "tools": tools, "reasoning_effort": "medium"})["choices"][0]["message"]
    assert second["content"] == "echo: 42" and "reasoning_content" not in second  # no thinking on that turn


def test_cache_control_round_trips_as_cached_tokens(port):
    document = " ".join(["zeta"] * 1500)
    body = {"messages": [{"role": "system", "content": [{"type": "text", "text": document, "cache_control": {"type": "ephemeral"}}]},
                         {"role": "user", "content": "summarise"}]}  # fmt: skip
    first = translated(port, body)["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 1500}
    second = translated(port, body)["usage"]
    assert second["prompt_tokens_details"] == {"cached_tokens": 1500, "cache_write_tokens": 0}
    assert second["prompt_tokens"] == first["prompt_tokens"] == 1501


def test_a_translated_thinking_stream_round_trips(port):
    chunks = translated_stream(port, {"stream": True, "reasoning_effort": "high", "messages": [{"role": "user", "content": "x y"}]})
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c.get("choices"))
    text_out = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert (reasoning, text_out) == ("Considering: x y", "echo: x y")
    assert chunks[-1]["usage"]["completion_tokens"] == 6


def test_request_log_records_path_headers_and_body(port):
    request(port, None, method="DELETE", path="/_emulator/requests")
    request(port, BASIC, {**HEADERS, "x-trace": "t1"})
    status, _, raw = request(port, None, method="GET", path="/_emulator/requests")
    [entry] = orjson.loads(raw)
    assert status == 200
    assert entry["path"] == "/v1/messages" and entry["body"] == BASIC
    assert entry["headers"]["x-api-key"] == KEY and entry["headers"]["x-trace"] == "t1"


@pytest.mark.parametrize(
    "body", [case[1] for case in REQUEST_CASES] + [JSON_SCHEMA_BODY], ids=[case[0] for case in REQUEST_CASES] + ["json_schema"]
)
def test_every_translated_request_is_one_anthropic_accepts(body):
    call = anthropic.build_request(body, "claude-sonnet-4-5", "chat/completions", TranslateSettings(api_key=KEY))
    emulator_module.validate_messages(orjson.loads(call.body))
