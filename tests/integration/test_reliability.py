"""Reliability through the running gateway (README, "Reliability"): retries, backoff and
Retry-After, timeouts, fallbacks and load-balancing strategies, each seen as the client sees it
AND counted in the mock upstreams' request logs (how many attempts really reached an upstream).

One gateway for the whole module, in front of shared mocks: two healthy ones (``a``, ``b``) and
mocks started with a server-wide ``--fault`` (always 503, always slow, always 429 with a long
Retry-After). Faults of one request ride on ``x-mock-fault`` headers, which the gateway forwards;
``x-mock-fail-times`` with a fresh ``x-mock-key`` makes "fail n times, then succeed" (counted per
mock process, so a fallback on another mock is not affected). The circuit breaker keeps state
across requests, so it is disabled here (``failure_threshold`` huge) and tested in
test_reliability_breaker.py.
"""

import email.utils
import http.client
import json
import socket
import time
import uuid

import openai
import pytest

from alloy.mock_upstream import INVALID_JSON

from harness import assert_no_crash_logged, in_parallel, start_gateway_process, wait_until
from reliability_helpers import PROVIDER_KEY, assert_proxied_headers, call, chats, openai_error, provider, started_mocks

SLOW_MS = 700  # the "slow" mock's first-byte delay


# --- helpers --------------------------------------------------------------------------------------


def sdk(gateway, timeout=15.0):
    # max_retries=0: the SDK's own retries would hide the gateway's.
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0, timeout=timeout)


def fails(fault, times=1):
    """Headers for "``fault`` on the first ``times`` requests (of this key, per mock), then success"."""
    return {"x-mock-fault": fault, "x-mock-fail-times": str(times), "x-mock-key": uuid.uuid4().hex}


def events_of(data):
    """The ``data:`` payloads of an SSE body, in order."""
    return [block[6:] for block in data.decode().split("\n\n") if block.startswith("data: ")]


# --- processes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mocks():
    yield from started_mocks(
        {
            "a": (),
            "b": (),
            "down": ("--fault", "status=503"),
            "slow": ("--fault", f"slow-first-byte={SLOW_MS}"),
            "limited": ("--fault", "status=429;retry-after=30"),
        }
    )


