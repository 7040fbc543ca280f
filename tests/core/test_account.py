"""The core's accounting section, on both twins: a virtual key's limits against the counters
memory (``LimitCounters``), OpenAI's reset spelling, and the access log's JSON line.

The compiled twin must say exactly what the pure one says: the limit decisions and their header
lines byte for byte, and every access-log line byte for byte (the pure twin's line is orjson's
dump of the fields, so a line is also checked to be the JSON object a log reader expects).
"""

import importlib
import math
import mmap
import os
import random
import struct
from types import SimpleNamespace

import orjson
import pytest

PURE_ONLY = os.environ.get("ALLOY_PURE") == "1"

SLOT = struct.Struct("<16s d q d q q q q q")
OFFSETS = (64, 64 + 80)
NOW, WALL = 1000.0, 1_700_000_000.0


def key_scopes(rpm=0, tpm=0, parallel=0, budget=0, period=0, anchor=0.0, team=None):
    """A key's scopes as ``KeyIdentity.limits`` holds them, and what it reports."""
    scopes = [(OFFSETS[0], rpm, tpm, parallel, budget, period, anchor)]
    if team is not None:
        scopes.append((OFFSETS[1], *team))
    reported = tuple(
        (kind, tuple((i, scope[column]) for i, scope in enumerate(scopes) if scope[column]))
        for kind, column in (("rpm", 1), ("tpm", 2))
        if any(scope[column] for scope in scopes)
    )
    return tuple(scopes), reported


def table(core):
    memory = mmap.mmap(-1, 64 + 80 * 4)
    return memory, core.LimitCounters(memory)


def row(memory, offset):
    return SLOT.unpack_from(memory, offset)


def test_requests_per_minute_lets_exactly_the_limit_through(core):
    memory, counters = table(core)
    scopes, reported = key_scopes(rpm=3)
    results = [counters.take(scopes, reported, 0, NOW + i, WALL) for i in range(4)]
    assert [r[0] for r in results] == [None, None, None, "requests"]
    assert results[0][2] == (
        b"x-ratelimit-limit-requests: 3\r\nx-ratelimit-remaining-requests: 2\r\nx-ratelimit-reset-requests: 1m0s\r\n"
    )
    what, index, figure, _, lines = results[3]
    assert (index, figure) == (0, 57.0)  # the window started at NOW and lasts a minute
    assert b"x-ratelimit-remaining-requests: 0\r\n" in lines and b"reset-requests: 57s\r\n" in lines
    assert row(memory, OFFSETS[0])[2:3] == (3,)  # the refusal wrote nothing
    # A minute after the window's start, the requests count from zero again.
    assert counters.take(scopes, reported, 0, NOW + 60, WALL)[0] is None
    assert row(memory, OFFSETS[0])[1:3] == (NOW + 60, 1)


def test_tokens_are_reserved_then_reconciled_within_their_window(core):
    memory, counters = table(core)
    scopes, reported = key_scopes(tpm=1000)
    verdict, windows, lines = counters.take(scopes, reported, 400, NOW, WALL)
    assert verdict is None and windows == (NOW,)
    assert b"x-ratelimit-remaining-tokens: 600\r\n" in lines
    assert counters.take(scopes, reported, 700, NOW + 1, WALL)[:3] == ("tokens", 0, 59.0)
    counters.give_back(scopes, windows, 400, 30, 5, WALL)  # used 30 of the 400 reserved
    assert row(memory, OFFSETS[0])[4:6] == (30, 0)
    assert row(memory, OFFSETS[0])[7] == 5  # its cost joined the spend
    # A reservation made in an older window is not taken off the new one.
    _, old, _ = counters.take(scopes, reported, 100, NOW + 2, WALL)
    counters.take(scopes, reported, 50, NOW + 70, WALL)
    counters.give_back(scopes, old, 100, 10, 0, WALL)
    assert row(memory, OFFSETS[0])[3:5] == (NOW + 70, 50)


