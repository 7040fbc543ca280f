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
    emulator_module.validate(orjson.loads(call.body))
