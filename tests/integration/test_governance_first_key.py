"""The first key without a restart: a gateway started with no ``[governance]`` section and no
database (open, as without governance) finds the database ``alloy keys create`` makes while it
serves, and from then on behaves as if it had started with it: keys required, limits held, also
across ``--workers 2`` (the supervisor's shared counters exist before any key does)."""

import openai
import pytest

from governance_helpers import PICKUP_BOUND, alloy, burst, chat, create_key, post, statuses, unkeyed_config
from harness import wait_until


def test_the_first_key_applies_while_the_gateway_serves(start_gateway, upstream, tmp_path):
    db = tmp_path / "later" / "alloy.db"
    gateway = start_gateway(config=unkeyed_config(upstream), env={"ALLOY_DB": str(db)})
    assert post(gateway.port, None, chat())[0] == 200  # no key anywhere: open
    assert not db.exists()
    _, secret = create_key(db, "first")
    assert wait_until(lambda: post(gateway.port, None, chat())[0] == 401, timeout=PICKUP_BOUND), gateway.stderr
    upstream.clear()
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base + "/v1", api_key="sk-alloy-wrong", max_retries=0).models.list()
    assert len(upstream.requests()) == 1  # only the keyed request went upstream
    assert "keys apply from now on" in gateway.stderr
    # Accounted as with governance from the start: the keyed request is in the ledger.
    wait_until(lambda: any(row["key"] == "first" for row in alloy(db, "usage", "--json")), timeout=PICKUP_BOUND)
    assert [row["requests"] for row in alloy(db, "usage", "--json") if row["key"] == "first"] == [1]


def test_the_first_key_is_limited_across_workers(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_gateway(config=unkeyed_config(upstream), env={"ALLOY_DB": str(db)}, args=["--workers", "2"])
    assert post(gateway.port, None, chat())[0] == 200
    _, secret = create_key(db, "limited", "--rpm", "4")
    # Both workers must have picked it up: unkeyed requests are refused by whichever answers.
    assert wait_until(lambda: statuses(burst(gateway.port, None, 6)) == [401] * 6, timeout=PICKUP_BOUND)
    upstream.clear()
    results = burst(gateway.port, secret, 10)
    assert statuses(results) == [200] * 4 + [429] * 6  # one limit for the server, not one per worker
    assert len(upstream.requests()) == 4