def gateway_config(m, client="core"):
    def p(name, mock, extra=""):
        return provider(name, mock, extra, client)

    return (
        """
    [router]
    max_retries = 2
    retry_deadline = 3.0
    backoff_base = 0.01
    backoff_max = 0.05
    retry_after_max = 5.0
    strategy = "round-robin"
    failure_threshold = 100000
    failure_window = 30.0
    cooldown = 30.0
    """
        + p("a", m["a"])
        + p("b", m["b"])
        + p("down", m["down"])
        + p("slow", m["slow"])
        + p("slow2", m["slow"])
        + p("limited", m["limited"])
        + p("timed", m["a"], "first_byte_timeout = 1.0\n    stream_idle_timeout = 1.0")
        + """
    [[models]]
    name = "solo"
    provider = "a"
    model = "gpt-4o-mini"

    [[models]]
    name = "timed"
    provider = "a"
    model = "gpt-4o-mini"
    first_byte_timeout = 1.0
    stream_idle_timeout = 1.0

    [[models]]
    name = "timed-provider"
    provider = "timed"
    model = "gpt-4o-mini"

    [[models]]
    name = "bounded"
    provider = "a"
    model = "gpt-4o-mini"
    total_timeout = 2.0

    [[models]]
    name = "bounded-retries"
    provider = "a"
    model = "gpt-4o-mini"
    total_timeout = 2.0
    max_retries = 20

    [[models]]
    name = "persistent"
    provider = "a"
    model = "gpt-4o-mini"
    max_retries = 20

    [[models]]
    name = "primary"
    provider = "down"
    model = "gpt-4o"
    max_retries = 1
    fallbacks = ["backup"]

    [[models]]
    name = "backup"
    provider = "b"
    model = "gpt-4.1-mini"

    [[models]]
    name = "doomed"
    provider = "down"
    model = "gpt-4o"
    max_retries = 0
    fallbacks = ["doomed-too"]

    [[models]]
    name = "doomed-too"
    provider = "down"
    model = "o3-mini"
    max_retries = 1

    [[models]]
    name = "chain"
    provider = "down"
    model = "gpt-4o"
    max_retries = 0
    fallbacks = ["doomed-too", "backup"]

    [[models]]
    name = "guarded"
    provider = "a"
    model = "gpt-4o-mini"
    fallbacks = ["backup-a"]
    context_window_fallbacks = ["long"]
    content_policy_fallbacks = ["lenient"]

    [[models]]
    name = "backup-a"
    provider = "a"
    model = "gpt-4o"

    [[models]]
    name = "long"
    provider = "a"
    model = "gpt-4.1-mini"

    [[models]]
    name = "lenient"
    provider = "a"
    model = "o3-mini"

    [[models]]
    name = "pair"
    strategy = "round-robin"
    deployments = [{ provider = "a", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]

    [[models]]
    name = "weighted"
    strategy = "weighted"
    deployments = [{ provider = "a", weight = 3 }, { provider = "b", weight = 1 }]

    [[models]]
    name = "half-down"
    strategy = "round-robin"
    max_retries = 1
    deployments = [{ provider = "down", model = "gpt-4o-mini" }, { provider = "a", model = "gpt-4o-mini" }]

    [[models]]
    name = "half-limited"
    strategy = "round-robin"
    max_retries = 1
    deployments = [{ provider = "limited", model = "gpt-4o-mini" }, { provider = "a", model = "gpt-4o-mini" }]

    [[models]]
    name = "least"
    strategy = "least-inflight"
    deployments = [{ provider = "slow", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]

    [[models]]
    name = "quickest"
    strategy = "latency"
    deployments = [{ provider = "slow", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]

    [[models]]
    name = "capped"
    deployments = [{ provider = "slow", model = "gpt-4o-mini", max_inflight = 2 }]

    [[models]]
    name = "capped-pair"
    deployments = [
      { provider = "slow", model = "gpt-4o-mini", max_inflight = 1 },
      { provider = "slow2", model = "gpt-4o-mini", max_inflight = 1 },
    ]
    """
    )


@pytest.fixture(scope="module")
def gateways(mocks, tmp_path_factory):
    """The module's gateways, one per upstream client, each started when a test first needs it."""
    started = {}

    def gateway(client):
        if client not in started:
            path = tmp_path_factory.mktemp(f"reliability-{client}") / "alloy.toml"
            env = {"TEST_PROVIDER_KEY": PROVIDER_KEY}
            started[client] = start_gateway_process(path, gateway_config(mocks, client), env)
        return started[client]

    yield gateway
    for process in started.values():
        process.stop()
    for process in started.values():
        assert_no_crash_logged(process)


@pytest.fixture
def gateway(gateways):
    """The gateway on the core upstream client."""
    return gateways("core")


@pytest.fixture(params=["core", "httpx"])
def any_gateway(request, gateways):
    """Runs the test once per upstream client."""
    return gateways(request.param)


@pytest.fixture(autouse=True)
def clean_logs(mocks):
    for mock in mocks.values():
        mock.clear()


@pytest.fixture
def a(mocks):
    return mocks["a"]


@pytest.fixture
def b(mocks):
    return mocks["b"]


# --- retried: before the first byte -----------------------------------------------------------------


def test_first_attempt_success_reports_one_attempt(any_gateway, a):
    reply = call(any_gateway, "solo")
    assert reply.status == 200 and reply.json()["choices"][0]["message"]["content"] == "echo: hello"
    assert_proxied_headers(reply, "gpt-4o-mini", "a", 1)
    assert chats(a) == ["gpt-4o-mini"]


def test_429_with_retry_after_is_waited_then_retried(gateway, a):
    reply = call(gateway, "solo", headers=fails("status=429;retry-after=1"))
    assert reply.status == 200, reply
    assert reply.json()["choices"][0]["message"]["content"] == "echo: hello"
    assert_proxied_headers(reply, "gpt-4o-mini", "a", 2)
    assert len(chats(a)) == 2
    assert 0.95 <= reply.elapsed < 4.0, f"Retry-After: 1 must be waited, took {reply.elapsed:.2f}s"


