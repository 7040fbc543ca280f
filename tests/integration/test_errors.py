"""Errors as a client sees them: an OpenAI-shaped JSON body and the right status, whether the
gateway refused the request itself or the upstream failed; and the gateway survives every fault.
"""

import asyncio
import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process

PROVIDER_KEY = "sk-provider"
MASTER_KEY = "mk-alloy-master-7f3e9c"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
BACKENDS = ["core", "httpx"]


# --- helpers --------------------------------------------------------------------------------------


def request(base, method, path, body=None, headers=None, timeout=30.0):
    """One HTTP request; returns (status, lower-case headers, raw body bytes)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = dict(headers or {})
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


def openai_error(data):
    """The parsed body, checked to be an OpenAI error object: {"error": {message, type, param, code}}."""
    payload = json.loads(data)
    assert isinstance(payload, dict) and set(payload) >= {"error"}, payload
    error = payload["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return error


def healthy(gateway):
    status, _, data = request(gateway.base, "GET", "/health", timeout=10)
    return status == 200 and json.loads(data) == {"status": "ok"}


def assert_still_serving(gateway):
    assert gateway.popen.poll() is None, "the gateway exited:\n" + gateway.stderr
    assert healthy(gateway), gateway.stderr
    assert "Traceback" not in gateway.stderr, gateway.stderr


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def provider_config(base_url, client="core", extra=""):
    return f"""
    [providers.openai]
    kind = "openai"
    base_url = "{base_url}"
    api_key = "env:TEST_PROVIDER_KEY"
    client = "{client}"
    {extra}
    """


def sdk(gateway, api_key="client-key", timeout=30.0):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=api_key, max_retries=0, timeout=timeout)


def start_shared_gateway(directory, config, env):
    """A gateway shared by the module (with ``shared_mock``): one that survives every fault below
    is also the stronger check."""
    return start_gateway_process(directory / "alloy.toml", config, env)


@pytest.fixture(scope="module")
def core_gateway(shared_mock, tmp_path_factory):
    gateway = start_shared_gateway(
        tmp_path_factory.mktemp("core"), provider_config(shared_mock.base + "/v1"), {"TEST_PROVIDER_KEY": PROVIDER_KEY}
    )
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.fixture(scope="module", params=BACKENDS)
def faulty_gateway(request, shared_mock, tmp_path_factory):
    """A gateway in front of the mock with ``read_timeout = 2``, once per upstream backend."""
    gateway = start_shared_gateway(
        tmp_path_factory.mktemp(request.param),
        provider_config(shared_mock.base + "/v1", request.param, "read_timeout = 2"),
        {"TEST_PROVIDER_KEY": PROVIDER_KEY},
    )
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


# --- requests the gateway refuses itself ------------------------------------------------------------


def test_invalid_json_is_400(core_gateway, upstream):
    status, headers, data = request(core_gateway.base, "POST", "/v1/chat/completions", b'{"model": "gpt-4o-mini",')
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    error = openai_error(data)
    assert error["type"] == "invalid_request_error"
    assert upstream.requests() == []
    assert_still_serving(core_gateway)


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"a string"', b"42", b"null"])
def test_body_that_is_not_an_object_is_400(core_gateway, upstream, body):
    status, _, data = request(core_gateway.base, "POST", "/v1/chat/completions", body)
    assert status == 400
    assert openai_error(data)["type"] == "invalid_request_error"
    assert upstream.requests() == []


def test_missing_model_is_400_with_param_model(core_gateway, upstream):
    client = sdk(core_gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=openai.omit, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 400
    status, _, data = request(core_gateway.base, "POST", "/v1/chat/completions", {"messages": []})
    assert status == 400
    error = openai_error(data)
    assert error["param"] == "model"
    assert error["type"] == "invalid_request_error"
    assert upstream.requests() == []


@pytest.mark.parametrize("model", [5, None, ["gpt-4o"], {"name": "gpt-4o"}, True, ""])
def test_model_that_is_not_a_model_name_is_400(core_gateway, upstream, model):
    status, _, data = request(
        core_gateway.base, "POST", "/v1/chat/completions", {"model": model, "messages": CHAT["messages"]}
    )
    assert status == 400
    error = openai_error(data)
    assert error["param"] == "model"
    assert upstream.requests() == []


def test_missing_model_on_embeddings_and_completions(core_gateway):
    for path, body in (("/v1/embeddings", {"input": "x"}), ("/v1/completions", {"prompt": "x"})):
        status, _, data = request(core_gateway.base, "POST", path, body)
        assert status == 400, path
        assert openai_error(data)["param"] == "model"


def test_get_on_chat_completions_is_405(core_gateway, upstream):
    status, _, data = request(core_gateway.base, "GET", "/v1/chat/completions")
    assert status == 405
    error = openai_error(data)
    assert error["type"] == "invalid_request_error"
    assert upstream.requests() == []


def test_405_names_the_allowed_method(core_gateway):
    """RFC 9110 section 15.5.6: a 405 response MUST carry an Allow header listing what is allowed."""
    status, headers, _ = request(core_gateway.base, "GET", "/v1/chat/completions")
    assert status == 405
    assert "allow" in headers, f"405 without an Allow header: {headers}"
    assert "POST" in headers["allow"]


@pytest.mark.parametrize("method, path", [("BREW", "/health"), ("get", "/health"), ("PROPFIND", "/v1/files")])
def test_a_method_the_server_does_not_know_is_501(core_gateway, upstream, method, path):
    # RFC 9110 section 9.1 (methods are case-sensitive: "get" is not GET); the connection goes on.
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(core_gateway.base).port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        assert response.status == 501
        assert openai_error(response.read())["code"] == "not_implemented"
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert upstream.requests() == []


def test_unknown_path_outside_v1_is_404(core_gateway, upstream):
    for method, path in (("GET", "/nope"), ("POST", "/chat/completions"), ("GET", "/")):
        status, _, data = request(core_gateway.base, method, path, b"{}" if method == "POST" else None)
        assert status == 404, (method, path)
        openai_error(data)
    assert upstream.requests() == []


def test_error_then_success_on_the_same_connection(core_gateway):
    """A refused request must not poison a keep-alive connection."""
    parts = urlsplit(core_gateway.base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", "/v1/chat/completions", body=b"{nope", headers={"Content-Type": "application/json"})
        first = connection.getresponse()
        first.read()
        assert first.status == 400
        connection.request("POST", "/v1/chat/completions", body=json.dumps(CHAT), headers={"Content-Type": "application/json"})
        second = connection.getresponse()
        assert second.status == 200
        assert json.loads(second.read())["choices"][0]["message"]["content"] == "echo: hello"
    finally:
        connection.close()


# --- the master key ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_gateway(shared_mock, tmp_path_factory):
    gateway = start_shared_gateway(
        tmp_path_factory.mktemp("locked"),
        provider_config(shared_mock.base + "/v1"),
        {"TEST_PROVIDER_KEY": PROVIDER_KEY, "ALLOY_MASTER_KEY": MASTER_KEY},
    )
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


def test_master_key_required(locked_gateway, upstream):
    status, _, data = request(locked_gateway.base, "POST", "/v1/chat/completions", CHAT)
    assert status == 401
    error = openai_error(data)
    assert MASTER_KEY not in data.decode()

    status, _, data = request(
        locked_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"Authorization": "Bearer wrong-key"}
    )
    assert status == 401
    assert MASTER_KEY not in data.decode()
    assert openai_error(data)["code"] == error["code"]

    # A prefix of the right key is still wrong.
    status, _, _ = request(
        locked_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"Authorization": "Bearer " + MASTER_KEY[:-1]}
    )
    assert status == 401

    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(locked_gateway, api_key="not-the-master-key").models.list()
    assert caught.value.status_code == 401
    assert MASTER_KEY not in str(caught.value.body)
    assert upstream.requests() == [], "a refused request must never reach the upstream"
    # /health stays open for load balancers.
    assert healthy(locked_gateway)


def test_errors_answered_before_any_call_carry_a_request_id(locked_gateway):
    """A refused request (401, 404) and a malformed one (400, 413) name an x-request-id like every
    other answer: the client's when it sent one, else a new one, different each time."""
    base = locked_gateway.base
    status, headers, _ = request(base, "POST", "/v1/chat/completions", CHAT, headers={"x-request-id": "client-req-7"})
    assert (status, headers["x-request-id"]) == (401, "client-req-7")
    status, first, _ = request(base, "POST", "/v1/chat/completions", CHAT)
    status2, second, _ = request(base, "GET", "/nope", headers={"Authorization": "Bearer " + MASTER_KEY})
    assert (status, status2) == (401, 404)
    assert first["x-request-id"] and second["x-request-id"] and first["x-request-id"] != second["x-request-id"]
    parts = urlsplit(base)
    for raw, expected in (
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}", b"400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", b"413"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-request-id: client-req-8\r\nContent-Length: 999999999999\r\n\r\n", b"413"),
    ):
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(raw)
            answer = b""
            while b"\r\n\r\n" not in answer:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
        head = answer.split(b"\r\n\r\n")[0].lower()
        assert head.split(b" ")[1] == expected and b"\r\nx-request-id: " in head, answer
        if b"client-req-8" in raw:  # a refusal from a head that was read whole keeps the client's id
            assert b"\r\nx-request-id: client-req-8\r\n" in head, answer


