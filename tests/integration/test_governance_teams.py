"""Teams through the running gateway: every limit of a key and of its team applies, so the tighter
one decides (requests per minute shared by the team's keys, models, budgets), teams managed over
``/admin/teams`` and ``alloy teams``, and the ledger grouped by team."""

import pytest

from governance_helpers import MASTER, admin, alloy, burst, chat, create_key, keyed_config, post, statuses, usage_rows
from harness import in_parallel, wait_until

PRICES = """
        [governance.prices."gpt-4o"]
        input = 100000
        output = 100000
        """


@pytest.fixture
def keyed(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_gateway(config=keyed_config(upstream, db, PRICES), env={"ALLOY_MASTER_KEY": MASTER})
    return gateway, db


def ready(gateway, *secrets):
    for secret in secrets:
        wait_until(lambda s=secret: post(gateway.port, s, chat(), path="/v1/nothing")[0] != 401, timeout=5)


def test_a_team_limit_is_shared_by_its_keys(keyed, upstream):
    gateway, db = keyed
    alloy(db, "teams", "create", "--name", "search", "--rpm", "4")
    _, first = create_key(db, "first", "--team", "search", "--rpm", "10")
    _, second = create_key(db, "second", "--team", "search")
    ready(gateway, first, second)
    upstream.clear()
    results = in_parallel([lambda s=s: post(gateway.port, s, chat()) for s in [first, second] * 6])
    assert statuses(results) == [200] * 4 + [429] * 8
    assert len(upstream.requests()) == 4
    refused = [body for status, _, body in results if status == 429]
    assert all("team 'search'" in body["error"]["message"] for body in refused)
    # The headers show the tighter window: the team's.
    assert {head["x-ratelimit-limit-requests"] for status, head, _ in results} == {"4"}


def test_the_tighter_of_key_and_team_decides(keyed, upstream):
    gateway, db = keyed
    alloy(db, "teams", "create", "--name", "roomy", "--rpm", "100", "--models", "gpt-4o,gpt-4o-mini")
    _, narrow = create_key(db, "narrow", "--team", "roomy", "--rpm", "2", "--models", "gpt-4o-mini,o3-mini")
    ready(gateway, narrow)
    upstream.clear()
    assert statuses(burst(gateway.port, narrow, 5, body=chat("gpt-4o-mini"))) == [200] * 2 + [429] * 3
    alloy(db, "keys", "update", "narrow", "--rpm", "none")
    wait_until(lambda: post(gateway.port, narrow, chat("gpt-4o-mini"))[0] == 200, timeout=5)
    # Models: the key allows o3-mini, the team does not; the team allows gpt-4o, the key does not.
    for model in ("o3-mini", "gpt-4o"):
        status, _, body = post(gateway.port, narrow, chat(model))
        assert status == 404 and body["error"]["code"] == "model_not_found"
    assert [r["body"]["model"] for r in upstream.requests()] == ["gpt-4o-mini"] * 3


def test_a_team_budget_stops_every_key_of_the_team(keyed, upstream):
    gateway, db = keyed
    status, team = admin(gateway.port, "POST", "/admin/teams", {"name": "lab", "budget": 1, "budget_period": "1d"})
    assert status == 201 and team["budget_period"] == "1d"
    _, spender = create_key(db, "spender", "--team", "lab")
    _, other = create_key(db, "other", "--team", "lab")
    ready(gateway, spender, other)
    while post(gateway.port, spender, chat())[0] == 200:
        pass
    upstream.clear()
    status, _, body = post(gateway.port, other, chat())
    assert status == 429 and body["error"]["code"] == "insufficient_quota" and "team 'lab'" in body["error"]["message"]
    assert upstream.requests() == []
    # A bigger budget takes effect at once.
    assert admin(gateway.port, "PATCH", "/admin/teams/lab", {"budget": 100})[0] == 200
    assert post(gateway.port, other, chat())[0] == 200
    wait_until(lambda: {r["team"] for r in usage_rows(db, by="team")} == {"lab"}, timeout=5)
    assert usage_rows(db, by="team")[0]["cost_usd"] >= 1


def test_teams_admin_api(keyed):
    gateway, db = keyed
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "a", "tpm": 1000})[0] == 201
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "a"})[0] == 400  # duplicate
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "b", "expires": "1d"})[0] == 400  # keys only
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "b", "rpm": 0})[0] == 400
    assert admin(gateway.port, "POST", "/admin/keys", {"name": "k", "team": "a"})[0] == 201
    assert admin(gateway.port, "POST", "/admin/keys", {"name": "loner"})[0] == 201
    # A team's keys, by its name or id; a filter the API does not know is refused, not ignored.
    team_id = admin(gateway.port, "GET", "/admin/teams/a")[1]["id"]
    for team in ("a", team_id):
        assert [key["name"] for key in admin(gateway.port, "GET", f"/admin/keys?team={team}")[1]["data"]] == ["k"]
    assert {key["name"] for key in admin(gateway.port, "GET", "/admin/keys")[1]["data"]} >= {"k", "loner"}
    assert admin(gateway.port, "GET", "/admin/keys?team=nobody")[0] == 404
    status, body = admin(gateway.port, "GET", "/admin/keys?limit=3")
    assert status == 400 and body["error"]["param"] == "limit"
    assert admin(gateway.port, "GET", "/admin/teams?name=a")[0] == 400
    status, body = admin(gateway.port, "DELETE", "/admin/teams/a")
    assert status == 400 and "active key" in body["error"]["message"]
    assert admin(gateway.port, "DELETE", "/admin/keys/k")[0] == 200  # revoked
    assert admin(gateway.port, "DELETE", "/admin/teams/a")[0] == 200
    assert admin(gateway.port, "GET", "/admin/teams")[1]["data"] == []
    assert admin(gateway.port, "GET", "/admin/teams/a")[0] == 404


