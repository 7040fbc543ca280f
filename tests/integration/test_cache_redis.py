"""The response cache on a real ``redis-server`` shared by two gateway processes: an answer one
stores, the other replays (streams and JSON crossing over too); ``DELETE /admin/cache`` on one
empties it for both; and Redis killed under load: every request still succeeds, as a miss, none
stalls (the client's timeout would fail it), and hits come back once Redis does.
"""

import json
import threading
import urllib.request
import uuid

import openai
import pytest

from harness import assert_no_crash_logged, wait_until

MASTER = "master-key"


def config(mock, redis):
    return f"""
    [server]
    master_key = "{MASTER}"

    [providers.openai]
    base_url = "{mock.base}/v1"
    api_key = "env:K"

    [cache]
    enabled = true
    backend = "redis"
    redis_url = "env:CACHE_REDIS"
    redis_retry = 0.5

    [[models]]
    name = "chat"
    provider = "openai"
    model = "gpt-4o-mini"
    """


@pytest.fixture
def pair(start_gateway, upstream, redis_server):
    env = {"K": "sk-provider", "CACHE_REDIS": redis_server.url}
    gateways = [start_gateway(config=config(upstream, redis_server), env=env) for _ in range(2)]
    yield gateways
    for gateway in gateways:
        assert_no_crash_logged(gateway)


def client(gateway, timeout=10):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=MASTER, max_retries=0, timeout=timeout)


def chat(gateway, text, timeout=10, **params):
    raw = client(gateway, timeout).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": text}], **params
    )
    return raw.headers, raw.parse()


def upstream_chats(mock):
    return [r for r in mock.requests() if r["path"] == "/v1/chat/completions"]


def test_two_gateways_share_one_cache(pair, upstream):
    first, second = pair
    text = f"shared {uuid.uuid4().hex}"
    stored_headers, stored = chat(first, text)
    replayed_headers, replayed = chat(second, text)
    assert (stored_headers["x-alloy-cache"], replayed_headers["x-alloy-cache"]) == ("miss", "hit")
    assert replayed.model_dump() == stored.model_dump()
    # a stream stored by one answers a plain request at the other, assembled with its usage
    text = f"streamed {uuid.uuid4().hex}"
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client(first).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": text}], stream=True, stream_options={"include_usage": True}
        )
        if chunk.choices
    )
    headers, completion = chat(second, text)
    assert headers["x-alloy-cache"] == "hit"
    assert completion.choices[0].message.content == streamed and completion.usage.total_tokens > 0
    assert len(upstream_chats(upstream)) == 2


def test_delete_on_one_gateway_empties_the_cache_for_both(pair, upstream):
    first, second = pair
    text = f"deleted {uuid.uuid4().hex}"
    chat(first, text)
    request = urllib.request.Request(second.base + "/admin/cache", method="DELETE", headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["deleted"] >= 1
    assert chat(first, text)[0]["x-alloy-cache"] == "miss"
    assert len(upstream_chats(upstream)) == 2


def test_redis_killed_mid_load_means_misses_not_errors(pair, upstream, redis_server):
    texts = [f"load {uuid.uuid4().hex}" for _ in range(4)]
    outcomes, failures = [], []
    killed = threading.Event()

    def load(gateway, rounds):
        for turn in range(rounds):
            try:
                # a stall would outlast the client's timeout and fail the request
                headers, completion = chat(gateway, texts[turn % len(texts)], timeout=5)
                outcomes.append((killed.is_set(), headers["x-alloy-cache"]))
                assert completion.choices[0].message.content.startswith("echo: ")
            except Exception as error:  # noqa: BLE001 - every failure is reported below
                failures.append(repr(error))

    threads = [threading.Thread(target=load, args=(gateway, 40)) for gateway in pair for _ in range(2)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(outcomes) >= 40, timeout=30)
    redis_server.kill()
    killed.set()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(outcomes) == 160
    assert {state for after, state in outcomes if not after} <= {"miss", "hit"}
    assert any(state == "hit" for after, state in outcomes if not after)
    assert {state for after, state in outcomes if after} <= {"miss", "hit"}
    assert any(state == "miss" for after, state in outcomes if after)
    # Redis back (empty): after the circuit's pause, answers are stored and replayed again
    redis_server.restart()
    text = f"after {uuid.uuid4().hex}"
    assert wait_until(lambda: chat(pair[0], text)[0]["x-alloy-cache"] == "hit", timeout=10)


def test_emptying_a_big_redis_cache_does_not_stop_other_requests(pair, redis_server):
    # SCAN walks the whole keyspace: with many keys the deletion takes a while. It once ran on the
    # event loop, and every request of the gateway (even /health) waited for it.
    import redis

    filler = redis.Redis.from_url(redis_server.url)
    for start in range(0, 1_000_000, 20_000):
        filler.mset({f"other:{i}": b"x" for i in range(start, start + 20_000)})
    gateway = pair[0]
    finished = {}

    def delete():
        request = urllib.request.Request(gateway.base + "/admin/cache", method="DELETE", headers={"authorization": f"Bearer {MASTER}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            finished["delete"] = (response.status, json.load(response))

    deleting = threading.Thread(target=delete)
    deleting.start()
    answered = 0
    while deleting.is_alive() and answered < 20:
        with urllib.request.urlopen(gateway.base + "/health", timeout=60) as response:
            assert response.status == 200
        if deleting.is_alive():
            answered += 1  # answered while the deletion was still under way
    deleting.join(60)
    assert finished["delete"] == (200, {"deleted": 0, "namespace": None})
    assert answered == 20, f"{answered} requests answered while the cache was being emptied"
    assert filler.dbsize() == 1_000_000  # only the cache's own keys are Alloy's to delete