def test_master_key_bearer_scheme_is_case_insensitive(locked_gateway, upstream):
    """RFC 9110 section 11.1: the authentication scheme is case-insensitive ("bearer" == "Bearer")."""
    status, _, data = request(
        locked_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"Authorization": "bearer " + MASTER_KEY}
    )
    assert status == 200, data
    assert json.loads(data)["choices"][0]["message"]["content"] == "echo: hello"


def test_master_key_accepted_and_never_forwarded(locked_gateway, upstream):
    client = sdk(locked_gateway, api_key=MASTER_KEY)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "let me in"}])
    assert completion.choices[0].message.content == "echo: let me in"
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "streamed in"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: streamed in"

    # An upstream error relayed to the client does not reveal it either.
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], extra_headers={"x-mock-fault": "status=429"}
        )
    assert MASTER_KEY not in json.dumps(caught.value.body)

    received = upstream.requests()
    assert len(received) == 5, "two answered, and the 429 tried three times (the default max_retries = 2)"
    for record in received:
        assert record["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
        assert MASTER_KEY not in json.dumps(record)


# --- upstream failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("client", BACKENDS)
def test_upstream_unreachable_is_502(start_gateway, client):
    port = closed_port()
    gateway = start_gateway(
        config=provider_config(f"http://127.0.0.1:{port}/v1", client),
        env={"TEST_PROVIDER_KEY": PROVIDER_KEY},
    )
    started = time.monotonic()
    status, headers, data = request(gateway.base, "POST", "/v1/chat/completions", CHAT)
    assert time.monotonic() - started < 15
    assert status == 502
    error = openai_error(data)
    assert error["type"] == "server_error"
    assert PROVIDER_KEY not in data.decode() and str(port) not in data.decode()  # no secret, no address
    assert headers.get("x-request-id")

    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway).chat.completions.create(**CHAT)
    assert caught.value.status_code == 502
    assert_still_serving(gateway)


