"""The mock upstream as its users see it: a real ``python -m alloy.mock_upstream`` process, driven by
the official ``openai`` SDK (the strict-emulator contract) and by raw sockets (the HTTP contract).
"""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import h11
import httpx
import openai
import pytest

from alloy.mock_upstream import MockOptions, start_mock_upstream

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTENING = re.compile(r"^alloy mock-upstream listening on http://127\.0\.0\.1:(\d+)$")
KEY = "sk-mock-test"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
SEARCH_TOOL = {
    "type": "function",
    "function": {"name": "search", "description": "Search", "parameters": {"type": "object", "properties": {}}},
}


class MockProcess:
    """``python -m alloy.mock_upstream`` on a free port; stopped by PID."""

    def __init__(self, *args):
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "alloy.mock_upstream", "--port", "0", *args],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines, self.port, ready = [], None, threading.Event()

        def read():
            for line in self.popen.stderr:
                self.lines.append(line)
                match = LISTENING.match(line.rstrip("\n"))
                if match and self.port is None:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(20) or self.port is None:
            self.stop()
            raise RuntimeError("the mock did not start:\n" + "".join(self.lines))
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self, api_key=KEY, **options):
        options = {"max_retries": 0, "timeout": 10, **options}
        return openai.OpenAI(base_url=self.base + "/v1", api_key=api_key, **options)

    def requests(self):
        with urllib.request.urlopen(self.base + "/_mock/requests", timeout=5) as response:
            return json.load(response)["requests"]

    def stop(self):
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


