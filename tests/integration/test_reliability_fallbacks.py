"""Fallbacks and load balancing through the running gateway (README, "Reliability"): fallback
models tried in order (also for context-length and content-policy errors), and the strategies
(round-robin, weighted, least-inflight, latency) and ``max_inflight`` that pick a deployment; each
seen as the client sees it AND counted in the mock upstreams' request logs (how many attempts
really reached an upstream).

One gateway for the whole module (one per upstream client), in front of shared mocks, both set up
in reliability_gateway.py, whose docstring says how faults are injected; the circuit breaker is
disabled there and tested in test_reliability_breaker.py.
"""

import http.client
import json
import time


from harness import in_parallel
from reliability_gateway import SLOW_MS, fails, sdk
from reliability_gateway import a, any_gateway, b, clean_logs, gateway, gateways, mocks  # noqa: F401 (the fixtures this module uses)
from reliability_helpers import assert_proxied_headers, call, chats, openai_error


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