def test_parallel_and_budget_refuse_before_anything_is_counted(core):
    memory, counters = table(core)
    scopes, reported = key_scopes(parallel=1, budget=100, period=86400, anchor=WALL - 10)
    first = counters.take(scopes, reported, 0, NOW, WALL)
    assert first[0] is None and first[2] == b""  # no rpm or tpm: no x-ratelimit lines
    assert counters.take(scopes, reported, 0, NOW, WALL)[:3] == ("parallel", 0, 1.0)
    counters.give_back(scopes, first[1], 0, 0, 150, WALL)
    assert counters.take(scopes, reported, 0, NOW, WALL)[:3] == ("budget", 0, 150)
    # The next budget period starts with nothing spent.
    assert counters.take(scopes, reported, 0, NOW, WALL + 86400)[0] is None
    assert row(memory, OFFSETS[0])[6:8] == (1, 0)


def test_a_cost_spent_elsewhere_counts_toward_the_budget_alone(core):
    # Redis decided and counted the request; these counters learn its cost only (spent), in the
    # budget's current period, so that they refuse a spent budget should they decide again.
    memory, counters = table(core)
    scopes, reported = key_scopes(parallel=1, rpm=5, budget=100, period=86400, anchor=WALL - 10)
    counters.spent(scopes, 60, WALL)
    counters.spent(scopes, 50, WALL)
    assert row(memory, OFFSETS[0])[2] == 0 and row(memory, OFFSETS[0])[5] == 0  # no request, none in flight
    assert counters.take(scopes, reported, 0, NOW, WALL)[:3] == ("budget", 0, 110)
    counters.spent(scopes, 10, WALL + 86400)  # the next period starts from this cost alone
    assert row(memory, OFFSETS[0])[6:8] == (1, 10)


def test_the_tighter_of_key_and_team_decides_and_reports(core):
    memory, counters = table(core)
    scopes, reported = key_scopes(rpm=10, team=(2, 0, 0, 0, 0, 0.0))
    lines = [counters.take(scopes, reported, 0, NOW, WALL) for _ in range(3)]
    assert b"x-ratelimit-limit-requests: 2\r\nx-ratelimit-remaining-requests: 1\r\n" in lines[0][2]
    assert lines[2][:2] == ("requests", 1)  # the team's scope refused
    assert row(memory, OFFSETS[0])[2] == 2 and row(memory, OFFSETS[1])[2] == 2


def test_a_slot_outside_the_table_is_refused(core):
    _, counters = table(core)
    scopes, reported = key_scopes(rpm=1)
    bad = ((10_000, *scopes[0][1:]),)
    with pytest.raises((ValueError, struct.error)):
        counters.take(bad, reported, 0, NOW, WALL)


@pytest.mark.parametrize("seconds", [0.0, 0.25, 0.9999, 1.0, 1.2, 12.0, 59.5, 60.0, 61.9, 3599.0, 86400.5])
def test_reset_spelling(core, seconds):
    expected = {0.0: b"0ms", 0.25: b"250ms", 0.9999: b"999ms", 1.0: b"1s", 1.2: b"2s", 12.0: b"12s",
                59.5: b"1m0s", 60.0: b"1m0s", 61.9: b"1m2s", 3599.0: b"59m59s", 86400.5: b"1440m1s"}  # fmt: skip
    assert core.ratelimit_reset(seconds) == expected[seconds]


# --- the access log's line -----------------------------------------------------------------------


def entry(**changes):
    base = dict(
        ended=5000.5, id_line=b"x-request-id: abc-1\r\n", peer=("127.0.0.1", 51234), key="team-key",
        method=b"POST", path=b"/v1/chat/completions", model="gpt-4o-mini", stream=False,
        served="gpt-4o-mini-2024", provider="openai", status=200, count=1, bytes_in=111,
        arrived=5000.4, sent=5000.41, head=5000.45, error=None, usage=(12, 3), bytes_out=276, first_event=0.0,
    )  # fmt: skip
    base.update(changes)
    return tuple(base.values())


