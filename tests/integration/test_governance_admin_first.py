"""The first key through the admin API: a gateway started with a master key but no database and no
``[governance]`` section answers ``/admin/keys``, ``/admin/teams`` and ``/admin/usage`` as if the
database existed and were empty (reads create no file, bad input is refused and creates nothing),
and its first write creates the database: from then on it behaves as if it had started with it,
in every worker of ``--workers 2`` within the documented bound."""

import http.client
import json

import openai
import pytest

from governance_helpers import MASTER, PICKUP_BOUND, admin, burst, chat, post, statuses, unkeyed_config
from harness import wait_until


def start(start_gateway, upstream, db, master=MASTER, args=()):
    env = {"ALLOY_DB": str(db)}
    if master is not None:
        env["ALLOY_MASTER_KEY"] = master
    return start_gateway(config=unkeyed_config(upstream), env=env, args=args)


def test_reads_and_refusals_before_the_first_key_create_nothing(start_gateway, upstream, tmp_path):
    db = tmp_path / "later" / "alloy.db"
    gateway = start(start_gateway, upstream, db)
    assert admin(gateway.port, "GET", "/admin/keys") == (200, {"object": "list", "data": []})
    assert admin(gateway.port, "GET", "/admin/teams") == (200, {"object": "list", "data": []})
    assert admin(gateway.port, "GET", "/admin/usage?by=team") == (200, {"object": "list", "by": "team", "data": []})
    refused = [
        ("GET", "/admin/keys/nobody", None, 404),
        ("PATCH", "/admin/keys/nobody", {"rpm": 5}, 404),
        ("DELETE", "/admin/teams/nobody", None, 404),
        ("POST", "/admin/keys/nobody/rotate", None, 404),
        ("POST", "/admin/keys", {"name": "x", "colour": "red"}, 400),
        ("POST", "/admin/keys", {"name": "x", "rpm": -1}, 400),
        ("POST", "/admin/keys", {"name": "x", "team": "ghosts"}, 400),  # no team exists yet
        ("POST", "/admin/keys", b"{not json", 400),
        ("POST", "/admin/keys", b'{"name": "x", "rpm": 5, "rpm": 500}', 400),  # which one was meant?
        ("POST", "/admin/keys", b'{"name": "x", "metadata": {"a": 1, "a": 2}}', 400),
        ("POST", "/admin/keys", b'{"name": "x", "metadata": {"a": ' + b"[" * 1000 + b"]" * 1000 + b"}}", 400),
        ("POST", "/admin/teams", {"budget": 1e12, "name": "t"}, 400),
        ("GET", "/admin/usage?by=colour", None, 400),
        ("GET", "/admin/usage?key=nobody", None, 404),
        ("GET", "/admin/usage?by=model&team=nobody", None, 404),
        ("PUT", "/admin/keys", None, 405),
    ]
    for method, path, body, expected in refused:
        status, answer = admin(gateway.port, method, path, body)
        assert status == expected, (method, path, answer)
        assert answer["error"]["message"], answer
    status, answer = admin(gateway.port, "POST", "/admin/keys", {"name": "x", "team": "ghosts"})
    assert answer["error"]["message"].startswith("no team named 'ghosts'")
    assert admin(gateway.port, "GET", "/admin/keys", key="sk-wrong")[0] == 401
    assert not db.exists() and not db.parent.exists()  # nothing read or refused made a file
    # Still a gateway without keys: the master key is what /v1/ takes.
    assert post(gateway.port, MASTER, chat())[0] == 200
    assert post(gateway.port, None, chat())[0] == 401


def test_the_first_key_made_over_http_works_at_once(start_gateway, upstream, tmp_path):
    db = tmp_path / "later" / "alloy.db"
    gateway = start(start_gateway, upstream, db)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    body = json.dumps({"name": "first", "rpm": 2, "models": ["gpt-4o*"]})
    connection.request("POST", "/admin/keys", body, {"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    response = connection.getresponse()
    status, created = response.status, json.loads(response.read())
    connection.close()
    assert status == 201, created
    assert created["name"] == "first" and created["key"].startswith("sk-alloy-")
    assert response.getheader("cache-control") == "no-store"  # the secret, shown this once, kept by no cache
    assert db.exists()
    upstream.clear()
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=created["key"], max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    with pytest.raises(openai.NotFoundError):  # the key's model list applies
        client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):  # its rpm of 2 applies
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base + "/v1", api_key="sk-alloy-wrong", max_retries=0).models.list()
    assert post(gateway.port, MASTER, chat())[0] == 200  # the master key is never limited
    assert len(upstream.requests()) == 3  # two keyed calls and the master key's; no refusal went
    # The rest of the admin API is governance's own now: teams, listing, the ledger.
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "research", "rpm": 100})[0] == 201
    assert admin(gateway.port, "PATCH", "/admin/keys/first", {"team": "research"})[0] == 200
    assert [(k["name"], k["team"]) for k in admin(gateway.port, "GET", "/admin/keys")[1]["data"]] == [("first", "research")]
    # The usage handler hands the ledger's rows to its writer thread, which writes them a moment later.
    usage_of = lambda: {row["key"]: row for row in admin(gateway.port, "GET", "/admin/usage?by=key")[1]["data"]}  # noqa: E731
    assert wait_until(lambda: usage_of().get("first", {}).get("requests") == 4, timeout=PICKUP_BOUND), usage_of()
    assert usage_of()["first"]["refused"] == 2  # two served; the 404 and the 429 refused
    assert "the admin API created the keys database" in gateway.stderr


def test_without_a_master_key_the_admin_api_stays_closed(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start(start_gateway, upstream, db, master=None)
    for method, path, body in (("GET", "/admin/keys", None), ("POST", "/admin/keys", {"name": "x"}), ("POST", "/admin/teams", {"name": "t"})):
        status, answer = admin(gateway.port, method, path, body)
        assert status == 403, answer
        assert "master key" in answer["error"]["message"]
    assert not db.exists()
    assert post(gateway.port, None, chat())[0] == 200  # open, as without governance


def test_a_key_made_through_one_worker_works_in_the_other(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start(start_gateway, upstream, db, args=["--workers", "2"])
    status, created = admin(gateway.port, "POST", "/admin/keys", {"name": "both", "rpm": 4})
    assert status == 201, created
    secret = created["key"]
    # Whichever worker answers knows the key: a path that routes nowhere is 404 once the key is
    # known (401 before), and counts nothing against its rpm. Each probe is a new connection, which
    # the kernel gives either worker: 24 in a row all reach the same one once in 8 million.
    probe = lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0]  # noqa: E731
    assert wait_until(lambda: all(probe() == 404 for _ in range(24)), timeout=PICKUP_BOUND), gateway.stderr
    upstream.clear()
    results = burst(gateway.port, secret, 10)
    assert statuses(results) == [200] * 4 + [429] * 6  # one limit for the server, not one per worker
    assert len(upstream.requests()) == 4
