"""The once-a-second sweep looks only at what falls due (issue 11), and every timeout still fires at
the sweep the per-connection counters fired it: more than its limit after its clock started, at most
one sweep (a second) more.

In process, sweeps driven by hand: a real ``Gateway`` and its client connections over fake
transports (tests/integration/fake_transport.py), ``gateway.wheel.advance()`` standing for one
second of the server's timer, so each assertion names the exact sweep without waiting for it. The
same timeouts over real sockets and real seconds: test_front_door_limits.py,
test_security_limits.py, test_reliability_timeouts.py.
"""

import asyncio
from dataclasses import replace

import pytest

from alloy import config as alloy_config
from alloy.relay import Relay
from alloy.server import Gateway
from alloy.upstream import Timeouts, UpstreamRequest
from alloy.upstream.connection import UpstreamConnection
from fake_transport import FakeTransport

HEALTH = b"GET /health HTTP/1.1\r\nHost: g\r\n\r\n"


@pytest.fixture
def gateway():
    config = alloy_config.load(None, env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    loop = asyncio.new_event_loop()
    gateway = Gateway(config, loop)
    gateway.settings = replace(gateway.settings, read_timeout=2.0, keepalive_timeout=3.0, write_timeout=1.0)
    yield gateway
    loop.close()


def connect(gateway):
    transport = FakeTransport()
    connection = gateway.protocol()
    transport.protocol = connection
    connection.connection_made(transport)
    return connection, transport


def sweep(gateway):
    """One second of the server's timer; returns how many client connections it looked at."""
    return gateway.wheel.advance()


def sweeps_until_closed(gateway, transport, limit=20):
    for number in range(1, limit + 1):
        sweep(gateway)
        if transport.closed:
            return gateway.wheel.now
    raise AssertionError(f"still open after {limit} sweeps")


def test_a_thousand_idle_connections_are_looked_at_once_when_their_keepalive_ends(gateway):
    opened = [connect(gateway) for _ in range(1000)]
    # keepalive_timeout = 3: the counters closed an idle connection at the 4th sweep (idle > 3).
    assert [sweep(gateway) for _ in range(3)] == [0, 0, 0]
    assert not any(transport.closed for _, transport in opened)
    assert sweep(gateway) == 1000
    assert all(transport.closed and transport.writes == [] for _, transport in opened)
    assert gateway.connections == set() and gateway.wheel.filed() == 0


def test_a_request_restarts_the_idle_clock_without_filing_anything(gateway):
    connection, transport = connect(gateway)
    sweep(gateway)
    sweep(gateway)
    connection.data_received(HEALTH)  # answered at once (a prebuilt answer), at sweep count 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200")
    assert connection.due == 4, "activity moved nothing in the wheel"
    assert sweeps_until_closed(gateway, transport) == 2 + 4  # idle > 3 s after the answer


def test_slow_loris_gets_408_after_the_read_timeout_even_while_sending_bytes(gateway):
    connection, transport = connect(gateway)
    sweep(gateway)
    connection.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n")  # at sweep count 1
    assert connection.due == 1 + 3, "the read clock (2 s) files the connection before its keep-alive"
    sweep(gateway)
    connection.data_received(b"X-Slow: a\r\n")  # bytes keep coming, the request never completes
    assert sweeps_until_closed(gateway, transport) == 1 + 3  # read > 2 s after its first byte
    assert b" 408 " in transport.writes[-1].split(b"\r\n")[0]
    assert b"request_timeout" in transport.writes[-1]


def test_a_client_that_reads_nothing_is_dropped_after_the_write_timeout(gateway):
    connection, transport = connect(gateway)
    sweep(gateway)
    connection.pause_writing()  # at sweep count 1: its socket is full
    assert sweeps_until_closed(gateway, transport) == 1 + 2  # write_timeout = 1
    assert transport.aborted


def test_a_write_pause_that_ends_changes_no_deadline(gateway):
    connection, transport = connect(gateway)
    connection.pause_writing()
    connection.resume_writing()
    assert sweeps_until_closed(gateway, transport) == 4 and not transport.aborted  # the keep-alive one


def test_draining_closes_idle_connections_and_looks_at_the_others_every_sweep(gateway):
    idle, idle_transport = connect(gateway)
    reading, reading_transport = connect(gateway)
    reading.data_received(b"GET /health HTTP/1.1\r\n")  # a request half read when the drain starts
    gateway.start_draining()
    assert idle_transport.closed and not reading_transport.closed
    assert sweep(gateway) == 1 and sweep(gateway) == 1  # looked at each sweep while the drain lasts
    reading.data_received(b"Host: g\r\n\r\n")  # completes: answered with connection: close
    assert reading_transport.closed and b"connection: close" in reading_transport.writes[-1].lower()


def test_a_reload_that_shortens_the_keepalive_applies_to_open_connections(gateway):
    connection, transport = connect(gateway)  # filed for sweep 4 under keepalive_timeout = 3
    gateway.settings = replace(gateway.settings, keepalive_timeout=1.0)
    assert sweeps_until_closed(gateway, transport) == 2  # idle > 1 s


def test_an_upstream_connection_is_looked_at_only_when_its_response_limit_can_fall(gateway):
    pool = gateway.upstreams["openai"]
    upstream = UpstreamConnection(pool, gateway.loop)
    transport = FakeTransport()
    transport.protocol = upstream
    upstream.connection_made(transport)
    pool._open += 1
    pool.release(upstream)
    failures = []

    class Sink(Relay):  # what the pool writes to is a Relay (typed as one in the compiled build)
        def __init__(self):
            pass

        def upstream_events(self, events, last):
            pass

        def upstream_done(self):
            pass

        def upstream_failed(self, error):
            failures.append((pool.wheel.now, error.message))

    # first byte within 2 s (3 sweeps), then silences of at most 4 s (5 sweeps), no total limit
    timeouts = Timeouts(connect=1.0, first_byte=2.0, stream_idle=4.0, total=0.0)
    request = UpstreamRequest(b"POST", b"/v1/chat/completions", b"host: u\r\n", [b"{}"], 2, timeouts)
    pool.start(request, Sink())
    pool.tick()
    pool.tick()  # sweep 2: in time
    upstream.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")  # the head at sweep count 2
    assert failures == [] and upstream.due == 3
    pool.tick()  # sweep 3: the first-byte limit no longer applies; filed again for 2 + 5
    assert upstream.due == 7 and failures == []
    for _ in range(4):
        pool.tick()
    assert failures == [(7, "upstream went silent for 4 s")] and transport.closed


def test_the_separate_metrics_listener_ticks_its_connections_itself(gateway):
    from alloy.observability import MetricsFront

    front = MetricsFront(gateway, endpoint=None)  # what observability builds for [metrics] port
    transport = FakeTransport()
    connection = front.protocol()
    transport.protocol = connection
    connection.connection_made(transport)
    assert connection.wheel is not gateway.wheel and gateway.wheel.filed() == 0
    for _ in range(3):
        connection.tick(front.settings, False)  # observability's once-a-second timer
    assert not transport.closed
    connection.tick(front.settings, False)
    assert transport.closed and front.connections == set()  # idle > keepalive_timeout = 3


def test_the_metrics_listener_closes_idle_connections_at_the_first_tick_of_a_drain(gateway):
    from alloy.observability import MetricsFront

    front = MetricsFront(gateway, endpoint=None)
    transport = FakeTransport()
    connection = front.protocol()
    transport.protocol = connection
    connection.connection_made(transport)
    connection.tick(front.settings, False)
    assert not transport.closed
    gateway.draining = True  # what SIGTERM does; observability passes it on to its own tick
    connection.tick(front.settings, gateway.draining)
    assert transport.closed
