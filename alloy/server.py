"""The running gateway: event loop, listening socket, the once-a-second sweep, signals and drain.

The sweep enforces the client connections' timeouts through a timing wheel (``alloy.timing_wheel``):
it looks only at the connections whose deadline falls in this second, so 10,000 idle keep-alive
connections cost nothing until their keep-alive timeout comes; each upstream pool keeps a wheel of
its own for its response timeouts, advanced by the same sweep.

Shutdown (SIGTERM or SIGINT): stop accepting, close idle keep-alive connections, let requests and
streams in flight finish for up to ``shutdown_timeout`` seconds, then exit 0. A second signal exits
at once.
"""

import asyncio
import gc
import logging
import signal
import os
import socket
import sys
import threading
from dataclasses import replace

try:
    import uvloop
except ImportError:  # platforms without uvloop fall back to the stdlib loop
    uvloop = None

from alloy import core
from alloy.config import ProviderSettings
from alloy.client_connection import ClientConnection, over_capacity_answer
from alloy.endpoints import Endpoints
from alloy.errors import ServiceUnavailable
from alloy.malloc import return_start_memory, tune_allocator
from alloy.observability import Observability
from alloy.pipeline import Pipeline
from alloy.relay import drains_under_way
from alloy.timing_wheel import TimingWheel
from alloy.upstream import open_upstream
from alloy.urls import http_url



class Gateway:
    """What every connection shares: settings, the endpoint dispatcher, the set of connections."""

    def __init__(self, config, loop):
        self.config = config
        self.wheel = TimingWheel()  # the client connections' timeouts, swept once a second
        self.connections = set()
        self.settings = config.server
        self.loop = loop
        self.over_capacity = over_capacity_answer(self.settings)
        self.draining = False
        self.stopped = None  # at the drain's end: the error every request still waiting is answered
        self.upstreams = {p.name: open_upstream(p, loop) for p in config.providers}
        self.pipeline = Pipeline(config, self.upstreams, loop)
        self.endpoints = Endpoints(self.pipeline)
        self.dispatch = self.endpoints.dispatch
        # Told of each request dispatch refused with an AlloyError (request, connection, status,
        # error): set by alloy.observability, so refusals are counted and logged too.
        self.refused = None
        self.retired = []  # pools a reload left unused: still swept, closed once their requests had time
        self._sweeper = None

    @property
    def settings(self):
        return self._settings

    @settings.setter
    def settings(self, settings):
        """A reload may shorten a timeout: every connection works out its deadlines again at the
        next sweep (connections were filed for deadlines under the old limits)."""
        old = getattr(self, "_settings", None)
        self._settings = settings
        if old is not None and client_timeouts(old) != client_timeouts(settings):
            self.wheel.file_all_next(self.connections)

    def protocol(self):
        return ClientConnection(self)

    def start_sweeping(self):
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def _sweep(self):
        self.wheel.advance()
        for upstream in self.upstreams.values():
            upstream.tick()
        for upstream in self.retired:
            upstream.tick()
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def retire(self, upstream):
        """A reload no longer uses ``upstream``: the requests on it finish (their timeouts still
        swept), then it closes, ``shutdown_timeout`` seconds later."""
        self.retired.append(upstream)

        def close():
            if upstream in self.retired:
                self.retired.remove(upstream)
                self.loop.create_task(upstream.close())

        self.loop.call_later(self.settings.shutdown_timeout, close)

    def start_draining(self):
        self.draining = True
        for connection in list(self.connections):
            if connection.current is None and not connection.parser.in_progress and not connection.queue:
                connection.close()
        # The rest are looked at every sweep while the drain lasts, and closed once idle.
        self.wheel.file_all_next(self.connections)

    async def close(self):
        """The drain's end: what is still being answered ends now (an error event for a stream that
        started, a 503 for a client still waiting, and for each request pipelined behind it, the
        last one closing the connection), accounted before the access log and the ledger write
        their last lines; then every connection closes."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        stopped = self.stopped = ServiceUnavailable("the gateway shut down before this answer was complete")
        for connection in list(self.connections):
            current = connection.current
            if current is not None:
                current.stop(stopped)
            connection.close()
        for relay in drains_under_way():  # cut, and charged what they reserved
            relay._drained()
        for upstream in (*self.upstreams.values(), *self.retired):
            await upstream.close()


def client_timeouts(settings):
    """The limits the wheel's deadlines are computed from."""
    return (settings.read_timeout, settings.keepalive_timeout, settings.write_timeout)


def is_loopback(host):
    """Only this machine can connect (127.0.0.0/8, ::1, localhost). Read with inet_pton, not the
    ipaddress module, which a gateway would hold (~0.27 MB) for this one question at start."""
    try:
        return socket.inet_pton(socket.AF_INET, host)[0] == 127
    except (OSError, ValueError):  # not an IPv4 address (ValueError: a NUL in it)
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, host) == IPV6_LOOPBACK
    except (OSError, ValueError):
        return host == "localhost"


IPV6_LOOPBACK = bytes(15) + b"\x01"


