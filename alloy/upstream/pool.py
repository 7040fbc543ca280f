"""The ``core`` upstream backend: a pool of keep-alive HTTP/1.1 connections to one origin.

Measured on the development machine, a keep-alive request through ``httpx.AsyncClient`` costs
~1.1 ms and through a raw asyncio connection ~0.15 ms, so the default path is this pool: idle
connections in a LIFO stack (the most recently used socket is the least likely to have been closed
by the upstream), a cap on open connections with a FIFO queue of waiting requests, a connect
timeout. Retries are not the pool's business: ``alloy.attempts`` decides them.

The queue is bounded twice: at most ``max_queued`` requests wait (one more is refused at once with
``UpstreamBusy``), and none waits longer than its connect timeout (the sweep refuses it then). A
request whose client left is dropped from the queue at once, body and all.
"""

import asyncio
import logging
import os
import ssl
import time

from alloy.errors import UpstreamBusy, UpstreamConnectTimeout, UpstreamError
from alloy.timing_wheel import TimingWheel
from alloy.upstream.connection import UpstreamConnection, connection_error
from alloy.urls import split_url

# While an upstream cannot be reached, its failures are logged at most this often (with a count).
REPORT_EVERY = 10.0

log = logging.getLogger("alloy")


class ConnectReports:
    """Gateway events for one origin's connection attempts: a WARNING when connecting starts to
    fail (then at most one every ``REPORT_EVERY`` seconds, counting the failures in between), and
    an INFO when a connection succeeds again. A down upstream cannot flood the log."""

    __slots__ = ("label", "failing", "unreported", "last_report")

    def __init__(self, label):
        self.label = label
        self.failing = False
        self.unreported = 0
        self.last_report = 0.0

    def failed(self, error):
        self.unreported += 1
        now = time.monotonic()
        if not self.failing or now - self.last_report >= REPORT_EVERY:
            log.warning(
                "upstream %s: cannot connect (%s); %d failed attempt(s) since the last report",
                self.label, getattr(error, "message", error), self.unreported,
            )  # fmt: skip
            self.failing, self.unreported, self.last_report = True, 0, now

    def connected(self):
        if self.failing:
            self.failing = False
            log.info("upstream %s: connected again", self.label)


class Origin:
    """Where a provider lives: scheme, host, port, the path prefix of its API, TLS context."""

    def __init__(self, scheme, host, port, base_path, ca_file=None):
        self.scheme = scheme
        self.ca_file = ca_file  # the CAs that sign an https origin's certificate (None: the default store)
        self.host = host
        self.port = port
        self.base_path = base_path
        self.label = f"{scheme}://{host}:{port}"
        default_port = 443 if scheme == "https" else 80
        self.host_header = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            self.host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"

    @property
    def ssl(self):
        """The TLS context of an https origin, None for http."""
        return tls_context(self.ca_file) if self.scheme == "https" else None

    @classmethod
    def from_url(cls, url, ca_file=None):
        parts = split_url(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.host, port, parts.path.rstrip("/"), ca_file)


_TLS_CONTEXTS = {}  # CA file (None: the default store) -> the TLS context of every origin using it


def tls_context(ca_file=None):
    """The TLS context verifying certificates against ``ca_file``; None: ``SSL_CERT_FILE`` when the
    environment sets it (as httpx and OpenSSL read it), else certifi's store (the system's may be
    missing in slim containers; certifi ships with httpx anyway).

    Made at the first https connection, not at start: loading a CA store costs ~2.5 MB, which an
    idle gateway (or one in front of local servers) need not hold; and one context serves every
    origin with the same CAs (the host name checked is the connection's): one each cost ~0.7 MB."""
    context = _TLS_CONTEXTS.get(ca_file)
    if context is None:
        cafile = ca_file or os.environ.get("SSL_CERT_FILE")
        if not cafile:
            import certifi

            cafile = certifi.where()
        context = _TLS_CONTEXTS[ca_file] = ssl.create_default_context(cafile=cafile)
    return context