def test_a_renamed_team_keeps_its_spend_and_its_usage(start_gateway, upstream, tmp_path):
    # The ledger names a team by its name: a rename must carry its rows along, or the spend that
    # seeds the budget at start (and `alloy usage --team`) would begin again from nothing.
    db = tmp_path / "alloy.db"
    config = keyed_config(upstream, db, PRICES)
    gateway = start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "lab", "budget": 1.5, "budget_period": "1d"})[0] == 201
    _, member = create_key(db, "member", "--team", "lab")
    ready(gateway, member)
    while post(gateway.port, member, chat())[0] == 200:
        pass
    wait_until(lambda: sum(r["cost_usd"] for r in usage_rows(db, by="team")) >= 1.5, timeout=5)
    status, team = admin(gateway.port, "PATCH", "/admin/teams/lab", {"name": "lab-2"})
    assert status == 200 and team["name"] == "lab-2"
    gateway.stop()
    gateway = start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})
    ready(gateway, member)
    upstream.clear()
    status, _, body = post(gateway.port, member, chat())
    assert status == 429 and body["error"]["code"] == "insufficient_quota" and "team 'lab-2'" in body["error"]["message"]
    assert upstream.requests() == []
    rows = [r for r in usage_rows(db, by="team") if r["team"] is not None]  # (not: tries before the key applied)
    assert [r["team"] for r in rows] == ["lab-2"] and rows[0]["cost_usd"] >= 1.5
    assert usage_rows(db, by="model", team="lab-2")[0]["cost_usd"] >= 1.5


def test_a_budget_given_later_gets_the_default_period(keyed):
    gateway, db = keyed
    assert admin(gateway.port, "POST", "/admin/teams", {"name": "later"})[0] == 201
    status, team = admin(gateway.port, "PATCH", "/admin/teams/later", {"budget": 5})
    assert status == 200 and team["budget_period"] == "30d"  # a budget that never reset was possible
    _, _ = create_key(db, "k-later", "--team", team["id"])  # a team is named by its id too
    status, key = admin(gateway.port, "PATCH", "/admin/keys/k-later", {"budget": 2, "budget_period": "1d"})
    assert status == 200 and key["budget_period"] == "1d" and key["team"] == "later"
    assert alloy(db, "keys", "update", "k-later", "--budget", "3")["budget_period"] == "1d"  # kept