ENTRIES = [
    entry(),
    entry(stream=True, first_event=5000.46),
    entry(id_line=b"", peer=None, key=None, model=None, stream=None, served=None, provider=None, usage=None),
    entry(error=("invalid_request_error", None), status=400, head=0.0, sent=0.0),
    entry(error=("rate_limit_error", "rate_limit_exceeded"), count=3),
    entry(arrived=None, sent=0.0, head=0.0),  # refused before a call existed
    entry(path="/v1/chat/completions?q=é\"\\\n".encode(), key='quote " and \\', model="modèle\t1"),
    entry(id_line=b"x-request-id: caf\xe9\r\n", method=b"P\xd6ST", path=b"/v1/\xff\xfe"),
    entry(peer=("::1", 8080, 0, 0)),
    entry(peer="/tmp/socket"),
    entry(usage=(None, 7)),
    entry(usage=(2**62, 2**40)),
    entry(usage=(-(2**63), 2**63 - 1), bytes_in=0, status=0),  # the ends of a long long, written by hand
    entry(usage=(-7, 2**64 - 1)),  # beyond a long long: orjson writes it
    entry(ended=1e9 + 0.999999, arrived=1e9, sent=1e9 + 0.5, head=1e9 + 0.75),
    entry(head=5000.40999, sent=5000.41),  # the upstream head "before" the send: not timed
    entry(id_line=b"x-request-id: no-line-end"),
    entry(method=None, path=None, arrived=None, sent=0.0, head=0.0, status=413),  # refused by the parser
]


def twins():
    names = ["pure"] if PURE_ONLY else ["compiled", "pure"]
    return [importlib.import_module("alloy._core" if name == "compiled" else "alloy._pycore") for name in names]


@pytest.mark.parametrize("index", range(len(ENTRIES)))
def test_access_line_is_the_json_object_of_the_fields(core, index):
    item = ENTRIES[index]
    line = core.access_json_line(item, 1_700_000_000.0)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    fields = orjson.loads(line)
    assert list(fields)[:1] == ["time"] and fields["time"].endswith("Z")
    if item[4] is None:  # bytes the HTTP parser refused: no method or path was read
        assert "method" not in fields and "path" not in fields
    else:
        assert fields["method"] == item[4].decode("latin-1")
        assert fields["path"] == item[5].decode("utf-8", "replace")
    assert fields["status"] == item[10]


@pytest.mark.skipif(PURE_ONLY, reason="compares the compiled twin with the pure one")
def test_access_line_compiled_equals_pure_byte_for_byte():
    compiled, pure = twins()
    rng = random.Random(7)
    items = list(ENTRIES)
    for _ in range(3000):  # random clock reads: every float the line formats
        arrived = rng.uniform(0, 1e6)
        sent = arrived + rng.choice([0.0, rng.uniform(0, 0.01), rng.uniform(0, 100)])
        head = rng.choice([0.0, sent + rng.uniform(0, 5), sent - 1e-6])
        ended = max(head, sent) + rng.uniform(0, 700)
        first = rng.choice([0.0, arrived + rng.uniform(0, 3)])
        items.append(entry(arrived=arrived, sent=sent, head=head, ended=ended, first_event=first,
                           stream=rng.choice([True, False, None]), count=rng.choice([1, 2]),
                           error=rng.choice([None, ("api_error", "x")])))  # fmt: skip
    for item in items:
        for offset in (0.0, 1_700_000_000.123456, 1e9):
            assert compiled.access_json_line(item, offset) == pure.access_json_line(item, offset), item


@pytest.mark.skipif(PURE_ONLY, reason="compares the compiled twin with the pure one")
def test_limits_compiled_equal_pure_over_a_random_run():
    compiled, pure = twins()
    rng = random.Random(11)
    tables = [table(twin) for twin in (compiled, pure)]
    scopes, reported = key_scopes(rpm=7, tpm=900, parallel=3, budget=400, period=3600, anchor=WALL, team=(9, 2000, 0, 0, 0, 0.0))
    held = [[], []]
    now, wall = NOW, WALL
    for _ in range(3000):
        now += rng.choice([0.0, 0.5, 3.0, 25.0])
        wall += rng.choice([0.0, 7.0, 900.0])
        if held[0] and rng.random() < 0.5:
            at = rng.randrange(len(held[0]))
            used, cost = rng.randrange(0, 300), rng.randrange(0, 60)
            for side, (_, counters) in enumerate(tables):
                windows, reserved = held[side].pop(at)
                counters.give_back(scopes, windows, reserved, used, cost, wall)
        else:
            reserve = rng.randrange(0, 400)
            results = [counters.take(scopes, reported, reserve, now, wall) for _, counters in tables]
            assert results[0] == results[1]
            if results[0][0] is None:
                for side in (0, 1):
                    held[side].append((results[side][1], reserve))
        assert tables[0][0][:] == tables[1][0][:]
    assert not math.isnan(row(tables[0][0], OFFSETS[0])[1])


