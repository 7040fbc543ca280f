"""Rate limits through the running gateway: requests per minute, tokens per minute (reserved from
the request, reconciled from the answer's usage, streams and Anthropic routes included) and
requests in flight, exact under concurrent load with one process and with ``--workers 2``; the
x-ratelimit-* headers on every keyed answer; a 429 with Retry-After, and nothing sent upstream."""

import json
import sys

import openai
import pytest

from governance_helpers import MASTER, burst, chat, create_key, keyed_config, post, statuses
from harness import in_parallel, start_emulator_process, wait_until

SLOW = {"x-mock-fault": "slow-first-byte=400"}  # keeps requests in flight while others arrive


@pytest.fixture(scope="module")
def emulator():
    process = start_emulator_process("anthropic", "--api-key", "sk-ant")
    yield process
    process.stop()


def start_keyed(start_gateway, upstream, db, args=(), extra=""):
    gateway = start_gateway(config=keyed_config(upstream, db, extra), env={"ALLOY_MASTER_KEY": MASTER}, args=args)
    return gateway


def ready(gateway, secret):
    """Wait until the gateway knows the key (it reloads every 0.1 s here), using the master key so
    no limit of the key is spent."""
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] != 401, timeout=5)


def refusals_are_clean(results, kind):
    for status, head, body in results:
        if status == 429:
            assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == kind
            assert int(head["retry-after"]) >= 1
            assert head["x-ratelimit-remaining-requests"] == "0" if kind == "requests" else True


@pytest.mark.parametrize("workers", [1, 2])
def test_rpm_lets_exactly_the_limit_through(start_gateway, upstream, tmp_path, workers):
    if workers > 1 and not sys.platform.startswith("linux"):
        pytest.skip("--workers is Linux-only")
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "rpm", "--rpm", "7")
    gateway = start_keyed(start_gateway, upstream, db, args=["--workers", str(workers)])
    ready(gateway, secret)
    upstream.clear()
    results = burst(gateway.port, secret, 24)
    assert statuses(results) == [200] * 7 + [429] * 17
    assert len(upstream.requests()) == 7  # nothing refused went upstream
    refusals_are_clean(results, "requests")
    remaining = sorted(int(head["x-ratelimit-remaining-requests"]) for status, head, _ in results if status == 200)
    assert remaining == list(range(7))  # each admitted request saw the count after it
    assert all(head["x-ratelimit-limit-requests"] == "7" for _, head, _ in results)
    # The master key is not limited.
    assert post(gateway.port, MASTER, chat())[0] == 200


@pytest.mark.parametrize("workers", [1, 2])
def test_max_parallel_caps_requests_in_flight(start_gateway, upstream, tmp_path, workers):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "narrow", "--max-parallel", "3")
    gateway = start_keyed(start_gateway, upstream, db, args=["--workers", str(workers)])
    ready(gateway, secret)
    upstream.clear()
    results = burst(gateway.port, secret, 10, headers=SLOW)
    assert statuses(results) == [200] * 3 + [429] * 7
    assert len(upstream.requests()) == 3
    # Released when they end: the next ones pass.
    assert statuses(burst(gateway.port, secret, 3)) == [200] * 3


def test_tpm_reserves_max_tokens_and_reconciles_from_usage(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "tokens", "--tpm", "400")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=0)
    messages = [{"role": "user", "content": "one two three"}]
    # Reserved: max_tokens 300 plus the prompt's estimate; the answer used 3 + 3 tokens, which is
    # what stays counted once it ended.
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages, max_tokens=300)
    assert raw.headers["x-ratelimit-limit-tokens"] == "400"
    reserved_first = 400 - int(raw.headers["x-ratelimit-remaining-tokens"])
    assert reserved_first > 300
    used = raw.parse().usage.total_tokens
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages, max_tokens=300)
    # Had the first reservation stayed, this one would not have fit in 400.
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 400 - used - reserved_first
    # A stream without include_usage is reconciled too (the gateway asks for its usage).
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=300, stream=True)
    chunks = list(stream)
    assert all(chunk.usage is None for chunk in chunks)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages, max_tokens=300)
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 400 - 3 * used - reserved_first
    # A request that cannot fit in what is left of this minute (it would fill an empty one) is
    # refused before it goes upstream.
    upstream.clear()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=400 - (reserved_first - 300))
    assert refused.value.body["type"] == "tokens" and refused.value.response.headers["retry-after"]
    assert upstream.requests() == []
    # One that could never fit, whatever the minute, says so and tells the SDK not to retry it.
    retrying = openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=2)
    with pytest.raises(openai.RateLimitError) as refused:
        retrying.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=5000)
    headers = refused.value.response.headers
    assert "Request too large" in refused.value.message and "retry-after" not in headers
    assert headers["x-should-retry"] == "false"
    assert upstream.requests() == []