class CorePool:
    def __init__(self, origin, provider, loop):
        self.origin = origin
        self.loop = loop
        self.max_connections = provider.max_connections
        self.max_queued = provider.max_queued
        self.idle_timeout = provider.pool_idle_timeout  # [providers.X] pool_idle_timeout
        # LIFO stack of UpstreamConnection: taken from the end (the most recently used socket is
        # the least likely to have been closed by the upstream), so the oldest idle one is first.
        self._idle = []
        # Connections carrying an exchange, filed for the sweep their first response timeout falls
        # in; its count of sweeps also ages the requests waiting for a connection.
        self.wheel = TimingWheel()
        self._open = 0  # idle + busy + connecting
        # Requests waiting for a connection, oldest first: PendingExchange -> (request, sink,
        # head_request). A dict, so a cancelled request leaves it at once.
        self._waiting = {}
        self._closing = False
        # What a client's error says: the provider's name, never its address (the log has both).
        self.named = f"upstream '{provider.name}'"
        self.reports = ConnectReports(f"'{provider.name}' ({origin.label})")

    # --- the interface ------------------------------------------------------------------------

    def start(self, request, sink, head_request=False):
        connection = self._take_idle()
        if connection is not None:
            return connection.send(request, sink, head_request)
        if self._open < self.max_connections:
            pending = PendingExchange(self)
            self._connect(request, sink, head_request, pending)
            return pending
        if len(self._waiting) >= self.max_queued:
            # Reported like any failure to connect (soon, never from inside start): Attempts may
            # try another deployment.
            error = UpstreamBusy(
                f"{self.named}: all {self.max_connections} connections are busy "
                f"and {self.max_queued} requests already wait for one"
            )
            self.loop.call_soon(sink.upstream_failed, error)
            return PendingExchange(self)
        pending = PendingExchange(self, self.wheel.now + request.timeouts.connect_ticks)
        self._waiting[pending] = (request, sink, head_request)
        return pending

    def tick(self):
        """Once a second, from the gateway's sweep: enforce the response timeouts that fall now,
        and refuse the requests that waited for a connection longer than their connect timeout
        (the oldest first, so the walk stops at the first one still in time)."""
        wheel = self.wheel
        wheel.advance()
        while self._waiting:
            pending = next(iter(self._waiting))
            if pending.deadline > wheel.now:
                break
            _, sink, _ = self._waiting.pop(pending)
            sink.upstream_failed(
                UpstreamBusy(f"{self.named}: no connection became free within the connect timeout")
            )
        idle = self._idle
        if idle and self.loop.time() - idle[0].idle_since >= self.idle_timeout:
            self._close_expired_idle()

    def _close_expired_idle(self):
        """Close the idle connections past ``idle_timeout``: the oldest come first in the stack, so
        only those are looked at, and after a burst the gateway's sockets go back to what it uses."""
        idle, now = self._idle, self.loop.time()
        count = 0
        while count < len(idle) and now - idle[count].idle_since >= self.idle_timeout:
            count += 1
        expired = idle[:count]
        del idle[:count]
        for connection in expired:
            connection.close()
            self.forget(connection)

    async def close(self):
        self._closing = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    # --- called by connections ------------------------------------------------------------------

    def release(self, connection):
        """A connection finished its exchange cleanly: serve a waiting request or keep it idle."""
        if self._waiting:
            pending = next(iter(self._waiting))
            request, sink, head_request = self._waiting.pop(pending)
            pending.attach(connection.send(request, sink, head_request))
            return
        if self._closing:
            connection.close()
            self.forget(connection)
            return
        connection.idle_since = self.loop.time()
        self._idle.append(connection)

    def forget(self, connection):
        """A connection closed (or will): it no longer counts against the cap."""
        if connection in self._idle:
            self._idle.remove(connection)
        if not connection.forgotten:
            connection.forgotten = True
            self._open -= 1
            self._serve_waiting_with_new_connection()

    # --- internals ----------------------------------------------------------------------------------

    def _take_idle(self):
        now = self.loop.time()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
            self.forget(connection)
        return None

    def _serve_waiting_with_new_connection(self):
        while self._waiting and self._open < self.max_connections:
            pending = next(iter(self._waiting))
            request, sink, head_request = self._waiting.pop(pending)
            self._connect(request, sink, head_request, pending)

    def withdraw(self, pending):
        """A waiting request's client left: it no longer waits (nor holds its body)."""
        self._waiting.pop(pending, None)

    def _connect(self, request, sink, head_request, pending):
        self._open += 1
        task = self.loop.create_task(self._open_connection(request.timeouts.connect))
        task.add_done_callback(lambda done: self._connected(done, request, sink, head_request, pending))

    async def _open_connection(self, timeout):
        origin = self.origin
        context = origin.ssl
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: UpstreamConnection(self, self.loop),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamConnectTimeout(f"connecting to {self.named} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise connection_error(exc, self.named) from None
        return connection

    def _connected(self, task, request, sink, head_request, pending):
        if task.cancelled():
            self._open -= 1
            self._serve_waiting_with_new_connection()
            return
        error = task.exception()
        if error is not None:
            self._open -= 1
            error = error if isinstance(error, UpstreamError) else connection_error(error, self.named)
            self.reports.failed(error)
            self._serve_waiting_with_new_connection()
            if not pending.cancelled:
                sink.upstream_failed(error)
            return
        self.reports.connected()
        connection = task.result()
        if pending.cancelled:
            self.release(connection)
            return
        pending.attach(connection.send(request, sink, head_request))


class PendingExchange:
    """Stands for an exchange whose connection is still being opened (or waits for a free one)."""

    __slots__ = ("pool", "deadline", "cancelled", "_exchange", "_paused")

    def __init__(self, pool, deadline=0):
        self.pool = pool
        self.deadline = deadline  # the pool's tick count past which waiting fails (0: not waiting)
        self.cancelled = False
        self._exchange = None
        self._paused = False

    def attach(self, exchange):
        self._exchange = exchange
        if self._paused:
            exchange.pause_reading()

    def cancel(self):
        self.cancelled = True
        if self._exchange is not None:
            self._exchange.cancel()
        elif self.deadline:
            self.pool.withdraw(self)

    def pause_reading(self):
        self._paused = True
        if self._exchange is not None:
            self._exchange.pause_reading()

    def resume_reading(self):
        self._paused = False
        if self._exchange is not None:
            self._exchange.resume_reading()