# --- the metrics slot ----------------------------------------------------------------------------


class EndedCall:
    def __init__(self, status, arrived, ended, head, sent, count, error=None, first_event=0.0, resent=False):
        self.status, self.arrived, self.ended_at, self.head_at, self.sent_at = status, arrived, ended, head, sent
        self.count, self.error, self.first_event_at = count, error, first_event
        # The retry state, made by a first failure; resent: sent again after the keep-alive race
        self.attempts = None if count == 1 else SimpleNamespace(resent=resent)


def observer(core):
    from alloy.observability import metrics

    return core.SlotObserver(metrics.LATENCY_BOUNDS, metrics.OVERHEAD_BOUNDS, metrics.SLOT_LAYOUT), metrics


def test_a_call_lands_in_its_buckets(core):
    watcher, m = observer(core)
    slot = m.new_slot()
    # 2 ms in all, the upstream's head 1.5 ms after the send 100 us after arrival: 0.6 ms its own.
    watcher.observe(slot, EndedCall(200, 10.0, 10.002, 10.0016, 10.0001, 1), False)
    assert slot[2] == 1 and sum(slot[:10]) == 1
    assert slot[m.TOTAL + m.LATENCY_BOUNDS.index(0.0025)] == 1
    assert slot[m.TTFB + m.LATENCY_BOUNDS.index(0.0025)] == 1
    assert slot[m.OVERHEAD + m.OVERHEAD_BOUNDS.index(0.00075)] == 1
    assert slot[m.ATTEMPTS] == 1 and slot[m.RETRIES] == 0
    assert slot[m.OVERHEAD_SUM] == pytest.approx(0.0005)
    # A stream retried once, an error: no overhead observed, its first event counted.
    watcher.observe(slot, EndedCall(502, 20.0, 21.0, 20.5, 20.1, 2, error=object(), first_event=20.6), True)
    assert slot[5] == 1 and slot[m.RETRIES] == 1 and slot[m.ATTEMPTS] == 3
    assert sum(slot[m.OVERHEAD : m.TTFT]) == 1
    assert slot[m.TTFT + m.LATENCY_BOUNDS.index(1.0)] == 1
    # Sent twice, the first lost to the keep-alive race: two attempts, no retry.
    watcher.observe(slot, EndedCall(200, 30.0, 30.1, 30.05, 30.01, 2, resent=True), False)
    assert slot[m.ATTEMPTS] == 5 and slot[m.RETRIES] == 1
    with pytest.raises(ValueError):
        watcher.observe([0] * 3, EndedCall(200, 0.0, 1.0, 0.0, 0.0, 1), False)


@pytest.mark.skipif(PURE_ONLY, reason="compares the compiled twin with the pure one")
def test_slot_compiled_equals_pure_over_random_calls():
    rng = random.Random(5)
    (compiled_watcher, m), (pure_watcher, _) = (observer(twin) for twin in twins())
    slots = [m.new_slot(), m.new_slot()]
    for _ in range(5000):
        arrived = rng.uniform(0, 1000)
        sent = arrived + rng.choice([0.0, rng.expovariate(1e4)])
        head = rng.choice([0.0, sent + rng.expovariate(rng.choice([1e4, 10, 0.01])), sent - 1e-7])
        ended = max(arrived, head, sent) + rng.expovariate(rng.choice([1e5, 1e3, 0.1]))
        call = EndedCall(rng.choice([0, 200, 201, 404, 429, 500, 529, 999]), arrived, ended, head, sent,
                         rng.choice([1, 1, 2, 3]), rng.choice([None, None, "error"]),
                         rng.choice([0.0, arrived + rng.expovariate(100)]), rng.random() < 0.2)  # fmt: skip
        stream = rng.random() < 0.3
        compiled_watcher.observe(slots[0], call, stream)
        pure_watcher.observe(slots[1], call, stream)
    assert slots[0] == slots[1]


def test_lines_from_rows_decided_elsewhere(core):
    """Rows as Redis decided them (no slot memory): the same lines as the counters would make."""
    memory, counters = table(core)
    scopes, reported = key_scopes(rpm=10, tpm=500, team=(4, 0, 0, 0, 0, 0.0))
    _, _, lines = counters.take(scopes, reported, 120, NOW, WALL)
    rows = [row(memory, offset) for offset in OFFSETS]
    assert core.ratelimit_lines(reported, rows, NOW) == lines
    assert b"x-ratelimit-limit-requests: 4\r\nx-ratelimit-remaining-requests: 3\r\n" in lines
    assert b"x-ratelimit-remaining-tokens: 380\r\n" in lines