def test_tpm_reserves_the_cap_of_every_choice_asked_for(start_gateway, upstream, tmp_path):
    # n answers, each up to max_tokens: 20 concurrent n=20 requests once overshot a tpm 4-fold.
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "choices", "--tpm", "2000")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    body = chat(n=3, max_tokens=100)
    status, head, _ = post(gateway.port, secret, body, headers=SLOW)
    assert status == 200
    assert int(head["x-ratelimit-remaining-tokens"]) == 2000 - len(json.dumps(body)) // 4 - 300
    results = in_parallel([lambda: post(gateway.port, secret, chat(n=10, max_tokens=100), headers=SLOW)] * 4)
    assert sorted(statuses(results)) == [200, 429, 429, 429]  # 1000 reserved a request: one fits


def test_an_upstream_error_answer_gives_its_token_reservation_back(start_gateway, upstream, tmp_path):
    # The provider bills no tokens for a 400 or a 500 it answers: the minute's tokens stay free.
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "failing", "--tpm", "1000")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    remaining = []
    for fault in ("status=400", "status=400", "status=500;no-retry", "status=500;no-retry"):
        status, head, _ = post(gateway.port, secret, chat(max_tokens=16), headers={"x-mock-fault": fault, "cache-control": "no-store"})
        assert status == int(fault[7:10])
        remaining.append(int(head["x-ratelimit-remaining-tokens"]))
    # Each request reserved the same estimate, from a minute the ones before gave back.
    assert remaining[0] < 1000 and len(set(remaining)) == 1, remaining


def test_tpm_on_an_anthropic_route_streaming_and_not(start_gateway, upstream, emulator, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "claude", "--tpm", "1000")
    extra = f"""
        [providers.anthropic]
        base_url = "{emulator.base}"
        api_key = "sk-ant"
        """
    gateway = start_keyed(start_gateway, upstream, db, extra=extra)
    ready(gateway, secret)
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=0)
    messages = [{"role": "user", "content": "hello there"}]
    model = "claude-sonnet-4-5"
    first = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=200)
    reserved = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
    used = first.parse().usage.total_tokens
    assert 0 < used < reserved
    list(client.chat.completions.create(model=model, messages=messages, max_tokens=200, stream=True))
    third = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=200)
    # Both earlier calls were reconciled to what they used; the stream used what the first did.
    assert int(third.headers["x-ratelimit-remaining-tokens"]) == 1000 - 2 * used - reserved


def test_refused_requests_carry_the_headers_and_keyless_answers_none(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "one", "--rpm", "1", "--tpm", "100000")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    status, head, _ = post(gateway.port, secret, chat())
    assert status == 200 and head["x-ratelimit-remaining-requests"] == "0"
    assert head["x-ratelimit-limit-tokens"] == "100000"
    assert head["x-ratelimit-reset-requests"].endswith("s")
    status, head, body = post(gateway.port, secret, chat())
    assert status == 429 and 1 <= int(head["retry-after"]) <= 60
    assert body["error"]["message"].startswith("Rate limit reached for requests per minute on key 'one'")
    status, head, _ = post(gateway.port, MASTER, chat())
    assert status == 200 and not any(name.startswith("x-ratelimit") for name in head)
    # Concurrency on the same key after the window is spent: every one refused, none upstream.
    upstream.clear()
    assert statuses(in_parallel([lambda: post(gateway.port, secret, chat())] * 5)) == [429] * 5
    assert upstream.requests() == []


def test_the_messages_endpoint_is_limited_in_anthropic_shape(start_gateway, upstream, tmp_path):
    import anthropic

    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "claude-code", "--rpm", "2")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    client = anthropic.Anthropic(base_url=gateway.base, api_key=secret, max_retries=0)
    ask = {"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
    raw = client.messages.with_raw_response.create(**ask)
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    client.messages.create(**ask)
    upstream.clear()
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(**ask)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert upstream.requests() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers is Linux-only")
def test_a_worker_killed_with_requests_in_flight_does_not_hold_their_slots(start_gateway, upstream, tmp_path):
    # Only the worker that took an in-flight slot gives it back: a worker killed (kill -9, the OOM
    # killer) with two requests of a max_parallel = 2 key in flight locked that key out for good,
    # in every worker, until the whole server restarted.
    import os
    import signal
    import threading

    from test_workers import alive, workers_of

    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "pair", "--max-parallel", "2")
    gateway = start_keyed(start_gateway, upstream, db, args=["--workers", "2"])
    ready(gateway, secret)
    slow = {"x-mock-fault": "slow-first-byte=3000"}
    threads = [threading.Thread(target=lambda: post(gateway.port, secret, chat(), headers=slow)) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(upstream.requests()) >= 2, 5)  # both in flight, wherever they are
    assert post(gateway.port, secret, chat())[0] == 429  # the cap holds meanwhile
    victims = workers_of(gateway.pid)
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(10)
    assert wait_until(lambda: not any(alive(pid) for pid in victims) and len(workers_of(gateway.pid)) == 2, 20)
    assert wait_until(lambda: all(f"worker {pid} ready" in gateway.stderr for pid in workers_of(gateway.pid)), 20)
    assert statuses(burst(gateway.port, secret, 2)) == [200, 200]
