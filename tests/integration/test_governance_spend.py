"""Spend through the running gateway: each request priced from the answer's usage, budgets that
refuse (429 insufficient_quota) before anything goes upstream and reset with their period, the
overshoot bound under concurrent streams, and the ledger read as a person reads it (``alloy usage``
and ``GET /admin/usage``): its totals equal the usage the clients received, to the token, after a
SIGTERM and, up to the flush window, after a ``kill -9``."""

import json
import signal
import time

import openai
import pytest

from governance_helpers import MASTER, admin, alloy, alloy_text, burst, chat, create_key, key_created_at, keyed_config, ledger_cost, post, shorten_spent_period_to_three_seconds, statuses, usage_rows
from harness import in_parallel, wait_until

# $0.10 a token, in and out: a request of the mock costs about a dollar, easy to reason about.
PRICES = """
        [governance.prices."gpt-4o"]
        input = 100000
        output = 100000
        """


def start_keyed(start_gateway, upstream, db, extra=PRICES, flush=None):
    config = keyed_config(upstream, db, extra)
    if flush is not None:
        config = config.replace("flush_interval = 0.1", f"flush_interval = {flush}")
    return start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})


def ready(gateway, secret):
    """Wait until the gateway knows the key: its first answer that is not a 401 (a 404 for a path
    nothing routes, which is one ledger row of that key, an error, not a governance refusal)."""
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] != 401, timeout=5)


def cost_of(usage):
    return (usage["prompt_tokens"] + usage["completion_tokens"]) * 0.1


def test_budget_refuses_before_upstream_then_resets(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "capped", "--budget", "1.5", "--budget-period", "3s")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    upstream.clear()
    spent, answered = 0.0, 0
    while True:
        status, head, body = post(gateway.port, secret, chat(text="one two three"))
        if status != 200:
            break
        answered += 1
        spent += cost_of(body["usage"])
        last = body
        assert answered < 10
    assert status == 429 and body["error"]["code"] == "insufficient_quota" and body["error"]["type"] == "insufficient_quota"
    assert "'capped'" in body["error"]["message"] and 1 <= int(head["retry-after"]) <= 3
    assert spent >= 1.5 > spent - cost_of(last["usage"])  # the last one answered crossed it
    assert len(upstream.requests()) == answered  # the refused request never went upstream
    with pytest.raises(openai.RateLimitError) as refused:
        openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "insufficient_quota"
    # The period ends: the budget is whole again.
    after = []
    wait_until(lambda: after.append(post(gateway.port, secret, chat(text="one two three"))) or after[-1][0] == 200, timeout=8)
    total = spent + cost_of(after[-1][2]["usage"])
    wait_until(lambda: ledger_cost(db) == pytest.approx(total), timeout=5)
    row = usage_rows(db)[0]  # the refused requests are in the ledger as refused, at no cost
    probe = 1  # ready()'s 404
    assert row["requests"] - row["refused"] == answered + 1 + probe and row["refused"] == len(after) - 1 + 2
    assert row["errors"] == row["refused"] + probe