# --- what an answer cost -------------------------------------------------------------------------


USAGES = [
    None,
    {},
    {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 600}},
    {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": None},
    {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": [1, 2]},
    {"completion_tokens": 7},
    {"input_tokens": 20, "output_tokens": 9, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30},
    {"input_tokens": 20, "output_tokens": 9},
    {"prompt_tokens": True, "completion_tokens": -4},  # not counts: 0
    {"prompt_tokens": 12.0, "completion_tokens": "3"},
    {"prompt_tokens": 2**53, "completion_tokens": 1},  # beyond a double's exact integers
    {"prompt_tokens": 2**70, "completion_tokens": 2**64 - 1},
    {"input_tokens": 2**52, "cache_read_input_tokens": 2**52, "output_tokens": 1},  # the sum crosses 2**53
    # The Responses API: input_tokens includes the cached ones (input_tokens_details), as prompt_tokens does.
    {"input_tokens": 10000, "output_tokens": 50, "total_tokens": 10050, "input_tokens_details": {"cached_tokens": 9000}},
    {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "input_tokens_details": None},
]
PRICES = [None, (2.5, 10.0, 1.25), (0.15, 0.6, 0.075), (3, 15, 0.3), [2.5, 10.0, 1.25], (999999.0, 999999.0, 999999.0), (0.0, 0.0, 0.0)]


@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize("price", PRICES)
def test_usage_cost_is_tokens_of_priced(core, usage, price):
    from alloy.usage import tokens_of

    tokens_in, tokens_out, tokens_cached = tokens_of(usage)
    got = core.usage_cost(usage, price)
    assert got[:3] == (tokens_in, tokens_out, tokens_cached)
    if price is None:
        assert got[3:] == (0.0, 0)
    else:
        cost = (max(tokens_in - tokens_cached, 0) * price[0] + tokens_out * price[1] + tokens_cached * price[2]) / 1_000_000
        assert got[3:] == (cost, min(int(round(cost * 1_000_000_000)), 2**62))  # nano-USD


def test_responses_usage_counts_its_cached_input_once(core):
    # Codex-style traffic: 9,000 of 10,000 input tokens read from the provider's cache.
    got = core.usage_cost({"input_tokens": 10000, "output_tokens": 50, "total_tokens": 10050,
                           "input_tokens_details": {"cached_tokens": 9000}}, (2.5, 10.0, 1.25))  # fmt: skip
    assert got[:3] == (10000, 50, 9000)
    assert got[3] == pytest.approx((1000 * 2.5 + 50 * 10.0 + 9000 * 1.25) / 1e6)


@pytest.mark.parametrize(
    "usage, counts",
    [
        ({"prompt_tokens": 2**64, "completion_tokens": 5}, (10**12, 5, 0)),
        ({"prompt_tokens": -3, "completion_tokens": 2**62}, (0, 10**12, 0)),
        ({"prompt_tokens": -(2**70), "completion_tokens": 10**12 + 1}, (0, 10**12, 0)),
        ({"input_tokens": 10**13, "cache_read_input_tokens": 2**63, "output_tokens": 1}, (2 * 10**12, 1, 10**12)),
        ({"input_tokens": 2**70, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 2**64}}, (10**12, 3, 10**12)),
    ],
)
def test_usage_cost_believes_an_absurd_count_only_up_to_max_tokens(core, usage, counts):
    # An upstream's count beyond any real answer (or one that would overflow a C integer) must not
    # reach the limit counters or the ledger as it is: it is read as alloy.usage.MAX_TOKENS.
    got = core.usage_cost(usage, (1.0, 2.0, 0.5))
    assert got[:3] == counts
    assert type(got[4]) is int and got[4] < 2**63


