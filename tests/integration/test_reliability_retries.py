"""Retries through the running gateway (README, "Reliability"): what is retried before the first
byte (retryable statuses, resets, streams), backoff and Retry-After (seconds, milliseconds, an HTTP
date, beyond ``retry_after_max``), what is not retried, and a client leaving during the backoff;
each seen as the client sees it AND counted in the mock upstreams' request logs (how many attempts
really reached an upstream).

One gateway for the whole module (one per upstream client), in front of shared mocks, both set up
in reliability_gateway.py, whose docstring says how faults are injected; the circuit breaker is
disabled there and tested in test_reliability_breaker.py.
"""

import email.utils
import json
import socket
import time

import pytest

from alloy.mock_upstream import INVALID_JSON

from harness import wait_until
from reliability_gateway import events_of, fails, sdk
from reliability_gateway import a, any_gateway, b, clean_logs, gateway, gateways, mocks  # noqa: F401 (the fixtures this module uses)
from reliability_helpers import assert_proxied_headers, call, chats, openai_error


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
    # max_retries (2) + 1 tries: a reset is not the keep-alive race (test_reliability_stale_connections)
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