@pytest.fixture
def start_upstream():
    started = []

    def start(*args):
        started.append(MockProcess(*args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def shared_upstream():
    process = MockProcess("--api-key", KEY)
    yield process
    process.stop()


@pytest.fixture
def upstream(shared_upstream):
    """The strict mock (expects ``KEY``), shared by the module's tests, with an empty request log."""
    assert shared_upstream.popen.poll() is None, "the mock exited:\n" + "".join(shared_upstream.lines)
    httpx.delete(shared_upstream.base + "/_mock/requests").raise_for_status()
    return shared_upstream


def user(text):
    return [{"role": "user", "content": text}]


def exchange(port, data, timeout=5.0):
    """Send raw bytes, read until the server closes; returns (status, headers, body) per response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return parse_responses(received)


def parse_responses(data):
    """Responses as (status, headers, body) parsed by h11, an independent oracle."""
    responses = []
    while data:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        status, headers, body = None, None, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status, headers = event.status_code, {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif event is h11.NEED_DATA:
                raise AssertionError(f"incomplete response: {data!r}")
        responses.append((status, headers, body))
        data = conn.trailing_data[0]
    return responses


def chat_request(text, extra=b"", connection=b""):
    body = json.dumps({"model": "gpt-4o-mini", "messages": user(text)}).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n%s" % (len(body), extra, connection, body)
    )


# --- chat completions with the SDK ------------------------------------------------------------------


def test_chat_completion_echoes_the_last_user_message(upstream):
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    completion = upstream.client().chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert completion.id.startswith("chatcmpl-mock-")
    assert completion.object == "chat.completion" and completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: second question"
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 8  # words of every message
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 11


def test_n_choices_and_max_tokens_truncation(upstream):
    completion = upstream.client().chat.completions.create(
        model="gpt-4o-mini", messages=user("one two three four five"), n=2, max_completion_tokens=3
    )
    assert [c.index for c in completion.choices] == [0, 1]
    for choice in completion.choices:
        assert choice.message.content == "echo: one two"
        assert choice.finish_reason == "length"


def test_chat_stream_deltas_join_to_the_content(upstream):
    text = "stream  these words, spaces kept "
    chunks = list(
        upstream.client().chat.completions.create(
            model="gpt-4o-mini", messages=user(text), stream=True, stream_options={"include_usage": True}
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == ""
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["echo: ", "stream  ", "these ", "words, ", "spaces ", "kept "]
    assert "".join(contents) == "echo: " + text
    with_choices = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(contents)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_is_chunked_event_stream_ending_with_done(upstream):
    body = {"model": "m", "messages": user("hi"), "stream": True}
    with httpx.stream("POST", upstream.base + "/v1/chat/completions", json=body, headers=AUTH) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked"
        text = r.read().decode()
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_tool_call_non_stream_and_stream_accumulation(upstream):
    client = upstream.client()
    completion = client.chat.completions.create(model="m", messages=user("please call tool"), tools=[SEARCH_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_mock_1", "function", "search")
    assert json.loads(call.function.arguments) == {"query": "please call tool"}

    calls, finish = {}, None
    messages = user("call tool while streaming")
    stream = client.chat.completions.create(model="m", messages=messages, tools=[SEARCH_TOOL], stream=True)
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": "", "pieces": 0})
            entry["id"] = delta.id or entry["id"]
            entry["name"] += (delta.function and delta.function.name) or ""
            entry["arguments"] += (delta.function and delta.function.arguments) or ""
            entry["pieces"] += 1
    assert finish == "tool_calls"
    assert list(calls) == [0] and calls[0]["id"] == "call_mock_1" and calls[0]["name"] == "search"
    assert json.loads(calls[0]["arguments"]) == {"query": "call tool while streaming"}
    assert calls[0]["pieces"] > 2, "arguments should arrive in fragments"

    # Without "call tool" the tools are ignored; the tool result turn is accepted.
    messages = user("call tool now") + [
        completion.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_mock_1", "content": "42"},
        {"role": "user", "content": "thanks"},
    ]
    after = client.chat.completions.create(model="m", messages=messages, tools=[SEARCH_TOOL])
    assert after.choices[0].message.content == "echo: thanks" and after.choices[0].finish_reason == "stop"


def test_tool_choice_forces_or_suppresses_the_call(upstream):
    def create(text, tools, choice):
        chat = upstream.client().chat.completions
        return chat.create(model="m", messages=user(text), tools=tools, tool_choice=choice)

    other = {"type": "function", "function": {"name": "other"}}
    forced = create("hi", [SEARCH_TOOL, other], {"type": "function", "function": {"name": "other"}})
    assert forced.choices[0].message.tool_calls[0].function.name == "other"
    assert create("hi", [SEARCH_TOOL], "required").choices[0].finish_reason == "tool_calls"
    assert create("call tool", [SEARCH_TOOL], "none").choices[0].message.content == "echo: call tool"
    client = upstream.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=user("hi"), tool_choice="required")
    assert caught.value.body["param"] == "tool_choice"


# --- completions, embeddings, models ---------------------------------------------------------------


def test_legacy_completions(upstream):
    completion = upstream.client().completions.create(model="gpt-3.5-turbo-instruct", prompt=["alpha beta", "gamma"])
    assert completion.object == "text_completion"
    assert [(c.index, c.text) for c in completion.choices] == [(0, "echo: alpha beta"), (1, "echo: gamma")]
    assert completion.usage.prompt_tokens == 3 and completion.usage.completion_tokens == 5


def test_legacy_completions_stream(upstream):
    chunks = list(
        upstream.client().completions.create(
            model="m", prompt="one two three", stream=True, max_tokens=3, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: one two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 3


def test_embeddings_float_and_sdk_default_base64(upstream):
    client = upstream.client()
    floats = client.embeddings.create(model="text-embedding-3-small", input="embed me", encoding_format="float")
    default = client.embeddings.create(model="text-embedding-3-small", input="embed me")  # the SDK asks for base64
    vector = floats.data[0].embedding
    assert len(vector) == 8 and all(isinstance(x, float) for x in vector)
    assert default.data[0].embedding == vector  # float32 values: base64 round-trips exactly
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-5
    assert floats.usage.prompt_tokens == 2

    batch = client.embeddings.create(model="m", input=["embed me", "other"], encoding_format="float")
    assert [d.index for d in batch.data] == [0, 1]
    assert batch.data[0].embedding == vector and batch.data[1].embedding != vector

    [received_float, received_default, _] = upstream.requests()
    assert received_float["body"]["encoding_format"] == "float"
    assert received_default["body"]["encoding_format"] == "base64"
    raw = httpx.post(
        upstream.base + "/v1/embeddings", json={"model": "m", "input": "embed me", "encoding_format": "base64"},
        headers=AUTH,
    ).json()  # fmt: skip
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == vector  # little-endian float32, as OpenAI sends


def test_models_list_and_retrieve(upstream):
    client = upstream.client()
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.body["code"] == "model_not_found"


# --- strictness -------------------------------------------------------------------------------------


def test_wrong_or_missing_key_is_401(upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        upstream.client(api_key="sk-wrong").chat.completions.create(model="m", messages=user("x"))
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["code"] == "invalid_api_key"
    assert "sk-wrong" not in caught.value.body["message"]
    for headers in ({}, {"authorization": "Bearer"}, {"authorization": f"Basic {KEY}"}):
        response = httpx.post(upstream.base + "/v1/chat/completions", json=CHAT, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_without_api_key_any_bearer_token_is_accepted(start_upstream):
    open_mock = start_upstream()
    assert open_mock.client(api_key="anything").chat.completions.create(model="m", messages=user("in")).choices
    response = httpx.get(open_mock.base + "/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": "not a list"}, "messages"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"messages": user("x")}, "model"),
        ({"model": 7, "messages": user("x")}, "model"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"model": "m", "messages": user("x"), "temperature": 3}, "temperature"),
        ({"model": "m", "messages": user("x"), "max_tokens": "5"}, "max_tokens"),
        ({"model": "m", "messages": user("x"), "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "m", "messages": user("x"), "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": "m", "messages": user("x"), "gateway_internal": 1}, "gateway_internal"),
    ],
)
def test_invalid_chat_request_is_400_naming_the_param(upstream, body, param):
    response = httpx.post(upstream.base + "/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_invalid_request_through_the_sdk(upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        upstream.client().chat.completions.create(model="m", messages=[{"role": "wizard", "content": "x"}])
    assert caught.value.body["param"] == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as caught:
        upstream.client().embeddings.create(model="m", input="")
    assert caught.value.body["param"] == "input"


def test_not_json_unknown_path_and_wrong_method(upstream):
    response = httpx.post(upstream.base + "/v1/chat/completions", content=b"{nope", headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(upstream.base + "/v1/chat/completions", content=b"[1]", headers=AUTH)
    assert response.status_code == 400
    response = httpx.get(upstream.base + "/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404 and "/v1/nothing-here" in response.json()["error"]["message"]
    response = httpx.get(upstream.base + "/v1/chat/completions", headers=AUTH)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# --- the request log -------------------------------------------------------------------------------


def test_request_log_records_method_path_headers_and_decoded_body(upstream):
    client = upstream.client(default_headers={"X-Trace": "t-1"})
    client.chat.completions.create(model="gpt-4o-mini", messages=user("logged"))
    client.models.list()
    httpx.post(upstream.base + "/v1/embeddings?x=1", content=b"not json", headers=AUTH)
    chat, models, bad = upstream.requests()  # oldest first; the hooks themselves are not logged
    assert (chat["method"], chat["path"]) == ("POST", "/v1/chat/completions")
    assert chat["headers"]["authorization"] == f"Bearer {KEY}" and chat["headers"]["x-trace"] == "t-1"
    assert all(name == name.lower() for name in chat["headers"])
    assert chat["body"] == {"model": "gpt-4o-mini", "messages": user("logged")}
    assert (models["method"], models["path"], models["body"]) == ("GET", "/v1/models", "")
    assert (bad["path"], bad["body"]) == ("/v1/embeddings?x=1", "not json")

    assert httpx.delete(upstream.base + "/_mock/requests").status_code == 200
    assert upstream.requests() == []


def test_request_log_keeps_the_last_thousand(upstream):
    with httpx.Client(base_url=upstream.base, headers=AUTH) as client:
        for i in range(1005):
            client.get(f"/v1/models/gpt-4o?i={i}")
    log = upstream.requests()
    assert len(log) == 1000 and log[0]["path"].endswith("i=5") and log[-1]["path"].endswith("i=1004")


# --- fault injection -----------------------------------------------------------------------------


def test_fail_times_then_success_seen_through_sdk_retries(upstream):
    client = upstream.client(max_retries=3)
    headers = {"x-mock-fault": "status=503", "x-mock-fail-times": "2", "x-mock-key": "retry-test"}
    completion = client.chat.completions.create(model="m", messages=user("again"), extra_headers=headers)
    assert completion.choices[0].message.content == "echo: again"
    assert len(upstream.requests()) == 3  # two injected 503s, then the answer


def test_status_fault_with_retry_after(upstream):
    with pytest.raises(openai.RateLimitError) as caught:
        upstream.client().chat.completions.create(
            model="m", messages=user("x"), extra_headers={"x-mock-fault": "status=429;retry-after=7"}
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("fault", ["reset", "garbage"])
def test_reset_and_garbage_fail_the_request(upstream, fault):
    with pytest.raises(openai.APIConnectionError):
        upstream.client().chat.completions.create(model="m", messages=user("x"), extra_headers={"x-mock-fault": fault})
    assert upstream.client().chat.completions.create(model="m", messages=user("still up")).choices


def test_reset_mid_stream_cuts_the_stream(upstream):
    received = []
    with pytest.raises(openai.APIError):
        stream = upstream.client().chat.completions.create(
            model="m", messages=user("a long enough answer to be cut"), stream=True,
            extra_headers={"x-mock-fault": "reset-mid-stream"},
        )  # fmt: skip
        received.extend(c.choices[0] for c in stream)
    assert received, "some chunks should arrive before the cut"
    assert not any(choice.finish_reason for choice in received)


def test_hang_and_slow_first_byte(upstream):
    with pytest.raises(openai.APITimeoutError):
        upstream.client(timeout=1).chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "hang"})
    assert len(upstream.requests()) == 1, "a hung request is still logged"
    started = time.monotonic()
    slow = upstream.client().chat.completions.create(
        model="m", messages=user("late"), extra_headers={"x-mock-fault": "slow-first-byte=300"}
    )
    assert slow.choices[0].message.content == "echo: late" and time.monotonic() - started >= 0.3


def test_unknown_fault_is_400(upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        upstream.client().models.list(extra_headers={"x-mock-fault": "explode"})
    assert caught.value.body["param"] == "x-mock-fault"


def faulted(upstream, fault, body=CHAT):
    """POST a chat request with ``x-mock-fault: fault``."""
    return httpx.post(upstream.base + "/v1/chat/completions", json=body, headers={**AUTH, "x-mock-fault": fault})


def test_retry_after_headers_ride_on_any_answer(upstream):
    response = httpx.post(
        upstream.base + "/v1/chat/completions", json=CHAT,
        headers={**AUTH, "x-mock-fault": "status=429;retry-after-ms=1500;retry-after=2"},
    )  # fmt: skip
    assert response.status_code == 429
    assert response.headers["retry-after-ms"] == "1500" and response.headers["retry-after"] == "2"
    ok = faulted(upstream, "retry-after-ms=5")
    assert ok.status_code == 200 and ok.headers["retry-after-ms"] == "5"
    assert ok.json()["choices"][0]["message"]["content"] == "echo: x"
    date = "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's example HTTP date
    assert faulted(upstream, f"status=503;retry-after={date}").headers["retry-after"] == date
    assert faulted(upstream, "status=503;retry-after=soon").status_code == 400


def test_drip_paces_each_stream_event(upstream):
    body = {"model": "m", "messages": user("one two three"), "stream": True}
    arrivals, started = [], time.monotonic()
    headers = {**AUTH, "x-mock-fault": "drip=150"}
    with httpx.stream("POST", upstream.base + "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - started, line))
    assert arrivals[-1][1] == "data: [DONE]"
    assert arrivals[0][0] < 0.14, "the first event is not delayed"
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    assert len(gaps) == 6 and all(gap >= 0.13 for gap in gaps), gaps
    # Per request: the next stream on the same server is not paced.
    started = time.monotonic()
    assert list(upstream.client().chat.completions.create(model="m", messages=user("fast"), stream=True))
    assert time.monotonic() - started < 0.5


def test_drip_sends_a_json_body_in_two_halves(upstream):
    wire = chat_request("halves", extra=b"x-mock-fault: drip=400\r\n", connection=b"Connection: close\r\n")
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(wire)
        first = sock.recv(65536)
        started = time.monotonic()
        received = first
        while chunk := sock.recv(65536):
            received += chunk
        waited = time.monotonic() - started
    assert first.startswith(b"HTTP/1.1 200 ") and first != received, "the head and part of the body come first"
    assert waited >= 0.35
    [(status, _, data)] = parse_responses(received)
    assert json.loads(data)["choices"][0]["message"]["content"] == "echo: halves"


def test_invalid_json_is_200_with_a_body_that_does_not_parse(upstream):
    response = faulted(upstream, "invalid-json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.content.startswith(b"{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


@pytest.mark.parametrize("size", [0, 17, 5_000_000])
def test_huge_is_a_valid_completion_with_that_much_content(upstream, size):
    body = {"model": "gpt-4o", "messages": user("big")}
    response = faulted(upstream, f"huge={size}", body)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) > size
    completion = response.json()
    assert completion["object"] == "chat.completion" and completion["model"] == "gpt-4o"
    content = completion["choices"][0]["message"]["content"]
    assert len(content.encode()) == size and content == ("0123456789" * (size // 10 + 1))[:size]
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_huge_is_capped_at_64_mb(upstream):
    cap = 64 * 1024 * 1024
    response = faulted(upstream, f"huge={cap + 1}")
    assert response.status_code == 400 and response.json()["error"]["param"] == "x-mock-fault"


def test_context_length_and_content_policy_are_openai_400s(upstream):
    client = upstream.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "context-length"})
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] == "messages" and caught.value.code == "context_length_exceeded"
    assert "context length" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "content-policy"})
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.code == "content_policy_violation"
    assert len(upstream.requests()) == 2


@pytest.mark.parametrize(
    "spec",
    [
        "status=503;status=500", "status=503;context-length", "content-policy;huge=10", "huge=10;invalid-json",
        "reset;hang", "drip=0", "drip=x", "retry-after-ms=1.5", "huge=-1", "invalid-json=1", "context-length=1",
    ],
)
def test_contradicting_or_malformed_fault_items_are_400(upstream, spec):
    response = faulted(upstream, spec)
    assert response.status_code == 400, spec
    assert response.json()["error"]["param"] == "x-mock-fault"


def test_server_wide_fault_applies_to_requests_without_their_own(start_upstream):
    broken = start_upstream("--fault", "status=503;retry-after=3")
    client = broken.client(api_key="k")
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(**CHAT)
        assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.InternalServerError):
        client.models.list()
    # A request's own x-mock-fault replaces the server-wide one.
    assert client.chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "slow-first-byte=0"}).choices
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "status=429"})
    assert len(broken.requests()) == 6  # the test hook is neither faulted nor logged


def test_server_wide_fault_with_fail_times(start_upstream):
    flaky = start_upstream("--fault", "reset", "--fail-times", "2")
    client = flaky.client(api_key="k")
    assert client.chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "slow-first-byte=0"}).choices
    for _ in range(2):  # the request above had its own fault: it did not use up one of the two
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(**CHAT)
    for _ in range(3):
        assert client.chat.completions.create(**CHAT).choices[0].message.content == "echo: x"
    assert len(flaky.requests()) == 6


@pytest.mark.parametrize(
    "args",
    [
        ["--fault", "explode"], ["--fault", "status=200"], ["--fail-times", "2"],
        ["--fault", "reset", "--fail-times", "-1"],
    ],  # fmt: skip
)
def test_bad_server_wide_fault_is_a_usage_error(args):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "alloy.mock_upstream", "--port", "0", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 2 and "usage:" in result.stderr and "listening" not in result.stderr


# --- HTTP on raw sockets ----------------------------------------------------------------------------


def test_keep_alive_pipelining_answers_in_order(upstream):
    wire = (
        chat_request("one")
        + chat_request("two", extra=b"x-mock-fault: slow-first-byte=200\r\n")  # later ones wait for it
        + chat_request("three", connection=b"Connection: close\r\n")
    )
    responses = exchange(upstream.port, wire)
    assert [json.loads(body)["choices"][0]["message"]["content"] for _, _, body in responses] == [
        "echo: one", "echo: two", "echo: three",
    ]  # fmt: skip
    assert responses[-1][1]["connection"] == "close"


def test_chunked_request_body_and_expect_continue(upstream):
    body = json.dumps({"model": "m", "messages": user("chunked body")}).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    wire = head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked
    [(status, _, data)] = exchange(upstream.port, wire)
    assert status == 200 and json.loads(data)["choices"][0]["message"]["content"] == "echo: chunked body"

    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert json.loads(parse_responses(received)[0][2])["choices"][0]["message"]["content"] == "echo: chunked body"


def test_protocol_error_answers_its_status_and_closes(upstream):
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(chat_request("before"))
        received = sock.recv(65536)
        # RFC 9112 section 6.1: Content-Length with Transfer-Encoding is a smuggling vector.
        sock.sendall(b"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
        while chunk := sock.recv(65536):
            received += chunk
    first, second = parse_responses(received)
    assert json.loads(first[2])["choices"][0]["message"]["content"] == "echo: before"
    assert second[0] == 400 and second[1]["connection"] == "close"
    assert set(json.loads(second[2])["error"]) == {"message", "type", "param", "code"}


# --- options, in-process use and shutdown -------------------------------------------------------


def test_latency_and_tokens_per_second(start_upstream):
    slow = start_upstream("--latency-ms", "200", "--tokens-per-second", "20")
    started = time.monotonic()
    stream = slow.client(api_key="k").chat.completions.create(model="m", messages=user("a b c d"), stream=True)
    arrivals = [time.monotonic() - started for _ in stream]
    assert arrivals[0] >= 0.2, "latency comes before the first byte"
    assert arrivals[-1] - arrivals[0] >= 0.25, "chunks are paced at 20 a second"


def test_in_process_server_on_port_zero():
    async def run():
        server = await start_mock_upstream("127.0.0.1", 0, MockOptions(record=False))
        port = server.sockets[0].getsockname()[1]
        try:
            async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0) as client:
                results = await asyncio.gather(
                    *(client.chat.completions.create(model="m", messages=user(f"parallel {i}")) for i in range(5))
                )
            async with httpx.AsyncClient() as http:
                log = (await http.get(f"http://127.0.0.1:{port}/_mock/requests")).json()
        finally:
            server.close()
        return [r.choices[0].message.content for r in results], log

    contents, log = asyncio.run(run())
    assert contents == [f"echo: parallel {i}" for i in range(5)]
    assert log == {"requests": []}  # record=False keeps no log


def test_sigterm_exits_zero_with_one_listening_line(start_upstream):
    mock = start_upstream()
    with socket.create_connection(("127.0.0.1", mock.port)) as idle:  # an open connection does not delay exit
        idle.sendall(chat_request("hang", extra=b"x-mock-fault: hang\r\n").replace(KEY.encode(), b"k"))
        time.sleep(0.2)
        os.kill(mock.popen.pid, signal.SIGTERM)
        assert mock.popen.wait(10) == 0
    listening = f"alloy mock-upstream listening on http://127.0.0.1:{mock.port}\n"
    assert [line for line in mock.lines if line.strip()] == [listening]