def test_retry_after_ms_is_honoured(gateway, a):
    reply = call(gateway, "solo", headers=fails("status=429;retry-after-ms=600"))
    assert reply.status == 200, reply
    assert reply.attempts == 2 and len(chats(a)) == 2
    assert 0.58 <= reply.elapsed < 3.0, f"retry-after-ms: 600 must be waited, took {reply.elapsed:.2f}s"


def test_retry_after_as_an_http_date_is_honoured(gateway, a):
    date = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1 to 2 s from now
    reply = call(gateway, "solo", headers=fails(f"status=503;retry-after={date}"))
    assert reply.status == 200, reply
    assert reply.attempts == 2 and len(chats(a)) == 2
    assert 0.9 <= reply.elapsed < 4.0, f"Retry-After: {date} must be waited, took {reply.elapsed:.2f}s"


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_status_once_then_success(any_gateway, a, status):
    reply = call(any_gateway, "solo", headers=fails(f"status={status}"))
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "gpt-4o-mini", "a", 2)
    assert len(chats(a)) == 2
    assert reply.elapsed < 2.0, "backoff_base = 0.01: the retry is almost immediate"


def test_500_twice_then_success_within_max_retries(gateway, a):
    reply = call(gateway, "solo", headers=fails("status=500", times=2))
    assert reply.status == 200, reply
    assert reply.attempts == 3 and len(chats(a)) == 3


def test_503_forever_answers_the_last_503_after_max_retries_plus_one(any_gateway, a):
    reply = call(any_gateway, "solo", headers={"x-mock-fault": "status=503"})
    assert reply.status == 503, reply
    error = openai_error(reply.data)
    assert error["message"] == "Injected by x-mock-fault: status 503.", "the upstream's own answer, as it sent it"
    assert_proxied_headers(reply, "gpt-4o-mini", "a", 3)
    assert len(chats(a)) == 3  # max_retries = 2 -> three attempts in all
    assert reply.elapsed < 2.0


def test_model_max_retries_overrides_the_router(gateway, mocks):
    reply = call(gateway, "doomed-too")  # max_retries = 1, on the always-503 mock
    assert reply.status == 503, reply
    assert reply.attempts == 2 and chats(mocks["down"]) == ["o3-mini", "o3-mini"]


def test_reset_before_the_head_is_retried(any_gateway, a):
    reply = call(any_gateway, "solo", headers=fails("reset"))
    assert reply.status == 200, reply
    assert reply.json()["choices"][0]["message"]["content"] == "echo: hello"
    assert reply.attempts == 2 and len(chats(a)) == 2


def test_reset_forever_is_502_bad_gateway(gateway, a):
    reply = call(gateway, "solo", headers={"x-mock-fault": "reset"})
    assert reply.status == 502, reply
    error = openai_error(reply.data)
    assert error["code"] == "bad_gateway" and error["type"] == "server_error"
    assert reply.attempts == 3 and len(chats(a)) == 3


def test_garbage_is_502(any_gateway, a):
    reply = call(any_gateway, "solo", headers={"x-mock-fault": "garbage"})
    assert reply.status == 502, reply
    error = openai_error(reply.data)
    assert error["code"] == "upstream_protocol_error" and error["type"] == "server_error"
    assert 1 <= reply.attempts <= 3 and len(chats(a)) == reply.attempts


def test_stream_is_retried_before_its_first_byte(any_gateway, a):
    stream = sdk(any_gateway).chat.completions.create(
        model="solo", messages=[{"role": "user", "content": "stream after a 503"}], stream=True,
        extra_headers=fails("status=503"),
    )  # fmt: skip
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream after a 503"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stream.response.headers["x-alloy-attempts"] == "2"
    assert len(chats(a)) == 2


