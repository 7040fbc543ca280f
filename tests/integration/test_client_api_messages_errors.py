"""Anthropic Messages clients when things go wrong, through the running gateway: the gateway's own
refusals (key, model) and the upstreams' errors reach the ``anthropic`` SDK in Anthropic's shape with
their status and ``retry-after``, for complete answers and streams; a stream that breaks off ends
with an ``error`` event the SDK raises; and the reliability machinery (retries, fallbacks both ways
between a native and a translated provider, a model whose deployments are of both kinds, finish
listeners) serves Messages calls as it serves chat completions.
"""

import gc
import socket

import anthropic
import httpx
import orjson
import pytest

from harness import in_process_gateway, post_and_read, start_emulator_process, start_mock_process, wait_until
from test_client_api_messages import MASTER_KEY, PROVIDER_KEY, ROUTES, start_stack

HI = [{"role": "user", "content": "hi"}]
RELIABILITY = """
"dead-*" = "dead"

[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "x"

[[models]]
name = "retried-gpt"
provider = "openai"
model = "gpt-4o-mini"
max_retries = 2

[[models]]
name = "claude-backup"
provider = "anthropic"
model = "claude-3-5-haiku-20241022"

[[models]]
name = "gpt-backup"
provider = "openai"
model = "gpt-4o-mini"

[[models]]
name = "gpt-then-claude"
provider = "openai"
model = "gpt-4o-mini"
fallbacks = ["claude-backup"]

[[models]]
name = "claude-then-gpt"
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
fallbacks = ["gpt-backup"]

[[models]]
name = "mixed"
strategy = "round-robin"
deployments = [
    { provider = "anthropic", model = "claude-3-5-haiku-20241022" },
    { provider = "openai", model = "gpt-4o-mini" },
]
"""
# route -> (the fault header that makes its upstream answer `status`, with retry-after where it sends one)
FAULTS = {"anthropic": "x-emulator-fault", "openai": "x-mock-fault", "gemini": "x-emulator-fault"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory, config_extra=RELIABILITY)
    yield stack
    stack["stop"]()


@pytest.fixture
def client(stack):
    for name in ("anthropic", "openai", "gemini"):
        stack[name].clear()
    return anthropic.Anthropic(base_url=stack["gateway"].base, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(params=list(ROUTES))
def route(request):
    return request.param


@pytest.fixture(params=[False, True], ids=["complete", "stream"])
def stream(request):
    return request.param


def ask(client, model, stream=False, **extra):
    """A Messages request as a complete answer, or a stream read to its end: the final message."""
    if not stream:
        return client.messages.create(model=model, max_tokens=20, messages=HI, **extra)
    with client.messages.stream(model=model, max_tokens=20, messages=HI, **extra) as events:
        return events.get_final_message()


# --- the gateway's own refusals --------------------------------------------------------------------


@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_a_wrong_key_is_401(stack, header):
    value = "wrong" if header == "x-api-key" else "Bearer wrong"
    answer = httpx.post(
        stack["gateway"].base + "/v1/messages",
        json={"model": ROUTES["openai"], "max_tokens": 5, "messages": HI},
        headers={header: value, "anthropic-version": "2023-06-01"},
    )
    assert answer.status_code == 401 and answer.headers["x-request-id"]
    assert answer.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided"},
    }
    assert stack["openai"].requests() == []


def test_a_missing_key_is_401_in_the_sdk(stack):
    client = anthropic.Anthropic(base_url=stack["gateway"].base, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.count_tokens(model=ROUTES["anthropic"], messages=HI)
    assert raised.value.body["error"]["type"] == "authentication_error"
    answer = httpx.post(stack["gateway"].base + "/v1/messages", json={"model": "gpt-4o-mini"})
    assert answer.status_code == 401 and "x-api-key" in answer.json()["error"]["message"]


def test_the_key_as_x_api_key_alone_passes(stack):
    answer = httpx.post(
        stack["gateway"].base + "/v1/messages?beta=true",
        json={"model": ROUTES["gemini"], "max_tokens": 5, "messages": HI},
        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
    )
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "echo: hi"


def test_an_unknown_model_is_404(stack, client, stream):
    with pytest.raises(anthropic.NotFoundError) as raised:
        ask(client, "no-such-model", stream)
    assert raised.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in raised.value.body["error"]["message"]
    assert all(stack[name].requests() == [] for name in ROUTES)


def test_a_wrong_method_is_405_with_allow(stack):
    answer = httpx.get(stack["gateway"].base + "/v1/messages", headers={"x-api-key": MASTER_KEY})
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_a_head_request_gets_the_head_alone(stack):
    with socket.create_connection(("127.0.0.1", stack["gateway"].port), timeout=5) as sock:
        sock.sendall(b"HEAD /v1/messages HTTP/1.1\r\nHost: g\r\nx-api-key: %s\r\n\r\n" % MASTER_KEY.encode())
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: g\r\n\r\n")  # the next answer follows at once
        data = b""
        while b'{"status":"ok"}' not in data:
            piece = sock.recv(65536)
            assert piece, data
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ") and b"allow: POST" in head and b"content-length: " in head
    assert rest.startswith(b"HTTP/1.1 200 ")  # no body came between the two heads


@pytest.mark.parametrize(
    "path", [b"/v1/messages?beta=true", b"/v1/messages/count_tokens", b"//v1/messages/", b"http://g/v1//messages"]
)
def test_a_body_over_the_limit_is_an_anthropic_413_with_its_request_id(stack, path):
    # The parser refuses it from its Content-Length, before any endpoint: it was OpenAI-shaped.
    with socket.create_connection(("127.0.0.1", stack["gateway"].port), timeout=5) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: g\r\ncontent-type: application/json\r\ncontent-length: 999999999\r\n\r\n" % path)
        data = b""
        while piece := sock.recv(65536):  # the gateway closes after the refusal
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), data
    assert orjson.loads(body) == {"type": "error", "error": {"type": "request_too_large", "message": "request body too large"}}
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"request-id"] == headers[b"x-request-id"] and headers[b"connection"] == b"close"