def warn_if_open(settings):
    """Listening beyond loopback without a master key makes the gateway an open relay for the
    provider keys: say so loudly at start (once, by the supervisor with --workers)."""
    if settings.master_key is None and not is_loopback(settings.host):
        say(
            f"alloy: WARNING: listening on {settings.host} without a master key: anyone who can reach "
            "this address spends your provider keys (set ALLOY_MASTER_KEY or [server] master_key)"
        )


def say(message):
    """A line on stderr for the operator; a closed stderr must not stop the gateway. The line and
    its end go out in one write, so the workers' lines on a shared stderr never interleave."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class ListenError(Exception):
    """The gateway cannot listen where it was asked to."""


def listening_socket(host, port, reuse_port=False):
    """A listening socket on ``host:port``; with ``reuse_port`` several worker processes each bind
    their own socket to the same port and the kernel spreads new connections between them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(config, reuse_port=False, ready=None):
    loop = asyncio.get_running_loop()
    mock_server = None
    if config.uses_mock:
        config, mock_server = await _with_builtin_mock(config)
    gateway = Gateway(config, loop)
    observability = Observability(gateway)  # metrics, access log, gateway events
    settings = config.server
    sock = listening_socket(settings.host, settings.port, reuse_port)
    server = await loop.create_server(gateway.protocol, sock=sock, backlog=4096)
    metrics_address = await observability.start()
    # Before the address is announced: a SIGHUP sent on seeing it must reload, not end the process.
    # ``ready`` is given to a worker of alloy --workers N alone.
    take_reloads(gateway, observability, loop, supervised=ready is not None)
    gateway.start_sweeping()
    # Everything built so far lives as long as the process: keep it out of the collector's scans,
    # so a full collection under load walks only per-request objects (shorter pauses, lower p99).
    gc.freeze()
    return_start_memory()
    host, port = sock.getsockname()[:2]
    if ready is None:
        warn_if_open(settings)
        say(f"alloy listening on {http_url(host, port)} (core: {core.IMPLEMENTATION})")
        if metrics_address is not None:
            say(f"alloy: metrics served at {http_url(*metrics_address[:2])}/metrics")
    else:  # a worker: its supervisor announces the address, once, when every worker is ready
        ready()

    stop = asyncio.Event()
    signals = {"count": 0}

    def on_signal(signum):
        signals["count"] += 1
        if signals["count"] > 1:
            say("alloy: second signal: exiting now")
            os._exit(0)
        stop.set()
        # Whatever happens while draining, the process is gone shortly after the deadline.
        watchdog = threading.Timer(settings.shutdown_timeout + 5.0, os._exit, (0,))
        watchdog.daemon = True
        watchdog.start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    logging.getLogger("alloy").info("gateway started: pid %d on %s:%d", os.getpid(), host, port)

    await stop.wait()
    say("alloy: draining (stopped accepting new connections)")
    server.close()
    gateway.start_draining()
    deadline = loop.time() + settings.shutdown_timeout
    # Streams whose client left are still read for their usage (alloy.relay.Relay.drain): no
    # connection holds them, so they are waited for by name.
    while (gateway.connections or drains_under_way()) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await gateway.close()
    observability.close()  # the last access log lines, the last metrics snapshot
    if gateway.pipeline.governance is not None:
        gateway.pipeline.governance.close()  # the last ledger rows
    if mock_server is not None:
        mock_server.close()
    logging.getLogger("alloy").info("gateway stopped: pid %d", os.getpid())
    say("alloy: stopped")


async def _with_builtin_mock(config):
    """No provider configured: start the mock upstream in-process on an ephemeral loopback port and
    route everything to it, so a fresh install answers at once."""
    # Imported here: a gateway with a provider never loads the mock (its idle memory stays lower).
    from alloy.mock_upstream import MockOptions, start_mock_upstream

    mock_server = await start_mock_upstream("127.0.0.1", 0, MockOptions(record=False))
    port = mock_server.sockets[0].getsockname()[1]
    provider = ProviderSettings(
        name="mock", kind="openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="alloy-mock"
    )
    say(
        "alloy: no provider key found (set OPENAI_API_KEY or use --config): "
        "serving the built-in mock LLM, whose replies are canned"
    )
    return replace(config, providers=(provider,), default_provider="mock", uses_mock=True), mock_server


def take_reloads(gateway, observability, loop, supervised):
    """SIGHUP and POST /admin/reload reload the configuration (``alloy.reload.Reloader``, made by
    the first of them: most gateways never reload, and need not hold its module)."""
    made = []

    def reloader():
        if not made:
            from alloy.reload import Reloader

            made.append(Reloader(gateway, observability, supervised))  # it takes over the route
        return made[0]

    gateway.pipeline.admin_routes[b"/admin/reload"] = lambda *request: reloader().answer(*request)
    loop.add_signal_handler(signal.SIGHUP, lambda: reloader().reload("SIGHUP"))


def run(config, reuse_port=False, ready=None):
    tune_allocator()
    # Every connection is a file descriptor: max_connections and the upstream pools, not a soft
    # limit of 1,024, are what bounds the gateway.
    core.raise_open_file_limit()
    if uvloop is None:
        asyncio.run(serve(config, reuse_port, ready))
    else:
        uvloop.run(serve(config, reuse_port, ready))
