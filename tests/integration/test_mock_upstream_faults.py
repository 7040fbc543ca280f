"""The mock upstream's fault injection as its users see it: a real ``python -m alloy.mock_upstream``
process, driven by the official ``openai`` SDK, httpx and raw sockets. Faults of one request ride on
``x-mock-fault`` (status codes and Retry-After, reset, garbage, hang, slow first byte, drip, invalid
JSON, huge bodies, context length and content policy), ``x-mock-fail-times`` fails a request n times
then lets it through; ``--fault`` and ``--fail-times`` apply one to the whole server.

The SDK contract is in test_mock_upstream_api.py, the HTTP contract (raw sockets), the options and
shutdown in test_mock_upstream_http.py; the process class and helpers in mock_upstream_helpers.py.
"""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest

from mock_upstream_helpers import AUTH, CHAT, KEY, REPO, MockProcess, chat_request, parse_responses, user
from mock_upstream_helpers import shared_upstream, start_upstream, upstream  # noqa: F401 (fixtures)


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