@pytest.mark.skipif(PURE_ONLY, reason="compares the compiled twin with the pure one")
def test_usage_cost_compiled_equals_pure_over_random_answers():
    compiled, pure = twins()
    rng = random.Random(13)
    for _ in range(5000):
        if rng.random() < 0.5:
            usage = {"prompt_tokens": rng.randrange(0, 200_000), "completion_tokens": rng.randrange(0, 20_000)}
            if rng.random() < 0.5:
                usage["prompt_tokens_details"] = {"cached_tokens": rng.randrange(0, usage["prompt_tokens"] + 2)}
        elif rng.random() < 0.5:
            usage = {"input_tokens": rng.randrange(0, 200_000), "output_tokens": rng.randrange(0, 20_000),
                     "cache_read_input_tokens": rng.randrange(0, 50_000)}  # fmt: skip
        else:  # the Responses API
            usage = {"input_tokens": rng.randrange(0, 200_000), "output_tokens": rng.randrange(0, 20_000),
                     "input_tokens_details": {"cached_tokens": rng.randrange(0, 50_000)}}  # fmt: skip
        price = (rng.uniform(0, 80), rng.uniform(0, 300), rng.uniform(0, 40))
        got = compiled.usage_cost(usage, price)
        assert got == pure.usage_cost(usage, price), (usage, price)
        assert type(got[4]) is int and type(got[3]) is float


# --- records kept until a flush ------------------------------------------------------------------


def test_untracked_takes_a_record_of_plain_values_out_of_the_collectors_sight(core):
    import gc

    number = random.random()  # runtime values: a constant tuple would be untracked from the start
    peer = ("127.0.0.1", int(number * 1000))
    row = (number, "key", b"/v1/chat/completions", None, 200, peer, (str(number), None))
    holding = (number, [1, 2])  # a list can hold a reference back: stays tracked
    nested = (number, ("x", [3]))
    assert gc.is_tracked(row) and gc.is_tracked(peer)
    assert core.untracked(row) is row and core.untracked(holding) is holding and core.untracked(nested) is nested
    if core.__name__ == "alloy._core":
        assert not gc.is_tracked(row) and not gc.is_tracked(peer) and not gc.is_tracked(row[6])
    else:  # Python cannot untrack: the collector finds out at its next pass
        assert gc.is_tracked(row)
    assert gc.is_tracked(holding) and gc.is_tracked(nested) and gc.is_tracked(nested[1])
    assert row == (number, "key", b"/v1/chat/completions", None, 200, peer, (str(number), None))


# --- the ledger's rows as stored -----------------------------------------------------------------------

LEDGER_AT = (1, 2, 3, 4, 5)  # path, latency, tags, request id, metadata: where a raw row holds them


def ledger_row(path=b"/v1/chat/completions", latency=0.25, tags=None, id_line=b"x-request-id: abc-1\r\nx-alloy-attempts: 1\r\n", held=None):
    return ("key", path, latency, tags, id_line, held, 200)


def metadata_text(held):
    return None if held == b"{}" else held.decode().upper()


def test_a_raw_ledger_row_is_stored_as_text(core):
    rows = [
        ledger_row(),
        ledger_row(path=b"/v1/caf\xe9", latency=0.0012345, tags=b"t" * 300, id_line=b"", held=b'{"a":"b"}'),
        ledger_row(held=b"{}"),  # a document holding nothing to keep: stored as NULL ("")
        ("group", "/v1/chat/completions", 12.5, "", "", "", 429),  # a refusal group's row, already stored
    ]
    stored = core.ledger_stored(rows, LEDGER_AT, metadata_text)
    assert [list(row) for row in stored] == [
        ["key", "/v1/chat/completions", 250.0, "", "abc-1", "", 200],
        ["key", "/v1/café", 1.234, "t" * 256, "", '{"A":"B"}', 200],  # to the microsecond
        ["key", "/v1/chat/completions", 250.0, "", "abc-1", "", 200],
        ["group", "/v1/chat/completions", 12.5, "", "", "", 429],
    ]


@pytest.mark.skipif(PURE_ONLY, reason="compares the compiled twin with the pure one")
def test_ledger_rows_compiled_equal_pure_over_random_latencies():
    compiled, pure = twins()
    rng = random.Random(5)
    rows = [ledger_row(latency=rng.choice([rng.uniform(0, 1), rng.uniform(0, 900), rng.randrange(10**6) / 2e6])) for _ in range(5000)]
    assert compiled.ledger_stored(rows, LEDGER_AT, metadata_text) == pure.ledger_stored(rows, LEDGER_AT, metadata_text)
