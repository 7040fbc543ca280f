"""The response cache with virtual keys: answers are kept per tenant. Two keys of one team share
their team's cache; a key of another team, a key without a team and the master key each have their
own; ``x-alloy-cache-namespace`` divides a tenant's cache and cannot reach another tenant's."""

import uuid

from governance_helpers import MASTER, admin, alloy, chat, create_key, keyed_config, post
from harness import wait_until


def test_each_tenant_has_its_own_cache(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    config = keyed_config(upstream, db) + "\n[cache]\nenabled = true\n"
    gateway = start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})
    alloy(db, "teams", "create", "--name", "search")
    alloy(db, "teams", "create", "--name", "ads")
    secrets = {
        name: create_key(db, name, *(("--team", team) if team else ()))[1]
        for name, team in (("first", "search"), ("second", "search"), ("other", "ads"), ("loner", None))
    }
    for secret in secrets.values():
        assert wait_until(lambda s=secret: post(gateway.port, s, chat(), path="/v1/nothing")[0] != 401, timeout=5)
    body = chat(text=f"tenant question {uuid.uuid4().hex}")

    def state(key, headers=None):
        status, head, _ = post(gateway.port, key, body, headers=headers)
        assert status == 200
        return head["x-alloy-cache"]

    upstream.clear()
    assert state(secrets["first"]) == "miss"
    assert state(secrets["second"]) == "hit"  # the same team
    assert state(secrets["other"]) == "miss"  # another team
    assert state(secrets["loner"]) == "miss"  # a key of its own
    assert state(MASTER) == "miss"  # global
    assert state(secrets["other"]) == "hit" and state(secrets["loner"]) == "hit" and state(MASTER) == "hit"
    # a namespace header divides a tenant's cache; the same name under another tenant is another cache
    assert state(secrets["first"], {"x-alloy-cache-namespace": "eval"}) == "miss"
    assert state(secrets["second"], {"x-alloy-cache-namespace": "eval"}) == "hit"
    assert state(secrets["other"], {"x-alloy-cache-namespace": "eval"}) == "miss"
    assert len([r for r in upstream.requests() if r["path"] == "/v1/chat/completions"]) == 6


def test_a_new_team_with_an_old_teams_name_has_a_cache_of_its_own(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    config = keyed_config(upstream, db) + "\n[cache]\nenabled = true\n"
    gateway = start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})
    alloy(db, "teams", "create", "--name", "acme")
    _, first = create_key(db, "first", "--team", "acme")
    body = chat(text=f"acme's question {uuid.uuid4().hex}")

    def state(key):
        assert wait_until(lambda: post(gateway.port, key, chat(), path="/v1/nothing")[0] != 401, timeout=5)
        status, head, _ = post(gateway.port, key, body)
        assert status == 200
        return head["x-alloy-cache"]

    assert state(first) == "miss" and state(first) == "hit"
    status, _ = admin(gateway.port, "PATCH", "/admin/teams/acme", {"name": "acme-old"})
    assert status == 200
    alloy(db, "teams", "create", "--name", "acme")  # another team, the old one's name
    _, second = create_key(db, "second", "--team", "acme")
    assert state(second) == "miss"  # not the answer the old team stored
    assert state(first) == "hit"  # which the old team, renamed, still has


def test_a_header_the_provider_forwards_by_choice_is_part_of_the_cache_key(start_gateway, upstream):
    """``forward_client_headers`` sends the client's organization (or project, or beta feature) to
    the provider: the same body for another organization is another request, billed to it and
    answered for it, never the first organization's stored answer."""
    config = f"""
        [providers.openai]
        base_url = "{upstream.base}/v1"
        api_key = "sk-provider"
        forward_client_headers = ["OpenAI-Organization"]

        [cache]
        enabled = true
        """
    gateway = start_gateway(config=config)
    body = chat(text=f"organization question {uuid.uuid4().hex}")

    def state(organization=None):
        status, head, _ = post(gateway.port, None, body, headers={"OpenAI-Organization": organization} if organization else None)
        assert status == 200
        return head["x-alloy-cache"]

    upstream.clear()
    assert state("org-one") == "miss"
    assert state("org-one") == "hit"
    assert state("org-two") == "miss"  # another organization: its own request
    assert state() == "miss"  # none: the provider's default organization
    assert state("org-two") == "hit" and state() == "hit"
    sent = [r for r in upstream.requests() if r["path"] == "/v1/chat/completions"]
    assert [r["headers"].get("openai-organization") for r in sent] == ["org-one", "org-two", None]