def test_upstream_validation_error_passes_through(faulty_gateway, upstream):
    bad = {"model": "gpt-4o-mini", "messages": "not a list"}
    direct_status, _, direct_body = request(
        upstream.base, "POST", "/v1/chat/completions", bad, headers={"Authorization": f"Bearer {PROVIDER_KEY}"}
    )
    assert direct_status == 400  # the mock is strict
    upstream.clear()

    status, _, data = request(faulty_gateway.base, "POST", "/v1/chat/completions", bad)
    assert status == direct_status
    assert json.loads(data) == json.loads(direct_body)
    assert openai_error(data)["param"] == "messages"

    with pytest.raises(openai.BadRequestError) as caught:
        sdk(faulty_gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "wizard", "content": "x"}])
    assert caught.value.status_code == 400
    assert caught.value.body.get("param")
    assert len(upstream.requests()) == 2


def test_upstream_429_passes_through_with_retry_after(faulty_gateway, upstream):
    client = sdk(faulty_gateway)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "status=429;retry-after=70"})
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after") == "70"
    assert caught.value.response.headers.get("x-alloy-provider") == "openai"
    assert isinstance(caught.value.body, dict) and caught.value.body.get("message")
    # A Retry-After beyond retry_after_max (30 s by default) is not waited: with no other
    # deployment and no fallback, the client gets the 429 at once, to wait (or not) itself.
    assert len(upstream.requests()) == 1


