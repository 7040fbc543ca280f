"""Refused requests in the ledger: a bad or missing key (401, also on the Messages endpoint), a model
the key may not use (404), a rate limit and a spent budget (429), all answered before anything went
upstream, are ledger rows with zero tokens and zero cost, shown by ``alloy usage`` (``refused``) and
``/admin/usage``; a flood of refusals is counted in a few rows, not one row per request."""

import json
import sqlite3

import anthropic
import pytest

from governance_helpers import MASTER, admin, burst, chat, create_key, keyed_config, post, usage_rows
from harness import wait_until

PRICES = """
        [governance.prices."gpt-4o"]
        input = 100000
        output = 100000
        """


def test_refusals_are_in_the_ledger(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, capped = create_key(db, "capped", "--models", "gpt-4o*", "--rpm", "2")
    _, broke = create_key(db, "broke", "--budget", "0.01")
    gateway = start_gateway(config=keyed_config(upstream, db, PRICES), env={"ALLOY_MASTER_KEY": MASTER})
    port = gateway.port
    wait_until(lambda: post(port, broke, chat(), path="/v1/nothing")[0] != 401, timeout=5)
    upstream.clear()
    assert [post(port, "sk-alloy-wrong", chat())[0] for _ in range(3)] == [401] * 3
    assert post(port, None, chat())[0] == 401  # no key at all
    form = {"content-type": "application/x-www-form-urlencoded"}  # curl -d's type, a JSON body all the same
    assert post(port, "sk-alloy-wrong", chat(), headers=form)[0] == 401
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.base, api_key="sk-alloy-nope", max_retries=0).messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert post(port, capped, chat("o3"))[0] == 404  # a model the key may not use
    assert [post(port, capped, chat(), headers={"x-alloy-tags": "batch"})[0] for _ in range(3)] == [200, 200, 429]
    assert post(port, broke, chat())[0] == 200  # spends about a dollar of its cent
    status, _, body = post(port, broke, chat(user="end-user-7"))
    assert status == 429 and body["error"]["code"] == "insufficient_quota"
    assert len(upstream.requests()) == 3  # nothing refused went upstream

    expected = {
        200: {"requests": 3, "errors": 0, "refused": 0},
        401: {"requests": 6, "errors": 6, "refused": 6},
        # the model the key may not use, and the readiness probe's /v1/nothing: routing refused it
        # after the key was known (a row too, an error but not a governance refusal)
        404: {"requests": 2, "errors": 2, "refused": 1},
        429: {"requests": 2, "errors": 2, "refused": 2},
    }

    def by_status():
        return {row["status"]: {k: row[k] for k in ("requests", "errors", "refused")} for row in usage_rows(db, by="status")}

    assert wait_until(lambda: by_status() == expected, timeout=5), by_status()
    keys = {row["key"]: row for row in usage_rows(db, by="key")}
    assert (keys["capped"]["requests"], keys["capped"]["refused"]) == (4, 2)
    assert (keys["broke"]["requests"], keys["broke"]["refused"]) == (3, 1)
    assert (keys[None]["requests"], keys[None]["refused"], keys[None]["tokens_in"], keys[None]["cost_usd"]) == (6, 6, 0, 0)
    # The refused requests' attribution: the tags and the body's user, the path and the model asked.
    assert {row["tags"]: row["requests"] for row in usage_rows(db, by="tags", key="capped")} == {"batch": 3, None: 1}
    assert [row["refused"] for row in usage_rows(db, by="user") if row["user"] == "end-user-7"] == [1]
    with sqlite3.connect(db) as connection:
        refused = connection.execute(
            "SELECT status, error, endpoint, model, requests, tokens_in, cost FROM ledger WHERE status >= 400 ORDER BY status, endpoint"
        ).fetchall()
    assert (401, "invalid_api_key", "/v1/messages", "gpt-4o", 1, 0, 0.0) in refused
    assert (401, "invalid_api_key", "/v1/chat/completions", "gpt-4o", 5, 0, 0.0) in refused
    assert (404, "model_not_found", "/v1/chat/completions", "o3", 1, 0, 0.0) in refused
    assert {(row[0], row[1]) for row in refused} == {
        (401, "invalid_api_key"), (404, "model_not_found"), (404, "not_found"), (429, "rate_limit_exceeded"),
        (429, "insufficient_quota"),
    }  # fmt: skip
    assert (404, "not_found", "/v1/nothing", "gpt-4o", 1, 0, 0.0) in refused  # routing's refusal, keyed
    status, body = admin(port, "GET", "/admin/usage?by=status")
    assert status == 200 and {row["status"]: row["refused"] for row in body["data"]} == {200: 0, 401: 6, 404: 1, 429: 2}


def test_a_flood_of_bad_keys_is_a_few_rows(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    create_key(db, "someone")
    gateway = start_gateway(config=keyed_config(upstream, db), env={"ALLOY_MASTER_KEY": MASTER})
    for _ in range(3):
        assert sorted({status for status, _, _ in burst(gateway.port, "sk-alloy-guess", 40)}) == [401]

    def counted():
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT count(*), coalesce(sum(requests), 0) FROM ledger WHERE status = 401").fetchone()

    assert wait_until(lambda: counted()[1] == 120, timeout=5), counted()
    assert counted()[0] <= 12  # one row per flush (0.1 s here), however many requests
    assert upstream.requests() == []


def test_a_keyed_request_nothing_routes_is_in_the_ledger_under_its_key(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "router-test")
    gateway = start_gateway(config=keyed_config(upstream, db, PRICES), env={"ALLOY_MASTER_KEY": MASTER})
    wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=5)
    statuses = [
        post(gateway.port, secret, chat(), path="/v1/nothing")[0],  # not on the passthrough allow-list
        post(gateway.port, secret, {"messages": []})[0],  # no model
    ]
    assert statuses == [404, 400]
    rows = lambda: {row["status"]: row["requests"] for row in usage_rows(db, by="status", key="router-test")}  # noqa: E731
    assert wait_until(lambda: rows() == {200: 1, 404: 1, 400: 1}, timeout=5), rows()


def test_a_refused_keyed_request_is_logged_with_its_key_and_model(start_gateway, upstream, tmp_path):
    # The access log's line for a key's 429 named neither: "why is my key refused" had no answer there.
    db = tmp_path / "alloy.db"
    _, capped = create_key(db, "capped-log", "--rpm", "1")
    log = tmp_path / "access.log"
    gateway = start_gateway(config=keyed_config(upstream, db, f'\n[log]\npath = "{log}"\n'), env={"ALLOY_MASTER_KEY": MASTER})
    wait_until(lambda: post(gateway.port, capped, chat())[0] == 200, timeout=5)
    status, _, body = post(gateway.port, capped, chat(), headers={"x-request-id": "over-the-limit"})
    assert status == 429, body

    def refused_line():
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return next((line for line in lines if line.get("request_id") == "over-the-limit"), None)

    assert wait_until(lambda: refused_line() is not None, timeout=5)
    line = refused_line()
    assert (line["status"], line["key"], line["model"], line["error_code"]) == (429, "capped-log", "gpt-4o", "rate_limit_exceeded")
