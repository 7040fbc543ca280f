"""Attribution from the body's ``metadata`` (OpenAI's chat ``metadata``: string pairs): recorded in
the ledger as bounded JSON, grouped by ``alloy usage --by metadata.KEY`` and ``/admin/usage?by=``;
a nested ``metadata`` (a tool's schema) is not the request's; a database of the previous schema is
migrated when opened."""

import json
import sqlite3

import openai

from governance_helpers import MASTER, admin, alloy, alloy_text, chat, create_key, keyed_config, post, usage_rows
from harness import wait_until

TOOL_WITH_METADATA = {
    "type": "function",
    "function": {
        "name": "tag",
        "parameters": {"type": "object", "properties": {"metadata": {"type": "object"}}},
    },
}


def by_project(db):
    return {row["metadata.project"]: row["requests"] for row in usage_rows(db, by="metadata.project")}


def test_metadata_is_recorded_bounded_and_grouped(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "app")
    gateway = start_gateway(config=keyed_config(upstream, db), env={"ALLOY_MASTER_KEY": MASTER})
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=0)
    wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=5)
    hello = [{"role": "user", "content": "hello"}]
    for project in ("apollo", "apollo", "zeus"):
        client.chat.completions.create(model="gpt-4o", messages=hello, metadata={"project": project, "stage": "dev"})
    # A "metadata" that is not the request's: a property in a tool's schema.
    client.chat.completions.create(model="gpt-4o", messages=hello, tools=[TOOL_WITH_METADATA])
    # More than OpenAI allows: 20 pairs, a long value, a value that is not a string.
    crowded = {f"k{i:02d}": "v" for i in range(20)} | {"k00": "x" * 600, "k01": 7}
    assert post(gateway.port, secret, chat(metadata=crowded))[0] == 200
    assert len(upstream.requests()) == 6  # the metadata went upstream as the client sent it
    expected = {"apollo": 2, "zeus": 1, None: 3}
    assert wait_until(lambda: by_project(db) == expected, timeout=5), by_project(db)
    assert {row["metadata.stage"]: row["requests"] for row in usage_rows(db, by="metadata.stage")} == {"dev": 3, None: 3}
    status, body = admin(gateway.port, "GET", "/admin/usage?by=metadata.project")
    assert status == 200 and {row["metadata.project"]: row["requests"] for row in body["data"]} == expected
    with sqlite3.connect(db) as connection:
        stored = [row[0] for row in connection.execute("SELECT metadata FROM ledger WHERE metadata LIKE '%k0%'")]
    assert len(stored) == 1 and len(stored[0]) < 10_000
    kept = json.loads(stored[0])
    # The first 16 string pairs (7 is not a string), a value cut at 512 characters.
    assert sorted(kept) == ["k00", *(f"k{i:02d}" for i in range(2, 17))] and kept["k00"] == "x" * 512
    # Bad groupings: named, nothing else.
    status, body = admin(gateway.port, "GET", '/admin/usage?by=metadata.a"b')
    assert status == 400 and body["error"]["param"] == "by"
    assert "metadata.KEY" in alloy(db, "usage", "--by", "metadata.", expect=2).stderr


def test_a_database_of_the_previous_schema_is_migrated(tmp_path):
    from alloy.governance.store import MIGRATIONS

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as connection:
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute("INSERT INTO ledger (at, key_name, status, tokens_in, tokens_out, tokens_cached, cost) VALUES (1, 'old', 200, 3, 4, 0, 0.5)")
        connection.execute("PRAGMA user_version = 1")
    assert usage_rows(db) == [
        {"key": "old", "requests": 1, "tokens_in": 3, "tokens_out": 4, "tokens_cached": 0, "cost_usd": 0.5, "errors": 0, "refused": 0}
    ]
    assert usage_rows(db, by="metadata.project")[0]["metadata.project"] is None


def test_a_row_says_the_request_id_path_latency_user_and_tags(start_gateway, upstream, tmp_path):
    """The finish listener hands the ledger raw references; what is stored is what the client saw."""
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "app")
    gateway = start_gateway(config=keyed_config(upstream, db), env={"ALLOY_MASTER_KEY": MASTER})
    assert wait_until(lambda: post(gateway.port, secret, chat(), headers={"x-alloy-tags": "warm"})[0] == 200, timeout=5)
    status, headers, _ = post(gateway.port, secret, chat(user="end-user-7"), headers={"x-alloy-tags": "batch,nightly"})
    assert status == 200

    def row():
        with sqlite3.connect(db) as connection:
            return connection.execute(
                "SELECT endpoint, latency_ms, user, tags, request_id FROM ledger WHERE tags = 'batch,nightly'"
            ).fetchone()

    assert wait_until(lambda: row() is not None, timeout=5)
    endpoint, latency_ms, user, tags, request_id = row()
    assert (endpoint, user, tags, request_id) == ("/v1/chat/completions", "end-user-7", "batch,nightly", headers["x-request-id"])
    assert 0 < latency_ms < 5000 and round(latency_ms, 3) == latency_ms



def test_client_text_is_recorded_as_sent_and_shown_harmless(start_gateway, upstream, tmp_path):
    """A user id with JSON escapes (Python's json writes any non-ASCII that way) and UTF-8 tags are
    recorded as the text the client meant; ``alloy usage`` prints client text with its control and
    invisible characters escaped, so an ANSI escape, a newline or U+202E cannot forge the table."""
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "app")
    gateway = start_gateway(config=keyed_config(upstream, db), env={"ALLOY_MASTER_KEY": MASTER})
    assert wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=5)
    users = ["café", 'a"b', "a\\b", "🦊 fox"]
    for user in users:  # json.dumps: "caf\u00e9", "a\"b", "a\\b", a surrogate pair
        assert post(gateway.port, secret, chat(user=user), headers={"x-alloy-tags": "équipe".encode()})[0] == 200
    hostile = "u\x1b[31mRED\nforged  9  9\u202eevil"
    assert post(gateway.port, secret, chat(user=hostile, metadata={"project": hostile}))[0] == 200

    def rows():
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT user, tags FROM ledger WHERE user IS NOT NULL ORDER BY at").fetchall()

    assert wait_until(lambda: len(rows()) == 5, timeout=5), rows()
    assert rows() == [*((user, "équipe") for user in users), (hostile, None)]
    for by in ("user", "metadata.project"):
        shown = alloy_text(db, "usage", "--by", by)
        assert "\x1b" not in shown and "\u202e" not in shown
        lines = shown.splitlines()
        assert not any(line.startswith("forged") for line in lines), shown
        assert any("u\\x1b[31mRED\\nforged  9  9\\u202eevil" in line for line in lines), shown
    assert any(line.startswith("café ") for line in alloy_text(db, "usage", "--by", "user").splitlines())
