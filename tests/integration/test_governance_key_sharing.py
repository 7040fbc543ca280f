"""Keys shared across hosts: two gateway processes, each with its own SQLite file, one real
``redis-server``. A key created on A's file (``alloy keys create``) is accepted by B; one created
through B's admin API is accepted by A; a key revoked through A's admin API is refused by B; all
within the documented bound (two sync intervals and two Redis round trips). Redis holds the keys'
hashes, never a secret, and with Redis gone each gateway keeps the keys it has."""

import openai
import pytest
import redis

from governance_helpers import MASTER, admin, alloy, chat, create_key, keyed_config, post
from harness import wait_until

SHARING_BOUND = 3.0  # seconds; documented: 2 x sync_interval (0.1 s here) + two Redis round trips


def start_host(start_gateway, upstream, db, redis_server):
    extra = f'redis_url = "{redis_server.url}"'  # keyed_config ends with [governance]: it lands there
    return start_gateway(config=keyed_config(upstream, db, extra), env={"ALLOY_MASTER_KEY": MASTER})


def accepted(gateway, secret):
    return post(gateway.port, secret, chat())[0] == 200


def test_keys_reach_every_gateway_sharing_the_redis(start_gateway, upstream, redis_server, tmp_path):
    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    host_a = start_host(start_gateway, upstream, db_a, redis_server)
    host_b = start_host(start_gateway, upstream, db_b, redis_server)
    row, secret = create_key(db_a, "roaming", "--rpm", "100")
    assert wait_until(lambda: accepted(host_b, secret), timeout=SHARING_BOUND), host_b.stderr
    answer = openai.OpenAI(base_url=host_b.base + "/v1", api_key=secret, max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"
    # B's file holds it now, with its id and limits (a restart of B while Redis is down keeps it).
    listed = {key["name"]: key for key in alloy(db_b, "keys", "list", "--json")}
    assert listed["roaming"]["id"] == row["id"] and listed["roaming"]["rpm"] == 100
    # The other way: created through B's admin API, used on A.
    status, created = admin(host_b.port, "POST", "/admin/keys", {"name": "from-b"})
    assert status == 201
    assert wait_until(lambda: accepted(host_a, created["key"]), timeout=SHARING_BOUND), host_a.stderr
    # Redis holds records of both, with hashes, never a secret.
    records = redis.Redis.from_url(redis_server.url).hgetall("alloy:gov:records")
    assert len(records) == 2
    assert not any(secret.encode() in data or created["key"].encode() in data for data in records.values())
    # Revoked on A: refused on B within the bound.
    status, _ = admin(host_a.port, "DELETE", "/admin/keys/roaming")
    assert status == 200
    assert wait_until(lambda: post(host_b.port, secret, chat())[0] == 401, timeout=SHARING_BOUND), host_b.stderr
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=host_b.base + "/v1", api_key=secret, max_retries=0).models.list()
    assert "revoked" in refused.value.message
    assert alloy(db_b, "keys", "show", "roaming")["revoked_at"] is not None
    # Redis gone: each gateway keeps the keys it has, and says so once.
    redis_server.kill()
    for _ in range(3):
        assert accepted(host_a, created["key"]) and accepted(host_b, created["key"])
    assert wait_until(lambda: "keys are not shared" in host_a.stderr, timeout=SHARING_BOUND)
    assert accepted(host_a, created["key"]) and host_a.stderr.count("keys are not shared") == 1
