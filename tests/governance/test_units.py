"""Unit tests of the pieces of alloy.governance that need no gateway: prices and usage shapes, what
a key may be given, the reset spelling, the user field, and the counters table under two mappings
of one file (what two workers see)."""

import pytest

from alloy.governance.counters import CounterTable, create_shared
from alloy.governance.fields import FieldError, duration, key_values, public
from alloy.core import ratelimit_reset as _reset
from alloy.governance.attribution import attribution, user_of
from alloy.core import scan_body, usage_cost
from alloy.governance.gate import estimate_tokens, usd
from alloy.governance.prices import Prices
from alloy.usage import tokens_of


def test_prices_exact_then_longest_prefix_then_override():
    prices = Prices(overrides=[("gpt-4o-mini", (1.0, 2.0, 0.5))])
    assert prices.price("gpt-4o-2024-08-06") == prices.table["gpt-4o"]
    assert prices.price("openai/gpt-4o") == prices.table["gpt-4o"]
    assert prices.price("gpt-4o-mini") == (1.0, 2.0, 0.5)
    assert prices.price("gpt-4oo") is None and prices.price(None, "no-such", "claude-sonnet-4-5-20250929") == prices.table["claude-sonnet-4-5"]
    # cached input tokens are part of the input and billed at the cached price
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "prompt_tokens_details": {"cached_tokens": 500_000}}
    assert usage_cost(usage, (1.0, 2.0, 0.5)) == (1_000_000, 1_000_000, 500_000, pytest.approx(0.5 + 2.0 + 0.25), 2_750_000_000)
    assert usage_cost({"prompt_tokens": 10, "completion_tokens": 10}, None) == (10, 10, 0, 0.0, 0)


