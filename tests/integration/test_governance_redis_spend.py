"""Spend held in Redis survives a Redis that restarts empty (no persistence): the first decision
after it seeds the key's period spend from the gateway's own ledger, so a spent budget stays spent
and an unspent one keeps counting from what was spent, not from zero."""

import time

import redis

from governance_helpers import MASTER, chat, create_key, key_created_at, keyed_config, ledger_cost, post, shorten_spent_period_to_three_seconds
from harness import wait_until

# $0.10 a token, in and out: a request of the mock costs about a dollar.
PRICES = """
        [governance.prices."gpt-4o"]
        input = 100000
        output = 100000
        """


def start(start_gateway, upstream, db, redis_server):
    extra = f"""
        redis_url = "{redis_server.url}"
        redis_timeout = 0.25
        {PRICES}
        """
    return start_gateway(config=keyed_config(upstream, db, extra), env={"ALLOY_MASTER_KEY": MASTER})


def cost_of(body):
    usage = body["usage"]
    return (usage["prompt_tokens"] + usage["completion_tokens"]) * 0.1


def spend_until_refused(gateway, secret):
    """Requests until the budget refuses one: (USD spent by the answered ones, how many)."""
    spent, answered = 0.0, 0
    while True:
        status, _, body = post(gateway.port, secret, chat(text="one two three"))
        if status != 200:
            assert status == 429 and body["error"]["code"] == "insufficient_quota", body
            return spent, answered
        spent += cost_of(body)
        answered += 1
        assert answered < 10


def spent_budget(start_gateway, upstream, redis_server, db):
    """A gateway sharing its limits through Redis, and a key whose $2.50 budget it spent (the last
    request refused): (gateway, the key's row, its secret, USD spent, requests answered)."""
    row, secret = create_key(db, "capped", "--budget", "2.5")
    gateway = start(start_gateway, upstream, db, redis_server)
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    upstream.clear()
    spent, answered = spend_until_refused(gateway, secret)
    assert answered >= 2 and spent >= 2.5
    return gateway, row, secret, spent, answered


def test_a_spent_budget_stays_spent_after_redis_restarts_empty(start_gateway, upstream, redis_server, tmp_path):
    db = tmp_path / "alloy.db"
    gateway, row, secret, spent, answered = spent_budget(start_gateway, upstream, redis_server, db)
    # What the ledger knows: every answered call, written within flush_interval.
    assert wait_until(lambda: abs(ledger_cost(db) - spent) < 1e-6, timeout=5)
    redis_server.restart()  # empty: nothing was persisted
    client = redis.Redis.from_url(redis_server.url)
    assert client.hget(f"alloy:gov:{row['id']}", "spn") is None
    status, _, body = post(gateway.port, secret, chat(text="one two three"))
    assert status == 429 and body["error"]["code"] == "insufficient_quota", body  # not a fresh budget
    assert len(upstream.requests()) == answered  # the refused ones never went upstream
    assert int(client.hget(f"alloy:gov:{row['id']}", "spn")) == round(spent * 1_000_000_000)  # seeded, nano-USD


def test_spend_keeps_counting_from_the_ledger_after_redis_restarts_empty(start_gateway, upstream, redis_server, tmp_path):
    db = tmp_path / "alloy.db"
    row, secret = create_key(db, "counting", "--budget", "1000")
    gateway = start(start_gateway, upstream, db, redis_server)
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    before = [post(gateway.port, secret, chat(text="one two three")) for _ in range(2)]
    assert [status for status, _, _ in before] == [200, 200]
    spent = sum(cost_of(body) for _, _, body in before)
    assert wait_until(lambda: abs(ledger_cost(db) - spent) < 1e-6, timeout=5)
    redis_server.restart()
    status, _, body = post(gateway.port, secret, chat(text="one two three"))
    assert status == 200
    client = redis.Redis.from_url(redis_server.url)
    # Seeded with the two calls before the restart, then this one's cost added at its release.
    expected = round((spent + cost_of(body)) * 1_000_000_000)
    assert wait_until(lambda: int(client.hget(f"alloy:gov:{row['id']}", "spn") or 0) == expected, timeout=5)


def test_a_budget_spent_through_redis_stays_spent_while_redis_is_down(start_gateway, upstream, redis_server, tmp_path):
    # fail_mode open: with Redis unreachable this server's own counters decide. They once knew
    # nothing of what was spent through Redis, so a spent budget could be spent again in full.
    gateway, _, secret, _, answered = spent_budget(start_gateway, upstream, redis_server, tmp_path / "alloy.db")
    redis_server.kill()
    status, _, body = post(gateway.port, secret, chat(text="one two three"))
    assert status == 429 and body["error"]["code"] == "insufficient_quota", body
    assert len(upstream.requests()) == answered


def test_spend_made_while_redis_was_silent_reaches_it_when_it_answers_again(start_gateway, upstream, redis_server, tmp_path):
    # A network outage, not a restart: Redis keeps its data, and the calls this gateway decided
    # alone meanwhile (fail_mode open) must not be missing from it, or every gateway sharing it
    # would let the budget be spent again by that much.
    db = tmp_path / "alloy.db"
    row, secret = create_key(db, "outage", "--budget", "1000")
    gateway = start(start_gateway, upstream, db, redis_server)
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    client = redis.Redis.from_url(redis_server.url)
    spent_in_redis = lambda: int(client.hget(f"alloy:gov:{row['id']}", "spn") or 0)  # noqa: E731

    status, _, body = post(gateway.port, secret, chat(text="one two three"))
    assert status == 200
    spent = cost_of(body)
    assert wait_until(lambda: spent_in_redis() == round(spent * 1_000_000_000), timeout=5)

    redis_server.pause()
    try:
        for _ in range(2):  # decided by this gateway alone, after redis_timeout
            status, _, body = post(gateway.port, secret, chat(text="four five six seven"))
            assert status == 200
            spent += cost_of(body)
    finally:
        redis_server.resume()
    assert spent_in_redis() < round(spent * 1_000_000_000)  # what Redis knew while it was away

    # Once Redis decides again (after the gateway's pause before retrying it), it is paid what was
    # spent meanwhile, and counts this call as usual.
    def through_redis():
        status, _, body = post(gateway.port, secret, chat(text="eight"))
        assert status == 200
        return body

    time.sleep(1.2)
    spent += cost_of(through_redis())
    assert wait_until(lambda: spent_in_redis() == round(spent * 1_000_000_000), timeout=5), (spent_in_redis(), spent)
    assert wait_until(lambda: abs(ledger_cost(db) - spent) < 1e-6, timeout=5)  # the ledger agrees


def test_a_new_budget_period_counts_what_the_ledger_holds_for_it_through_redis(start_gateway, upstream, redis_server, tmp_path):
    # As with the local counters (test_governance_spend): Redis compared period numbers, which do
    # not compare across lengths, and a key moved from 30 days to 3 seconds started afresh there
    # although what it spent was inside the new period (3 to 6 s after its creation).
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "moved", "--budget", "1.5", "--budget-period", "30d")
    created = key_created_at(db, "moved")
    gateway = start(start_gateway, upstream, db, redis_server)
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    time.sleep(max(0.0, created + 3.1 - time.time()))
    spend_until_refused(gateway, secret)
    shorten_spent_period_to_three_seconds(gateway, db, secret, "moved", created)