def test_show_and_list_give_what_a_key_and_its_team_spent_this_budget_period(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    alloy(db, "teams", "create", "--name", "research", "--budget", "50", "--budget-period", "1d")
    row, secret = create_key(db, "analyst", "--team", "research", "--budget", "20")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    spent = sum(cost_of(post(gateway.port, secret, chat(text="one two three"))[2]["usage"]) for _ in range(3))
    wait_until(lambda: ledger_cost(db) == pytest.approx(spent), timeout=5)
    status, by_admin = admin(gateway.port, "GET", "/admin/keys/analyst")
    assert status == 200
    for shown in (alloy(db, "keys", "show", "analyst"), by_admin):
        spend = shown["spend"]
        assert spend["spent"] == pytest.approx(spent) and spend["remaining"] == pytest.approx(20 - spent)
        assert spend["period_start"] == row["created_at"]  # the default period, 30 days from creation
    team = alloy(db, "teams", "show", "research")["spend"]
    assert team["spent"] == pytest.approx(spent) and team["remaining"] == pytest.approx(50 - spent)
    assert admin(gateway.port, "GET", "/admin/teams/research")[1]["spend"] == team
    # Listings give each one's spend too: the API, the CLI's JSON and its table.
    assert admin(gateway.port, "GET", "/admin/keys")[1]["data"][0]["spend"] == alloy(db, "keys", "list", "--json")[0]["spend"]
    assert admin(gateway.port, "GET", "/admin/teams")[1]["data"][0]["spend"] == team
    head, line = alloy_text(db, "keys", "list").splitlines()
    assert head.split()[-2:] == ["spent", "revoked_at"] and line.split()[-1] == str(round(spent, 6))


def test_concurrent_streams_overshoot_by_at_most_what_is_in_flight(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "streams", "--budget", "1")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    upstream.clear()
    body = chat(text="one two three", stream=True, stream_options={"include_usage": True})
    # Six streams admitted while nothing was spent yet, held in flight together.
    results = burst(gateway.port, secret, 6, body=body, headers={"x-mock-fault": "slow-first-byte=300"})
    assert statuses(results) == [200] * 6
    in_flight_cost = sum(cost_of(json.loads(line[6:])["usage"]) for _, _, data in results
                         for line in data.decode().splitlines() if line.startswith("data: {") and '"usage":{' in line)  # fmt: skip
    wait_until(lambda: usage_rows(db) and usage_rows(db)[0]["requests"] == 6, timeout=5)
    spent = usage_rows(db)[0]["cost_usd"]
    assert spent == pytest.approx(in_flight_cost)
    assert spent - 1.0 <= in_flight_cost  # the documented bound: what was in flight when it was reached
    status, _, answer = post(gateway.port, secret, body)
    assert status == 429 and answer["error"]["code"] == "insufficient_quota"
    assert len(upstream.requests()) == 6


def test_ledger_totals_equal_the_usage_clients_received_after_sigterm(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, alice = create_key(db, "alice")
    _, bob = create_key(db, "bob")
    # Flushed only at shutdown: every row below is written by the SIGTERM drain.
    gateway = start_keyed(start_gateway, upstream, db, flush=60)
    ready(gateway, alice)
    ready(gateway, bob)
    texts = ["one", "one two", "one two three four", "a b c d e f g h"]
    seen = {"alice": [0, 0, 0.0], "bob": [0, 0, 0.0]}
    jobs = []
    for i in range(24):
        name, secret = ("alice", alice) if i % 2 else ("bob", bob)
        text = texts[i % len(texts)]
        if i % 3 == 0:  # a stream that asked for usage: the client sees it in the last chunk
            body = chat(text=text, stream=True, stream_options={"include_usage": True}, user=f"u{i % 4}")
        else:
            body = chat(text=text, user=f"u{i % 4}")
        jobs.append((name, secret, body))
    results = in_parallel([lambda s=secret, b=body: post(gateway.port, s, b, headers={"x-alloy-tags": "load"}) for _, secret, body in jobs])
    for (name, _, _), (status, _, data) in zip(jobs, results):
        assert status == 200
        if isinstance(data, dict):
            usage = data["usage"]
        else:
            usage = [json.loads(line[6:]) for line in data.decode().splitlines() if '"usage":{' in line][-1]["usage"]
        seen[name][0] += usage["prompt_tokens"]
        seen[name][1] += usage["completion_tokens"]
        seen[name][2] += cost_of(usage)
    # A stream without include_usage: the client sees no usage, the ledger still counts it (the
    # same text as a JSON answer, whose usage the client does see).
    status, _, plain = post(gateway.port, alice, chat(text="five words in this one"))
    client_stream = post(gateway.port, alice, chat(text="five words in this one", stream=True))
    assert status == 200 and client_stream[0] == 200 and b'"usage"' not in client_stream[2]
    for _ in range(2):
        seen["alice"][0] += plain["usage"]["prompt_tokens"]
        seen["alice"][1] += plain["usage"]["completion_tokens"]
        seen["alice"][2] += cost_of(plain["usage"])
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(20) == 0
    rows = {row["key"]: row for row in usage_rows(db)}
    for name in ("alice", "bob"):
        assert (rows[name]["tokens_in"], rows[name]["tokens_out"]) == tuple(seen[name][:2])
        assert rows[name]["cost_usd"] == pytest.approx(seen[name][2])
    assert rows["alice"]["requests"] == 14 + 1 and rows["bob"]["requests"] == 12 + 1  # + ready()'s 404
    assert rows["alice"]["errors"] == rows["bob"]["errors"] == 1
    by_user = {row["user"]: row["requests"] for row in usage_rows(db, by="user")}
    assert by_user == {"u0": 6, "u1": 6, "u2": 6, "u3": 6, None: 2 + 2}
    assert {row["tags"]: row["requests"] for row in usage_rows(db, by="tags")} == {"load": 24, None: 2 + 2}
    assert usage_rows(db, by="model")[0]["model"] == "gpt-4o"


def test_kill_9_loses_at_most_the_flush_window(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_keyed(start_gateway, upstream, db, flush=0.2)
    assert statuses(burst(gateway.port, MASTER, 10)) == [200] * 10
    time.sleep(0.2 * 3)  # past the flush window (and the write of the batch it handed over)
    gateway.signal(signal.SIGKILL)
    gateway.wait(10)
    rows = usage_rows(db)
    assert rows[0]["key"] is None and rows[0]["requests"] == 10  # the master key's requests, all of them


def test_admin_usage_groups_and_filters(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_keyed(start_gateway, upstream, db)
    status, created = admin(gateway.port, "POST", "/admin/keys", {"name": "carol", "metadata": {"owner": "c"}})
    assert status == 201
    ready(gateway, created["key"])
    assert post(gateway.port, created["key"], chat())[0] == 200
    assert post(gateway.port, MASTER, chat())[0] == 200
    status, usage = admin(gateway.port, "GET", "/admin/usage?by=key&since=1h")
    assert status == 200 and usage["by"] == "key"
    wait_until(lambda: len(admin(gateway.port, "GET", "/admin/usage")[1]["data"]) == 2, timeout=5)
    status, usage = admin(gateway.port, "GET", "/admin/usage?key=carol")
    assert [row["key"] for row in usage["data"]] == ["carol"] and usage["data"][0]["requests"] == 1 + 1  # + ready()'s 404
    status, usage = admin(gateway.port, "GET", f"/admin/usage?by=day&since={time.strftime('%Y-%m-%d')}T00:00:00Z")
    assert usage["data"][0]["day"] == time.strftime("%Y-%m-%d", time.gmtime()) and usage["data"][0]["requests"] == 3
    assert admin(gateway.port, "GET", "/admin/usage?by=colour")[0] == 400
    assert admin(gateway.port, "GET", "/admin/usage?since=yesterday")[0] == 400
    assert admin(gateway.port, "GET", "/admin/usage?limit=3")[0] == 400
    assert admin(gateway.port, "POST", "/admin/usage")[0] == 405
    # A key or team no one has and no row records is a typo, not one that spent nothing.
    status, body = admin(gateway.port, "GET", "/admin/usage?key=carrol")
    assert status == 404 and body["error"]["message"].startswith("no key with the id or name 'carrol'")
    assert admin(gateway.port, "GET", "/admin/usage?by=model&team=nobody")[0] == 404
    refused = alloy(db, "usage", "--key", "carrol", expect=1)
    assert "no key with the id or name 'carrol'" in refused.stderr and not refused.stdout
    # A name the key no longer has still finds its rows (the ledger remembers it).
    assert admin(gateway.port, "PATCH", "/admin/keys/carol", {"name": "caroline"})[0] == 200
    status, usage = admin(gateway.port, "GET", "/admin/usage?key=carol")
    assert status == 200 and [(row["key"], row["requests"]) for row in usage["data"]] == [("caroline", 2)]


def test_an_answer_from_the_response_cache_costs_nothing(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "cached", "--tpm", "5000", "--budget", "100")
    gateway = start_keyed(start_gateway, upstream, db, extra=PRICES + "\n        [cache]\n        enabled = true\n")
    ready(gateway, secret)
    upstream.clear()
    body = chat(text="one two three", max_tokens=1000)
    status, head, first = post(gateway.port, secret, body)
    assert status == 200 and head["x-alloy-cache"] == "miss"
    status, head, _ = post(gateway.port, secret, body)
    assert status == 200 and head["x-alloy-cache"] == "hit"
    reserved = 5000 - int(head["x-ratelimit-remaining-tokens"]) - first["usage"]["total_tokens"]
    status, head, _ = post(gateway.port, secret, body)
    # The hit gave back all it reserved: only the first answer's real usage and this reservation count.
    assert int(head["x-ratelimit-remaining-tokens"]) == 5000 - first["usage"]["total_tokens"] - reserved
    assert len(upstream.requests()) == 1
    wait_until(lambda: usage_rows(db) and usage_rows(db)[0]["requests"] == 3, timeout=5)
    assert usage_rows(db)[0]["cost_usd"] == pytest.approx(cost_of(first["usage"]))


def test_a_native_messages_stream_counts_the_input_tokens_of_its_message_start(start_gateway, tmp_path):
    # Anthropic's documented stream gives input tokens in message_start only; message_delta's usage
    # may carry the output tokens alone. Both count, as through the translated chat route.
    from scripted_upstream import ScriptedUpstream, answer

    upstream = ScriptedUpstream()
    try:
        db = tmp_path / "alloy.db"
        _, secret = create_key(db, "claude-user")
        gateway = start_gateway(config=keyed_config(upstream, db, f"""
            [governance.prices."claude-x"]
            input = 3
            output = 15
            [providers.anthropic]
            base_url = "{upstream.base}"
            api_key = "sk-ant-provider"
            """))  # fmt: skip
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 5000, "cache_read_input_tokens": 0, "output_tokens": 1}}  # fmt: skip
        events = [("message_start", {"type": "message_start", "message": message}),
                  ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                  ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
                  ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                  ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}),
                  ("message_stop", {"type": "message_stop"})]  # fmt: skip
        stream = b"".join(b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(data).encode()) for name, data in events)
        body = {"model": "anthropic/claude-x", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        status, _, data = post(gateway.port, secret, body, path="/v1/messages", headers=answer(stream, "text/event-stream"))
        assert status == 200 and b"message_stop" in data
        wait_until(lambda: usage_rows(db) and usage_rows(db)[0]["requests"] == 1, timeout=5)
        [row] = usage_rows(db)
        assert (row["tokens_in"], row["tokens_out"]) == (5000, 15)
        assert row["cost_usd"] == pytest.approx((5000 * 3 + 15 * 15) / 1e6)
    finally:
        upstream.close()


def test_requests_cheaper_than_a_micro_dollar_are_charged_to_the_budget(start_gateway, upstream, tmp_path):
    # The live counters kept spend in whole micro-dollars, each request's cost rounded on its own:
    # an embedding of a few tokens ($2e-7) added nothing, and a key with a $0.000001 budget spent
    # six times it while the admin API said 0 remained; a $1.35e-6 call counted as $1e-6.
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "frugal", "--budget", "0.000001", "--budget-period", "30d")
    prices = """
        [governance.prices."text-embedding-3-small"]
        input = 0.02
        output = 0
        """
    gateway = start_keyed(start_gateway, upstream, db, extra=prices)
    ready(gateway, secret)
    body = {"model": "text-embedding-3-small", "input": "hello world this is a test of the budget"}
    answered = 0
    for _ in range(40):
        status, _, answer = post(gateway.port, secret, body, path="/v1/embeddings")
        if status != 200:
            break
        answered += 1
        each = answer["usage"]["prompt_tokens"] * 0.02 / 1_000_000
    assert status == 429 and answer["error"]["code"] == "insufficient_quota"
    assert answered * each >= 0.000001 > (answered - 1) * each  # refused once the spend reached it


def test_a_new_budget_period_counts_what_the_ledger_holds_for_it(start_gateway, upstream, tmp_path):
    # The counters compared period numbers, and numbers of two lengths do not compare: a key moved
    # from 30 days to 3 seconds started a fresh budget although what it spent was inside the new
    # period (its second: 3 to 6 s after the key's creation, period 1 against period 0).
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "moved", "--budget", "1.5", "--budget-period", "30d")
    created = key_created_at(db, "moved")
    gateway = start_keyed(start_gateway, upstream, db)
    ready(gateway, secret)
    time.sleep(max(0.0, created + 3.1 - time.time()))
    while post(gateway.port, secret, chat(text="one two three"))[0] == 200:
        pass
    shorten_spent_period_to_three_seconds(gateway, db, secret, "moved", created)
