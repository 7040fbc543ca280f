"""What a stage adds to a call's answers stays with the client: the ``x-ratelimit-*`` lines of a
keyed call and the ``x-alloy-cache`` line of a cacheable one reach the client, never the upstream,
which gets the request's ``x-request-id`` and nothing else of the gateway's own (but the Via line
that tells loops; see test_cli_config).
"""

from governance_helpers import MASTER, chat, create_key, keyed_config, post


def test_rate_limit_and_cache_headers_reach_the_client_and_not_the_upstream(start_gateway, mock, tmp_path):
    db = tmp_path / "keys.db"
    _, key = create_key(db, "team-app", "--rpm", "100", "--tpm", "100000")
    gateway = start_gateway(
        config=keyed_config(mock, db, "\n        [cache]\n        enabled = true\n"), env={"ALLOY_MASTER_KEY": MASTER}
    )
    mock.clear()
    status, head, _ = post(gateway.port, key, chat(), headers={"x-request-id": "req-stays-1"})
    assert status == 200
    assert head["x-ratelimit-limit-requests"] == "100" and head["x-alloy-cache"] == "miss"
    assert head["x-request-id"] == "req-stays-1"
    (received,) = mock.requests()
    sent = {name.lower() for name in received["headers"]}
    assert received["headers"].get("x-request-id") == "req-stays-1"
    assert not {name for name in sent if name.startswith(("x-ratelimit", "x-alloy"))}, sorted(sent)