def test_stream_is_retried_after_a_reset(gateway, a):
    reply = call(gateway, "solo", text="reset then stream", headers=fails("reset"), stream=True)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/event-stream"), reply
    events = events_of(reply.data)
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == (
        "echo: reset then stream"
    )
    assert reply.attempts == 2 and len(chats(a)) == 2


# --- not retried ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_is_answered_at_once_without_retry_or_fallback(gateway, a, b, status):
    reply = call(gateway, "guarded", headers={"x-mock-fault": f"status={status}"})
    assert reply.status == status, reply
    assert openai_error(reply.data)["message"] == f"Injected by x-mock-fault: status {status}."
    assert_proxied_headers(reply, "gpt-4o-mini", "a", 1)
    assert len(chats(a)) == 1 and chats(b) == [], "neither retried nor sent to the fallback"


def test_context_length_without_context_window_fallbacks_passes_through(gateway, a):
    reply = call(gateway, "solo", headers={"x-mock-fault": "context-length"})
    assert reply.status == 400, reply
    error = openai_error(reply.data)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_invalid_json_passes_through_as_200(any_gateway, a):
    reply = call(any_gateway, "solo", headers={"x-mock-fault": "invalid-json"})
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/json"
    assert reply.data == INVALID_JSON, "the gateway relays bodies, it does not parse them"
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_huge_body_is_relayed_whole(gateway, a):
    size = 24 * 1024 * 1024
    reply = call(gateway, "solo", headers={"x-mock-fault": f"huge={size}"}, timeout=30)
    assert reply.status == 200, reply
    assert int(reply.headers["content-length"]) == len(reply.data)
    content = reply.json()["choices"][0]["message"]["content"]
    assert len(content) == size and content == ("0123456789" * (size // 10 + 1))[:size]
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_an_error_answer_too_big_to_hold_is_relayed_as_it_comes_and_not_retried(gateway, a):
    # A retryable 503 is held (read whole) in case another attempt replaces it; past 1 MiB it is
    # relayed as the final answer instead, so a hostile upstream cannot make the gateway buffer it.
    pad = 3 * 1024 * 1024
    reply = call(gateway, "solo", headers={"x-mock-fault": f"status=503;pad={pad}"}, timeout=30)
    assert reply.status == 503, reply
    error = openai_error(reply.data)
    assert error["message"].startswith("Injected by x-mock-fault: status 503.") and len(error["message"]) > pad
    assert reply.attempts == 1 and len(chats(a)) == 1
    small = call(gateway, "solo", headers={"x-mock-fault": "status=503;pad=1000"})
    assert small.status == 503 and small.attempts == 3, "a small one is still held and retried"


def test_retry_after_beyond_retry_after_max_is_not_waited(gateway, a):
    reply = call(gateway, "solo", headers={"x-mock-fault": "status=429;retry-after=30"})
    assert reply.status == 429, reply
    assert reply.headers.get("retry-after") == "30", "the upstream's 429 is answered as it was sent"
    assert openai_error(reply.data)["code"] == "rate_limit_exceeded"
    assert reply.elapsed < 2.0, f"retry_after_max = 5: a 30 s Retry-After is not waited ({reply.elapsed:.2f}s)"
    assert reply.attempts == len(chats(a)) == 1


def test_x_should_retry_false_is_not_retried_but_falls_back(gateway, a):
    reply = call(gateway, "solo", headers={"x-mock-fault": "status=429;no-retry"})
    assert reply.status == 429 and reply.headers.get("x-should-retry") == "false", reply
    assert reply.attempts == 1 and len(chats(a)) == 1, "the upstream said not to retry"
    a.clear()
    reply = call(gateway, "guarded", headers=fails("status=429;no-retry"))
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "gpt-4o", "a", 2)
    assert chats(a) == ["gpt-4o-mini", "gpt-4o"], "no retry of the same model: straight to its fallback"


def test_retry_after_beyond_the_max_tries_another_deployment_at_once(gateway, mocks, a):
    replies = [call(gateway, "half-limited", text=f"r{i}") for i in range(4)]
    for reply in replies:
        assert reply.status == 200, reply
        assert reply.headers["x-alloy-provider"] == "a"
        assert reply.elapsed < 1.5, f"the 30 s Retry-After of the other deployment was waited: {reply}"
    limited = len(chats(mocks["limited"]))
    assert limited >= 1, "round-robin sends some first attempts to the 429 deployment"
    assert len(chats(a)) == 4
    assert sum(r.attempts for r in replies) == 4 + limited, "each 429 cost one more attempt, not a wait"


# --- timeouts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["timed", "timed-provider"])
def test_hang_is_504_after_the_first_byte_timeout_without_retry(any_gateway, a, model):
    reply = call(any_gateway, model, headers={"x-mock-fault": "hang"})
    assert reply.status == 504, reply
    error = openai_error(reply.data)
    assert error["code"] == "upstream_timeout" and error["type"] == "server_error"
    assert 0.9 <= reply.elapsed < 3.0, f"first_byte_timeout = 1 fires between 1 and 2 s, took {reply.elapsed:.2f}s"
    assert reply.attempts == 1 and len(chats(a)) == 1, "a first-byte timeout is not retried"


def test_slow_first_byte_beyond_the_timeout_is_504(gateway, a):
    reply = call(gateway, "timed", headers={"x-mock-fault": "slow-first-byte=3500"})
    assert reply.status == 504, reply
    assert openai_error(reply.data)["code"] == "upstream_timeout"
    assert reply.elapsed < 3.2, "the gateway gave up before the upstream answered"
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_slow_first_byte_within_the_timeout_succeeds(gateway, a):
    reply = call(gateway, "timed", headers={"x-mock-fault": "slow-first-byte=300"})
    assert reply.status == 200, reply
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_hanging_stream_is_504_before_its_head(gateway, a):
    reply = call(gateway, "timed", headers={"x-mock-fault": "hang"}, stream=True)
    assert reply.status == 504, reply
    assert openai_error(reply.data)["code"] == "upstream_timeout"
    assert len(chats(a)) == 1


@pytest.mark.parametrize("model", ["timed", "timed-provider"])
def test_stream_idle_timeout_ends_the_stream_with_an_error_event(any_gateway, a, model):
    reply = call(any_gateway, model, text="drip drip drip", headers={"x-mock-fault": "drip=2500"}, stream=True)
    assert reply.status == 200, reply  # the head was relayed before the silence
    events = events_of(reply.data)
    assert len(events) >= 2 and "choices" in json.loads(events[0]), events
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["message"] and error["type"], error
    assert 0.9 <= reply.elapsed < 2.4, f"stream_idle_timeout = 1 < the 2.5 s drip, took {reply.elapsed:.2f}s"
    assert len(chats(a)) == 1, "a started stream is never retried"


def test_stream_idle_timeout_through_the_sdk(gateway, a):
    received = []
    with pytest.raises(openai.APIError) as caught:
        stream = sdk(gateway).chat.completions.create(
            model="timed", messages=[{"role": "user", "content": "drip drip"}], stream=True,
            extra_headers={"x-mock-fault": "drip=2500"},
        )  # fmt: skip
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(caught.value, openai.APITimeoutError), "the gateway must end the stream, not the client"
    assert received and not any(c.choices and c.choices[0].finish_reason for c in received)
    assert len(chats(a)) == 1


def test_drip_shorter_than_the_idle_timeout_streams_to_the_end(gateway, a):
    reply = call(gateway, "timed", text="one two three", headers={"x-mock-fault": "drip=300"}, stream=True)
    assert reply.status == 200 and events_of(reply.data)[-1] == "[DONE]", reply
    assert reply.elapsed >= 1.5, "six gaps of 0.3 s: the idle timeout (1 s) is per silence, not per stream"


def test_total_timeout_ends_a_long_stream(any_gateway, a):
    text = " ".join(f"w{i}" for i in range(20))  # 24 events 0.5 s apart: 12 s unbounded
    reply = call(any_gateway, "bounded", text=text, headers={"x-mock-fault": "drip=500"}, stream=True)
    assert reply.status == 200, reply
    events = events_of(reply.data)
    assert "error" in json.loads(events[-1]), events[-1]
    assert "[DONE]" not in events
    assert 1.9 <= reply.elapsed < 3.6, f"total_timeout = 2 fires between 2 and 3 s, took {reply.elapsed:.2f}s"
    assert len(chats(a)) == 1


def test_total_timeout_counts_the_retries_too(gateway, a):
    # Each attempt: a 503 after 0.7 s; max_retries = 20, but total_timeout = 2 s for the request.
    reply = call(gateway, "bounded-retries", headers={"x-mock-fault": "status=503;slow-first-byte=700"})
    assert reply.status == 504, reply
    assert openai_error(reply.data)["code"] == "upstream_timeout"
    assert reply.attempts == len(chats(a)) and 3 <= reply.attempts <= 4, reply
    assert 1.9 <= reply.elapsed < 3.5, reply


def test_retry_deadline_stops_new_attempts(gateway, a):
    # Each attempt: a 503 after 0.5 s; max_retries = 20, but retry_deadline = 3 s.
    reply = call(gateway, "persistent", headers={"x-mock-fault": "status=503;slow-first-byte=500"})
    assert reply.status == 503, reply
    attempts = len(chats(a))
    assert reply.attempts == attempts
    assert 5 <= attempts <= 8, f"attempts start until 3 s have passed, 0.5 s apart: {attempts}"
    assert reply.elapsed < 4.5, reply


# --- mid-stream failures -------------------------------------------------------------------------


def test_reset_mid_stream_ends_with_an_error_event_and_no_retry(any_gateway, a):
    text = "a long enough answer to be cut in the middle by the upstream"
    reply = call(any_gateway, "solo", text=text, headers={"x-mock-fault": "reset-mid-stream"}, stream=True)
    assert reply.status == 200, reply
    assert reply.headers.get("transfer-encoding") == "chunked"
    events = events_of(reply.data)  # read to the chunked terminator: no IncompleteRead
    assert len(events) >= 2 and "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["message"] and error["type"]
    assert all("choices" in json.loads(e) for e in events[:-1])
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_reset_mid_stream_raises_in_the_sdk(gateway, a):
    received = []
    started = time.monotonic()
    with pytest.raises(openai.APIError) as caught:
        stream = sdk(gateway).chat.completions.create(
            model="solo", messages=[{"role": "user", "content": "cut this stream somewhere please"}], stream=True,
            extra_headers={"x-mock-fault": "reset-mid-stream"},
        )  # fmt: skip
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(caught.value, (openai.APITimeoutError, openai.APIConnectionError)), caught.value
    assert time.monotonic() - started < 5
    assert received and not any(c.choices and c.choices[0].finish_reason for c in received)
    assert len(chats(a)) == 1


def test_connection_closes_after_a_failed_stream(gateway, a):
    """After the error event the gateway closes the client connection (the stream's state is lost)."""
    body = json.dumps({"model": "solo", "messages": [{"role": "user", "content": "cut me off now"}], "stream": True})
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-mock-fault: reset-mid-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode())
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.endswith(b"\r\n0\r\n\r\n"), received[-200:]
    assert b'data: {"error"' in received