def test_tokens_of_openai_and_anthropic_usage():
    assert tokens_of({"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}) == (10, 3, 4)
    assert tokens_of({"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 1}) == (26, 7, 20)
    assert tokens_of(None) == (0, 0, 0) and tokens_of({"prompt_tokens": "x"}) == (0, 0, 0)


def test_key_fields_refuse_what_would_be_a_typo():
    assert key_values({"name": "a", "budget": 5}, creating=True)["budget_period"] == 30 * 86400
    for given in ({"name": "a", "rpm": True}, {"name": "a", "rpm": 10**10}, {"name": "key_x"}, {"name": "a", "budget": float("nan")},
                  {"name": "a", "models": []}, {"name": "a", "metadata": {"k": [1]}}, {"name": "a", "expires": 5}):  # fmt: skip
        with pytest.raises(FieldError):
            key_values(given, creating=True)
    assert duration("p", "12h") == 43200 and public({"budget_period": 86400 * 7, "hash": b"x"}) == {"budget_period": "1w"}
    # thousands of digits (past int()'s limit: a ValueError, once a 500) and digits of other scripts
    for given in ("9" * 5000 + "d", "\u0663d", "\uff13d"):
        with pytest.raises(FieldError):
            duration("budget_period", given)


def test_reset_spelling_user_field_and_reservation():
    assert (_reset(0.25), _reset(12.2), _reset(61.0)) == (b"250ms", b"13s", b"1m1s")
    assert user_of(b'{"messages":[{"role": "user","content":"x"}], "user": "u-1"}') == "u-1"
    assert user_of(b'{"messages":[{"role":"user"}]}') is None
    assert estimate_tokens(b'{"max_tokens": 100}' + b" " * 81) == 100 + 100 // 4
    # A model endpoint's body was scanned: its top-level cap counts, a nested one does not.
    body = b'{"model":"m","tools":[{"max_tokens":9000}],"max_completion_tokens":50}'
    assert estimate_tokens(body, scan_body(body)) == len(body) // 4 + 50


def test_two_mappings_of_one_counters_file_see_each_other(tmp_path):
    path = create_shared(str(tmp_path))
    first, second = CounterTable(path), CounterTable(path)
    slot = first.slot_of("key_a")
    assert second.slot_of("key_a") == slot and second.slot_of("key_b") != slot
    values = list(first.read(slot))
    values[2] = 41
    first.write(slot, values)
    assert second.read(slot)[2] == 41
    first.close()
    second.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","user":"u-1","messages":[{"role":"user","content":"hi"}],"metadata":{"a":"b"}}',
        b'{"model":"m","messages":[{"role":"user"}]}',
        b'{"model":"m","user":"' + b"x" * 300 + b'"}',  # too long to be an end-user id
        b'{"model":"m","user":"a\\"b"}',  # escapes: read by orjson
        b'{"model":"m","user":"caf\\u00e9 \\ud83e\\udd8a","metadata":{}}',
        b'{"model":"m","user":"' + b"\\u00e9" * 257 + b'"}',  # 257 characters once read: too long
        b'{"model":"m","user":"bad \\x escape"}',
        b'{"model":"m","user" : "spaced","metadata":{"k":"v","n":1}}',
    ],
)
def test_attribution_from_the_scan_equals_the_search(body):
    """The scanner's top-level values say what the body search says, and the metadata held reads
    back to the same ledger text."""
    from alloy.core import scan_body
    from alloy.governance.attribution import metadata_json, metadata_source

    user, held = attribution(scan_body(body), None)  # a scanned body is not read again
    assert user == user_of(body)
    source = metadata_source(body)
    assert (None if held is None else metadata_json(held)) == (None if source is None else metadata_json(source))


def test_the_user_is_read_as_the_text_json_means():
    for written, meant in [
        (b'"plain id"', "plain id"), (b'"caf\\u00e9"', "café"), ('"café"'.encode(), "café"), (b'"a\\"b"', 'a"b'),
        (b'"a\\\\b"', "a\\b"), (b'"\\ud83e\\udd8a"', "🦊"), (b'"' + b"\\u00e9" * 256 + b'"', "é" * 256),
        (b'"' + b"\\u00e9" * 257 + b'"', None), (b'""', None), (b'"\\ud83e"', None), (b'"\\q"', None), (b"7", None),
    ]:  # fmt: skip
        body = b'{"model":"m","user":' + written + b',"messages":[]}'
        assert user_of(body) == meant, written
        assert attribution(scan_body(body), None)[0] == meant, written


def test_the_keyring_remembers_a_secret_until_the_next_reload(tmp_path):
    from alloy.governance.keyring import Keyring
    from alloy.governance.store import Store

    store = Store(str(tmp_path / "alloy.db"))
    table = CounterTable(create_shared(str(tmp_path)))
    _, secret = store.create_key({"name": "app"})
    keyring = Keyring(store, table)
    keyring.reload()
    secret = secret.encode()
    assert keyring.by_secret.get(secret) is None  # not seen yet: found by its hash, then remembered
    identity = keyring.learn(secret)
    assert identity.name == "app" and keyring.by_secret[secret] is identity
    assert keyring.learn(b"sk-alloy-wrong") is None and b"sk-alloy-wrong" not in keyring.by_secret
    keyring.remember_header(b"Bearer " + secret, identity)  # the gate's next lookup: the header as sent
    assert keyring.by_header == {b"Bearer " + secret: identity}
    _, new_secret = store.rotate_key("app")
    keyring.refresh()  # the rotation moved keys_version: reloaded, and the old secret forgotten
    assert keyring.by_secret == {} and keyring.by_header == {} and keyring.learn(secret) is None
    assert keyring.learn(new_secret.encode()).name == "app"
    store.revoke_key("app")
    keyring.refresh()
    assert keyring.by_secret == {} and keyring.learn(new_secret.encode()).revoked
    store.close()
    table.close()


def test_a_reload_rebuilds_only_the_keys_and_teams_that_changed(tmp_path):
    # Every key or team change reloads every worker's keyring: with thousands of keys a rebuild of
    # all of them held each event loop for tens of milliseconds. Unchanged rows keep their objects.
    from alloy.governance.keyring import Keyring
    from alloy.governance.store import Store

    store = Store(str(tmp_path / "alloy.db"))
    table = CounterTable(create_shared(str(tmp_path)))
    store.create_team({"name": "search", "rpm": 50})
    for name, team in (("alone", None), ("member", "search"), ("other", None)):
        store.create_key({"name": name, "team": team, "rpm": 10})
    keyring = Keyring(store, table)
    keyring.reload()

    def identities():
        return {identity.name: identity for identity in keyring.by_hash.values()}

    before = identities()
    store.update_key("alone", {"rpm": 5})
    keyring.refresh()
    after = identities()
    assert after["alone"] is not before["alone"] and after["alone"].scopes[0].rpm == 5
    assert after["member"] is before["member"] and after["other"] is before["other"]
    store.update_team("search", {"name": "find", "rpm": 40})  # its keys see the new team
    keyring.refresh()
    renamed = identities()
    assert renamed["member"] is not after["member"]
    assert (renamed["member"].team, renamed["member"].scopes[1].rpm) == ("find", 40)
    assert renamed["alone"] is after["alone"] and renamed["other"] is after["other"]
    store.revoke_key("other")
    keyring.refresh()
    assert identities()["other"].revoked and identities()["member"] is renamed["member"]
    store.close()
    table.close()


def test_processes_opening_a_new_database_together_all_open_it(tmp_path):
    # Switching a new file to WAL takes an exclusive lock SQLite refuses at once: the workers of
    # --workers N opening a new file together once failed with "database is locked".
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for attempt in range(6):
        path = str(tmp_path / f"new-{attempt}.db")
        barrier = context.Barrier(6)
        failures = context.Queue()
        workers = [context.Process(target=_open_after, args=(path, barrier, failures)) for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert [worker.exitcode for worker in workers] == [0] * 6
        assert failures.empty(), failures.get()


def _open_after(path, barrier, failures):
    from alloy.governance.store import Store

    barrier.wait()
    try:
        Store(path).close()
    except Exception as error:  # noqa: BLE001 - reported to the test
        failures.put(repr(error))


def test_budgets_are_written_with_the_digits_they_need():
    assert [usd(5), usd(0.5), usd(0.002), usd(12.345), usd(0.000001)] == ["5.00", "0.50", "0.002", "12.345", "0.000001"]


@pytest.mark.parametrize("count", [1, 63, 64, 65, 200])
def test_every_row_of_a_ledger_batch_is_stored_as_given(tmp_path, count):
    # The writer inserts rows 64 to a statement and the rest one by one: none may be lost,
    # doubled or shifted between columns, whatever the batch's size.
    from alloy.governance.store import LEDGER_COLUMNS, Store

    store = Store(str(tmp_path / "ledger.db"))
    rows = []
    for n in range(count):
        row = dict.fromkeys(LEDGER_COLUMNS, "")
        row.update(at=1000.0 + n, key_id=f"key-{n}", model="gpt-4o-mini", status=200 + n % 3, tokens_in=n,
                   tokens_out=2 * n, tokens_cached=n % 5, cost=n / 1e6, latency_ms=n / 10, requests=1)
        rows.append(tuple(row.values()))
    store.append_ledger(rows)
    stored = store.db.execute(
        "SELECT at, key_id, team, status, tokens_in, tokens_out, tokens_cached, cost, latency_ms FROM ledger ORDER BY at"
    ).fetchall()
    assert [tuple(row) for row in stored] == [
        (1000.0 + n, f"key-{n}", None, 200 + n % 3, n, 2 * n, n % 5, n / 1e6, n / 10) for n in range(count)
    ]
    store.close()