def test_upstream_500_passes_through(faulty_gateway, upstream):
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(faulty_gateway).chat.completions.create(**CHAT, extra_headers={"x-mock-fault": "status=500"})
    assert caught.value.status_code == 500
    status, _, data = request(
        faulty_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"x-mock-fault": "status=503"}
    )
    assert status == 503
    openai_error(data)
    assert_still_serving(faulty_gateway)


def test_upstream_hang_times_out_with_504(faulty_gateway, upstream):
    started = time.monotonic()
    status, _, data = request(
        faulty_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"x-mock-fault": "hang"}, timeout=30
    )
    elapsed = time.monotonic() - started
    assert status == 504, data
    assert elapsed < 6, f"504 took {elapsed:.1f}s with read_timeout = 2"
    error = openai_error(data)
    assert error["type"] == "server_error"
    assert_still_serving(faulty_gateway)
    # and the next request still works
    status, _, data = request(faulty_gateway.base, "POST", "/v1/chat/completions", CHAT)
    assert status == 200 and json.loads(data)["choices"][0]["message"]["content"] == "echo: hello"


def test_slow_first_byte_within_read_timeout_succeeds(faulty_gateway):
    status, _, data = request(
        faulty_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"x-mock-fault": "slow-first-byte=500"}
    )
    assert status == 200, data
    assert json.loads(data)["choices"][0]["message"]["content"] == "echo: hello"


@pytest.mark.parametrize("fault", ["garbage", "reset"])
def test_upstream_garbage_or_reset_is_502(faulty_gateway, fault):
    started = time.monotonic()
    status, _, data = request(
        faulty_gateway.base, "POST", "/v1/chat/completions", CHAT, headers={"x-mock-fault": fault}
    )
    assert time.monotonic() - started < 15
    assert status == 502, data
    assert openai_error(data)["type"] == "server_error"
    assert_still_serving(faulty_gateway)


def test_upstream_reset_mid_stream_raises_in_the_sdk(faulty_gateway):
    client = sdk(faulty_gateway, timeout=20.0)
    received = []
    started = time.monotonic()
    with pytest.raises((openai.APIError, openai.APIConnectionError)) as caught:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "a long enough answer to be cut in the middle"}],
            stream=True,
            extra_headers={"x-mock-fault": "reset-mid-stream"},
        )
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0])
    assert time.monotonic() - started < 15, "the stream must fail promptly, not hang"
    assert not isinstance(caught.value, openai.APITimeoutError), "the stream hung until the client timed out"
    assert not any(choice.finish_reason == "stop" for choice in received), "a cut stream must not look complete"
    assert_still_serving(faulty_gateway)

    async def after():
        async with openai.AsyncOpenAI(base_url=faulty_gateway.base + "/v1", api_key="k", max_retries=0) as aclient:
            return await aclient.chat.completions.create(**CHAT)

    assert asyncio.run(after()).choices[0].message.content == "echo: hello"


def test_client_leaving_before_the_answer_does_not_hurt_the_gateway(faulty_gateway, upstream):
    """A client that hangs up while the upstream is still thinking: the gateway drops the exchange
    and keeps serving."""
    body = json.dumps(CHAT).encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", faulty_gateway.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"x-mock-fault: slow-first-byte=800\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
    time.sleep(1.2)  # the upstream answers after the clients left
    assert_still_serving(faulty_gateway)
    status, _, data = request(faulty_gateway.base, "POST", "/v1/chat/completions", CHAT)
    assert status == 200, data