# --- fallbacks --------------------------------------------------------------------------------------


def test_fallback_to_another_model_on_another_upstream(any_gateway, mocks, b):
    reply = call(any_gateway, "primary")
    assert reply.status == 200, reply
    assert reply.json()["choices"][0]["message"]["content"] == "echo: hello"
    assert_proxied_headers(reply, "gpt-4.1-mini", "b", 3)
    assert chats(mocks["down"]) == ["gpt-4o", "gpt-4o"], "max_retries = 1: two attempts on the primary"
    assert chats(b) == ["gpt-4.1-mini"]
    assert reply.elapsed < 2.0


def test_fallback_through_the_sdk(gateway, mocks, b):
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": "fall back"}]
    )
    assert raw.headers["x-alloy-model"] == "gpt-4.1-mini" and raw.headers["x-alloy-provider"] == "b"
    assert raw.headers["x-alloy-attempts"] == "3"
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: fall back"
    stream = sdk(gateway).chat.completions.create(
        model="primary", messages=[{"role": "user", "content": "fall back streaming"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: fall back streaming"
    assert chats(b) == ["gpt-4.1-mini", "gpt-4.1-mini"]


def test_fallbacks_are_tried_in_order_each_with_its_own_attempts(gateway, mocks, b):
    reply = call(gateway, "chain")
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "gpt-4.1-mini", "b", 4)
    assert chats(mocks["down"]) == ["gpt-4o", "o3-mini", "o3-mini"]
    assert chats(b) == ["gpt-4.1-mini"]


def test_everything_exhausted_answers_the_last_upstream_answer(gateway, mocks):
    reply = call(gateway, "doomed")
    assert reply.status == 503, reply
    assert openai_error(reply.data)["message"] == "Injected by x-mock-fault: status 503."
    assert_proxied_headers(reply, "o3-mini", "down", 3)
    assert chats(mocks["down"]) == ["gpt-4o", "o3-mini", "o3-mini"]


def test_context_length_uses_the_context_window_fallbacks(gateway, a, b):
    reply = call(gateway, "guarded", headers=fails("context-length"))
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "gpt-4.1-mini", "a", 2)
    assert chats(a) == ["gpt-4o-mini", "gpt-4.1-mini"], "no retry of the same model, then the long-context one"


def test_content_policy_uses_the_content_policy_fallbacks(gateway, a, b):
    reply = call(gateway, "guarded", headers=fails("content-policy"))
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "o3-mini", "a", 2)
    assert chats(a) == ["gpt-4o-mini", "o3-mini"]
    assert chats(b) == []


