"""Limits shared between two gateway processes (two ports, one database file) through a real
``redis-server``: exact under concurrent load spread over both; Redis killed mid-load (no request
hangs, fail open keeps serving with local limits, fail closed refuses keyed requests with 503, each
said once in the log) and restarted (sharing resumes by itself)."""

import re
import threading
import time

import pytest

from governance_helpers import MASTER, chat, create_key, keyed_config, post, statuses
from harness import in_parallel, wait_until

IO_TIMEOUT = 10.0  # a request that takes longer than this has hung


def start_pair(start_gateway, upstream, db, redis_server, fail_mode="open"):
    extra = f"""
        redis_url = "{redis_server.url}"
        redis_timeout = 0.25
        fail_mode = "{fail_mode}"
        """
    config = keyed_config(upstream, db, extra)
    # keyed_config ends with the [governance] table, so the lines above land in it.
    return [start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER}) for _ in range(2)]


def ready(gateways, secret):
    for gateway in gateways:
        wait_until(lambda g=gateway: post(g.port, secret, chat(), path="/v1/nothing")[0] != 401, timeout=5)


def test_two_gateways_share_one_limit(start_gateway, upstream, redis_server, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "shared", "--rpm", "9")
    gateways = start_pair(start_gateway, upstream, db, redis_server)
    ready(gateways, secret)
    upstream.clear()
    calls = [lambda g=g: post(g.port, secret, chat()) for g in gateways] * 10
    results = in_parallel(calls)
    assert statuses(results) == [200] * 9 + [429] * 11
    assert len(upstream.requests()) == 9
    remaining = sorted(int(head["x-ratelimit-remaining-requests"]) for status, head, _ in results if status == 200)
    assert remaining == list(range(9))  # one count, whichever gateway answered
    refused = [head for status, head, _ in results if status == 429]
    assert all(int(head["retry-after"]) >= 1 and head["x-ratelimit-remaining-requests"] == "0" for head in refused)
    # The window resets within its minute (a refusal once read the time from the wrong field: 57 years)
    assert all(0 < reset_seconds(head["x-ratelimit-reset-requests"]) <= 60 for head in refused), refused[0]


def reset_seconds(value):
    """OpenAI's duration format of x-ratelimit-reset-*: "1m0s", "58s", "250ms"."""
    found = re.fullmatch(r"(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?", value)
    assert found and value, value
    minutes, seconds, millis = found.groups()
    return int(minutes or 0) * 60 + float(seconds or 0) + int(millis or 0) / 1000


def load(gateway, secret, stop, outcomes):
    """Requests one after another until told to stop, recording (status, seconds taken)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            status = post(gateway.port, secret, chat())[0]
        except OSError as error:  # a hang ends in the client's timeout: recorded as a failure
            status = repr(error)
        outcomes.append((status, time.monotonic() - started))


def test_redis_killed_mid_load_fail_open_then_recovered(start_gateway, upstream, redis_server, tmp_path):
    db = tmp_path / "alloy.db"
    _, busy = create_key(db, "busy", "--rpm", "100000")
    gateways = start_pair(start_gateway, upstream, db, redis_server)
    ready(gateways, busy)
    stop, outcomes = threading.Event(), []
    threads = [threading.Thread(target=load, args=(g, busy, stop, outcomes)) for g in gateways for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(outcomes) > 40, timeout=IO_TIMEOUT)
        redis_server.kill()
        seen = len(outcomes)
        wait_until(lambda: len(outcomes) > seen + 80, timeout=IO_TIMEOUT)  # served on, with local limits
        redis_server.restart()
        seen = len(outcomes)
        wait_until(lambda: len(outcomes) > seen + 40, timeout=IO_TIMEOUT)
    finally:
        stop.set()
        for thread in threads:
            thread.join(IO_TIMEOUT + 5)
    assert {status for status, _ in outcomes} == {200}  # fail open: every request served
    assert max(seconds for _, seconds in outcomes) < IO_TIMEOUT  # and none hung
    for gateway in gateways:
        assert gateway.stderr.count("Redis at redis://127.0.0.1") >= 1
        assert gateway.stderr.count("failed (") <= 2  # said once per outage, not per request
    # Sharing resumes by itself: a fresh limit holds across both gateways again.
    _, shared = create_key(db, "after", "--rpm", "5")
    ready(gateways, shared)
    wait_until(lambda: all("answers again" in g.stderr for g in gateways), timeout=IO_TIMEOUT)
    results = in_parallel([lambda g=g: post(g.port, shared, chat()) for g in gateways] * 6)
    assert statuses(results) == [200] * 5 + [429] * 7


def test_requests_decided_alone_during_an_outage_count_in_redis_once_it_answers(start_gateway, upstream, redis_server, tmp_path):
    # A network outage (Redis silent, its data kept): this gateway decides alone meanwhile (fail
    # open, its own counters). What it let through must count in Redis's minute when Redis answers
    # again, or the key gets its rpm once per outage on top of what Redis allowed.
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "outage", "--rpm", "10")
    gateway = start_pair(start_gateway, upstream, db, redis_server)[0]
    ready([gateway], secret)
    assert post(gateway.port, secret, chat())[0] == 200  # decided in Redis
    redis_server.pause()
    try:
        alone = in_parallel([lambda: post(gateway.port, secret, chat())] * 30)
    finally:
        redis_server.resume()
    assert statuses(alone) == [200] * 10 + [429] * 20  # this gateway's own rpm, meanwhile
    time.sleep(1.2)  # the gateway's pause before it asks Redis again
    after = in_parallel([lambda: post(gateway.port, secret, chat())] * 30)
    assert statuses(after) == [429] * 30  # the minute's 11 requests are in Redis's count


def test_fail_closed_refuses_keyed_requests_until_redis_is_back(start_gateway, upstream, redis_server, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "strict", "--rpm", "1000")
    gateways = start_pair(start_gateway, upstream, db, redis_server, fail_mode="closed")
    ready(gateways, secret)
    assert post(gateways[0].port, secret, chat())[0] == 200
    redis_server.kill()
    upstream.clear()
    for gateway in gateways:
        started = time.monotonic()
        status, head, body = post(gateway.port, secret, chat())
        assert status == 503 and body["error"]["code"] == "shared_limits_unavailable" and head["retry-after"] == "1"
        assert time.monotonic() - started < IO_TIMEOUT
        assert post(gateway.port, secret, chat())[0] == 503  # decided locally now: no wait for Redis
        assert post(gateway.port, MASTER, chat())[0] == 200  # the master key is not limited
        # The gateway logs before it answers, but its stderr reaches the test through a reader thread.
        assert wait_until(lambda: "refusing keyed requests" in gateway.stderr, timeout=5)
        assert "deciding with local limits" not in gateway.stderr
    assert len(upstream.requests()) == 2  # only the master key's requests went upstream
    redis_server.restart()
    for gateway in gateways:
        wait_until(lambda g=gateway: post(g.port, secret, chat())[0] == 200, timeout=IO_TIMEOUT)
