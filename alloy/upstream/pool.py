"""The ``core`` upstream backend: a pool of keep-alive HTTP/1.1 connections to one origin.

Measured on the development machine, a keep-alive request through ``httpx.AsyncClient`` costs
~1.1 ms and through a raw asyncio connection ~0.15 ms, so the default path is this pool: idle
connections in a LIFO stack (the most recently used socket is the least likely to have been closed
by the upstream), a cap on open connections with a FIFO queue of waiting requests, a connect
timeout. Retries are not the pool's business: ``alloy.attempts`` decides them.
"""

import asyncio
import collections
import ssl
from urllib.parse import urlsplit

import certifi

from alloy.errors import UpstreamConnectTimeout, UpstreamError
from alloy.upstream.connection import UpstreamConnection, connection_error

# Close pooled connections idle for longer than this: most servers drop idle keep-alive
# connections after 60-120 s, and a write to a socket the peer already closed costs a retry.
POOL_IDLE_SECONDS = 50.0


class Origin:
    """Where a provider lives: scheme, host, port, the path prefix of its API, TLS context."""

    def __init__(self, scheme, host, port, base_path):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.base_path = base_path
        self.label = f"{scheme}://{host}:{port}"
        default_port = 443 if scheme == "https" else 80
        self.host_header = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            self.host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        self.ssl = _tls_context() if scheme == "https" else None

    @classmethod
    def from_url(cls, url):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def _tls_context():
    # The system store may be missing in slim containers; certifi ships with httpx anyway.
    return ssl.create_default_context(cafile=certifi.where())


class CorePool:
    def __init__(self, origin, provider, loop):
        self.origin = origin
        self.loop = loop
        self.max_connections = provider.max_connections
        self._idle = []  # LIFO stack of UpstreamConnection
        self.busy = set()  # connections carrying an exchange (their read timeouts are swept)
        self._open = 0  # idle + busy + connecting
        self._waiting = collections.deque()  # (request, sink, head_request, PendingExchange)
        self._closing = False

    # --- the interface ------------------------------------------------------------------------

    def start(self, request, sink, head_request=False):
        connection = self._take_idle()
        if connection is not None:
            return connection.send(request, sink, head_request)
        pending = PendingExchange()
        if self._open < self.max_connections:
            self._connect(request, sink, head_request, pending)
        else:
            self._waiting.append((request, sink, head_request, pending))
        return pending

    def tick(self):
        """Once a second, from the gateway's sweep: enforce response timeouts."""
        for connection in list(self.busy):
            connection.tick()

    async def close(self):
        self._closing = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    # --- called by connections ------------------------------------------------------------------

    def release(self, connection):
        """A connection finished its exchange cleanly: serve a waiting request or keep it idle."""
        while self._waiting:
            request, sink, head_request, pending = self._waiting.popleft()
            if pending.cancelled:
                continue
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
            if not connection.closed and now - connection.idle_since < POOL_IDLE_SECONDS:
                return connection
            connection.close()
            self.forget(connection)
        return None

    def _serve_waiting_with_new_connection(self):
        while self._waiting and self._open < self.max_connections:
            request, sink, head_request, pending = self._waiting.popleft()
            if not pending.cancelled:
                self._connect(request, sink, head_request, pending)

    def _connect(self, request, sink, head_request, pending):
        self._open += 1
        task = self.loop.create_task(self._open_connection(request.timeouts.connect))
        pending.connecting = task
        task.add_done_callback(lambda done: self._connected(done, request, sink, head_request, pending))

    async def _open_connection(self, timeout):
        origin = self.origin
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: UpstreamConnection(self, self.loop),
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamConnectTimeout(f"connecting to upstream {origin.label} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise connection_error(exc, origin) from None
        return connection

    def _connected(self, task, request, sink, head_request, pending):
        pending.connecting = None
        if task.cancelled():
            self._open -= 1
            self._serve_waiting_with_new_connection()
            return
        error = task.exception()
        if error is not None:
            self._open -= 1
            self._serve_waiting_with_new_connection()
            if not pending.cancelled:
                sink.upstream_failed(error if isinstance(error, UpstreamError) else connection_error(error, self.origin))
            return
        connection = task.result()
        if pending.cancelled:
            self.release(connection)
            return
        pending.attach(connection.send(request, sink, head_request))


class PendingExchange:
    """Stands for an exchange whose connection is still being opened (or waits for a free one)."""

    def __init__(self):
        self.cancelled = False
        self.connecting = None
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

    def pause_reading(self):
        self._paused = True
        if self._exchange is not None:
            self._exchange.pause_reading()

    def resume_reading(self):
        self._paused = False
        if self._exchange is not None:
            self._exchange.resume_reading()