def test_retryable_failure_of_guarded_uses_the_ordinary_fallbacks(gateway, a, b):
    # 503 on the first three requests to mock a: the model's three attempts; its fallback is on a too.
    reply = call(gateway, "guarded", headers=fails("status=503", times=3))
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "gpt-4o", "a", 4)
    assert chats(a) == ["gpt-4o-mini"] * 3 + ["gpt-4o"]


# --- load balancing --------------------------------------------------------------------------------


def test_round_robin_alternates_exactly(gateway, a, b):
    providers = []
    for i in range(10):
        reply = call(gateway, "pair", text=f"rr {i}")
        assert reply.status == 200, reply
        assert reply.attempts == 1 and reply.headers["x-alloy-model"] == "gpt-4o-mini"
        providers.append(reply.headers["x-alloy-provider"])
    assert set(providers) == {"a", "b"}
    assert all(x != y for x, y in zip(providers, providers[1:])), providers
    assert len(chats(a)) == len(chats(b)) == 5


def test_weighted_three_to_one(gateway, a, b):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=15)
    body = json.dumps({"model": "weighted", "messages": [{"role": "user", "content": "w"}]})
    counts = {"a": 0, "b": 0}
    try:
        for _ in range(200):
            connection.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            counts[response.getheader("x-alloy-provider")] += 1
    finally:
        connection.close()
    # Expected 150:50 (a binomial with sd ~6); 5 sd either side.
    assert 120 <= counts["a"] <= 180, counts
    assert len(chats(a)) == counts["a"] and len(chats(b)) == counts["b"]
    assert set(chats(a)) == {"weighted"}, "a deployment without model sends the model's name"