def test_a_body_over_the_limit_elsewhere_stays_openai_shaped(stack):
    with socket.create_connection(("127.0.0.1", stack["gateway"].port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\ncontent-length: 999999999\r\n\r\n")
        data = b""
        while piece := sock.recv(65536):
            data += piece
    assert data.startswith(b"HTTP/1.1 413 ")
    assert orjson.loads(data.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_too_large"


def test_an_unreachable_upstream_is_alloys_502(stack, client, stream):
    with pytest.raises(anthropic.InternalServerError) as raised:
        ask(client, "dead-model", stream)
    assert raised.value.status_code == 502 and raised.value.body["error"]["type"] == "api_error"
    assert raised.value.response.headers["x-alloy-provider"] == "dead"


def test_an_answer_alloy_cannot_translate_names_its_request_id_once(stack, client, stream):
    # The upstream's 200 is not JSON: Alloy's 502, written after the relay's head was read back.
    with pytest.raises(anthropic.InternalServerError) as raised:
        ask(client, ROUTES["openai"], stream, extra_headers={"x-mock-fault": "invalid-json"})
    headers = raised.value.response.headers
    assert raised.value.status_code == 502 and raised.value.body["error"]["type"] == "api_error"
    assert headers.get_list("request-id") == [headers["x-request-id"]] == [raised.value.request_id]


# --- the upstreams' errors ------------------------------------------------------------------------------


def test_rate_limited_is_429_with_retry_after(stack, client, route, stream):
    fault = "status=429;retry-after=1" if route == "openai" else "status=429"
    with pytest.raises(anthropic.RateLimitError) as raised:
        ask(client, ROUTES[route], stream, extra_headers={FAULTS[route]: fault})
    assert raised.value.body["type"] == "error" and raised.value.body["error"]["type"] == "rate_limit_error"
    if route != "gemini":  # Google sends no retry-after
        assert raised.value.response.headers["retry-after"] == "1"
    assert len(stack[route].requests()) == 1  # max_retries = 0: the upstream's answer as it came


@pytest.mark.parametrize("route, status", [("anthropic", 529), ("openai", 529), ("gemini", 503)])
def test_overloaded(stack, client, route, status, stream):
    with pytest.raises(anthropic.InternalServerError) as raised:
        ask(client, ROUTES[route], stream, extra_headers={FAULTS[route]: f"status={status}"})
    assert raised.value.status_code == status and raised.value.body["error"]["type"] == "overloaded_error"
    assert isinstance(raised.value, anthropic.OverloadedError if status == 529 else anthropic.ServiceUnavailableError)


@pytest.mark.parametrize(
    "route, fault, kind",
    [
        ("anthropic", "mid-stream-error", "overloaded_error"),
        ("gemini", "stream-error", None),
        ("openai", "reset-mid-stream", None),
    ],
)
def test_a_stream_that_breaks_off_raises_in_the_sdk(stack, client, route, fault, kind):
    with pytest.raises(anthropic.APIStatusError) as raised:
        ask(client, ROUTES[route], True, extra_headers={FAULTS[route]: fault})
    assert raised.value.body["type"] == "error"
    if kind is not None:
        assert raised.value.body["error"]["type"] == kind


# --- reliability ----------------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried(stack, client, stream):
    headers = {"x-mock-fault": "status=503", "x-mock-fail-times": "1", "x-mock-key": f"retry-{stream}"}
    raw = client.messages.with_raw_response.create(
        model="retried-gpt", max_tokens=20, messages=HI, stream=stream, extra_headers=headers
    )
    assert raw.headers["x-alloy-attempts"] == "2" and len(stack["openai"].requests()) == 2
    if not stream:
        assert raw.parse().content[0].text == "echo: hi"


def test_a_translated_model_falls_back_to_a_native_one(stack, client, stream):
    raw = client.messages.with_raw_response.create(
        model="gpt-then-claude", max_tokens=20, messages=HI, stream=stream, extra_headers={"x-mock-fault": "status=503"}
    )
    assert raw.headers["x-alloy-provider"] == "anthropic" and raw.headers["x-alloy-attempts"] == "2"
    text = (
        raw.parse().content[0].text
        if not stream
        else "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta")
    )
    assert text == "echo: hi"
    [native] = stack["anthropic"].requests()
    # The client's own body, the model spliced: the attempt before it was translated, this one is not.
    assert native["body"] == {"max_tokens": 20, "messages": HI, "model": "claude-3-5-haiku-20241022", "stream": stream}
    assert stack["openai"].requests()[0]["body"]["messages"] == HI  # the first attempt, translated


def test_a_native_model_falls_back_to_a_translated_one(stack, client, stream):
    message = ask(client, "claude-then-gpt", stream, extra_headers={"x-emulator-fault": "status=529"})
    assert message.content[0].text == "echo: hi" and message.model == "claude-then-gpt"
    assert len(stack["anthropic"].requests()) == 1
    assert stack["openai"].requests()[0]["body"]["model"] == "gpt-4o-mini"


def test_a_model_with_native_and_translated_deployments(stack, client):
    served = []
    for _ in range(2):
        raw = client.messages.with_raw_response.create(model="mixed", max_tokens=20, messages=HI)
        assert raw.parse().content[0].text == "echo: hi"
        served.append(raw.headers["x-alloy-provider"])
    assert sorted(served) == ["anthropic", "openai"]
    assert stack["anthropic"].requests()[0]["body"]["messages"] == HI
    assert stack["openai"].requests()[0]["path"] == "/v1/chat/completions"


# --- in the gateway's own process: the account stage, reference cycles -------------------------------


@pytest.fixture
def in_process(tmp_path):
    """A gateway running in this process (its real Gateway on a loop in a thread) in front of the
    mock and the Anthropic emulator: (its address, its pipeline)."""
    mock = start_mock_process("--api-key", PROVIDER_KEY)
    emulator = start_emulator_process("anthropic", "--api-key", PROVIDER_KEY)
    path = tmp_path / "alloy.toml"
    path.write_text(
        f"[router]\nbackoff_base = 0.001\nbackoff_max = 0.002\n\n"
        f'[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "{PROVIDER_KEY}"\n\n'
        f'[providers.anthropic]\nbase_url = "{emulator.base}"\napi_key = "{PROVIDER_KEY}"\n\n'
        f'[wildcards]\n"gpt-*" = "openai"\n'
    )
    try:
        with in_process_gateway(path) as (port, gateway):
            yield port, gateway.pipeline
    finally:
        mock.stop()
        emulator.stop()


def exchange(sock, path, body, extra=b""):
    """One request on a keep-alive socket; the answer's head once the whole answer arrived."""
    return post_and_read(sock, path, body, extra)[0]


def messages(model, stream=False):
    return orjson.dumps({"model": model, "max_tokens": 9, "messages": HI, "stream": stream})


def test_finish_listeners_see_each_messages_call_once(in_process):
    port, pipeline = in_process
    calls = []
    pipeline.listeners.append(lambda call: calls.append((call.path, call.endpoint, call.status, call.usage)))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for stream in (False, True):
            assert exchange(sock, b"/v1/messages", messages("gpt-4o-mini", stream)).startswith(b"HTTP/1.1 200 ")
    finally:
        sock.close()
    assert wait_until(lambda: len(calls) == 2)  # listeners run just after the answer's last write
    assert [c[:3] for c in calls] == [(b"/v1/messages", "chat/completions", 200)] * 2
    assert all(c[3]["completion_tokens"] > 0 for c in calls)  # usage read from the relayed answer


def test_messages_calls_leave_no_reference_cycles(in_process):
    port, _ = in_process
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    kinds = [
        (b"/v1/messages", messages("gpt-4o-mini"), b""),  # translated
        (b"/v1/messages", messages("gpt-4o-mini", True), b""),  # translated stream
        (b"/v1/messages", messages("claude-3-5-haiku-20241022", True), b""),  # native stream
        (b"/v1/messages", messages("gpt-4o-mini"), b"x-mock-fault: status=503\r\n"),  # retried, then the last
        (b"/v1/messages/count_tokens", messages("gpt-4o-mini"), b""),  # the estimate
        (b"/v1/messages", messages("no-such-model"), b""),  # refused before a call exists
    ]
    try:
        for path, body, extra in kinds * 5:  # warm every path first
            exchange(sock, path, body, extra)
        gc.collect()
        gc.disable()
        try:
            tracked_before = len(gc.get_objects())
            for path, body, extra in kinds * 30:
                head = exchange(sock, path, body, extra)
                assert head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 503 ", b"HTTP/1.1 404 ")), head
            garbage = gc.collect()
            tracked_after = len(gc.get_objects())
        finally:
            gc.enable()
    finally:
        sock.close()
    assert garbage == 0, f"{garbage} objects were only freed by the cyclic collector"
    assert tracked_after - tracked_before < 20, f"{tracked_after - tracked_before} tracked objects survived"