def test_a_retry_prefers_a_deployment_not_yet_failed(gateway, mocks, a):
    for i in range(8):
        reply = call(gateway, "half-down", text=f"hd {i}")
        assert reply.status == 200, reply
        assert reply.headers["x-alloy-provider"] == "a"
        assert reply.attempts in (1, 2)
    assert len(chats(mocks["down"])) >= 2, "round-robin sends first attempts to the failing deployment too"
    assert len(chats(a)) == 8, "every request ends on the healthy deployment, once"


def test_least_inflight_avoids_the_busy_deployment(gateway, mocks, b):
    def one(i):
        time.sleep(0.06 * i)  # staggered: each arrives while the slow deployment still holds its request
        return call(gateway, "least", text=f"li {i}")

    replies = in_parallel([lambda i=i: one(i) for i in range(8)])
    assert all(r.status == 200 for r in replies), replies
    slow = len(chats(mocks["slow"]))
    assert 1 <= slow <= 2, f"the slow deployment should hold one request while b serves the rest: {slow}"
    assert len(chats(b)) == 8 - slow


def test_latency_strategy_prefers_the_fast_deployment(gateway, mocks, b):
    for i in range(16):
        reply = call(gateway, "quickest", text=f"lat {i}")
        assert reply.status == 200, reply
    slow = len(chats(mocks["slow"]))
    assert 1 <= slow <= 3, f"unmeasured first, then the EWMA prefers the fast one: slow got {slow}/16"
    assert len(chats(b)) == 16 - slow


def test_max_inflight_is_respected_and_overflow_is_429_deployments_busy(gateway, mocks):
    replies = in_parallel([lambda i=i: call(gateway, "capped", text=f"cap {i}") for i in range(5)])
    ok = [r for r in replies if r.status == 200]
    busy = [r for r in replies if r.status == 429]
    assert len(ok) == 2 and len(busy) == 3, replies
    for reply in busy:
        assert openai_error(reply.data)["code"] == "deployments_busy"
        assert reply.headers.get("retry-after") == "1"
        assert reply.elapsed < SLOW_MS / 1000, "refused at once, not queued"
    assert len(chats(mocks["slow"])) == 2
    # Slots are given back: the next request is served.
    assert call(gateway, "capped").status == 200


def test_max_inflight_spreads_over_deployments(gateway, mocks):
    replies = in_parallel([lambda i=i: call(gateway, "capped-pair", text=f"cp {i}") for i in range(3)])
    assert sorted(r.status for r in replies) == [200, 200, 429], replies
    assert sorted(r.headers["x-alloy-provider"] for r in replies if r.status == 200) == ["slow", "slow2"]
    assert len(chats(mocks["slow"])) == 2


# --- the client leaving -------------------------------------------------------------------------------


def test_client_disconnect_during_backoff_cancels_the_retry(gateway, a):
    body = json.dumps({"model": "solo", "messages": [{"role": "user", "content": "leaving"}]}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-mock-fault: status=503;retry-after=2\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert wait_until(lambda: len(chats(a)) == 1, timeout=5)
        time.sleep(0.2)  # the gateway is now sleeping out the Retry-After
    time.sleep(2.5)  # past the moment the retry would have started
    assert len(chats(a)) == 1, "no upstream attempt after the client left"
    assert call(gateway, "solo").status == 200


# --- connect timeouts ----------------------------------------------------------------------------------


@pytest.fixture
def black_hole():
    """A loopback port that never completes a connection: a listening socket whose accept queue is
    full (it is never accepted from), so the kernel drops further SYNs and a connect just waits."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    try:
        for _ in range(8):  # enough to fill the queue whatever the kernel's slack
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
            fillers.append(filler)
        time.sleep(0.2)
        yield server.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_a_model_connect_timeout_overrides_the_provider_and_is_retried(tmp_path, black_hole, client):
    config = f"""
    [router]
    max_retries = 1
    backoff_base = 0.01
    backoff_max = 0.05

    [providers.hole]
    base_url = "http://127.0.0.1:{black_hole}/v1"
    api_key = "env:TEST_PROVIDER_KEY"
    client = "{client}"
    connect_timeout = 30

    [[models]]
    name = "impatient"
    provider = "hole"
    model = "gpt-4o-mini"
    connect_timeout = 0.5
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
    try:
        reply = call(gateway, "impatient", timeout=20)
        assert reply.status == 504, reply
        assert openai_error(reply.data)["code"] == "upstream_timeout"
        assert reply.attempts == 2, "a connect timeout is retried (the request never reached the upstream)"
        assert 0.9 <= reply.elapsed < 5.0, f"two 0.5 s connect timeouts, not the provider's 30 s: {reply.elapsed:.2f}s"
    finally:
        gateway.stop()
    assert_no_crash_logged(gateway)
