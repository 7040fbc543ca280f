"""The ``httpx`` upstream backend: the same interface as the core pool, over ``httpx.AsyncClient``.

Chosen per provider with ``client = "httpx"`` for upstreams that need what only httpx offers:
HTTP/2, proxies from the environment (``HTTPS_PROXY``...). It costs about a millisecond per request
more than the core pool, which is why it is not the default. Each exchange runs as one task.
Back-pressure: while the client's socket is full the task stops pulling pieces from httpx, so at
most one read (httpx's, some tens of KB) waits in the gateway, as with the core pool.
"""

import asyncio

import httpx

from alloy.errors import (
    UpstreamConnectTimeout,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamUnreachable,
)
from alloy.headers import HOP_BY_HOP
from alloy.timing_wheel import TimingWheel
from alloy.upstream.pool import tls_context


class HttpxHead:
    """The response head in the shape of the core ``ResponseHead`` (what the relay reads)."""

    __slots__ = ("status", "headers", "content_length", "chunked", "keep_alive")
    block = None  # no pre-written client block: the relay encodes ``headers`` itself
    block_skip = None

    def __init__(self, response):
        self.status = response.status_code
        # httpx decodes the framing itself: the relay re-frames what it yields.
        self.headers = [
            (name.lower(), value)
            for name, value in response.headers.raw
            if name.lower() not in HOP_BY_HOP
        ]
        self.content_length = -1
        # Neither a length nor chunks (HTTP/1.0 servers, some proxies): the body ends at the
        # close, which the relay must tell from a cut (a close inside an event is one).
        self.chunked = not (
            response.http_version in ("HTTP/1.0", "HTTP/1.1")
            and "content-length" not in response.headers
            and "chunked" not in response.headers.get("transfer-encoding", "").lower()
        )
        self.keep_alive = True

    def get(self, name, default=None):
        for key, value in self.headers:
            if key == name:
                return value
        return default


def _parse_header_block(block):
    headers = []
    for line in block.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
    return headers


class HttpxUpstream:
    def __init__(self, origin, provider, loop):
        self.origin = origin
        self.named = f"upstream '{provider.name}'"  # what a client's error says (see CorePool)
        self.loop = loop
        # Response timeouts are the sweep's (see ``tick``), per request like the core pool's;
        # httpx keeps only the connect timeout, given per request (a model may override it).
        self.client = httpx.AsyncClient(
            http2=provider.http2,
            timeout=httpx.Timeout(None, connect=provider.connect_timeout),
            limits=httpx.Limits(
                max_connections=provider.max_connections, max_keepalive_connections=64, keepalive_expiry=provider.pool_idle_timeout
            ),
            trust_env=True,  # proxies and CA settings from the environment
            **({} if provider.ca_file is None else {"verify": tls_context(provider.ca_file)}),
        )
        # httpx adds Accept, Accept-Encoding and User-Agent of its own: the upstream must see only
        # what the client sent plus Alloy's headers, as with the core backend (an Accept-Encoding
        # nobody asked for would make the provider compress a body the client cannot read).
        for name in list(self.client.headers):
            if name.lower() != "connection":
                del self.client.headers[name]
        self.active = set()  # exchanges in flight
        self.wheel = TimingWheel()  # their response timeouts, by the sweep each falls in
        self.connect_timeouts = {}  # seconds -> httpx.Timeout, built once each

    def start(self, request, sink, head_request=False):
        url = f"{self.origin.scheme}://{self.origin.host_header}{request.target.decode('latin-1')}"
        headers = [(k, v) for k, v in _parse_header_block(request.header_block) if k.lower() != b"host"]
        body = b"".join(bytes(part) for part in request.body)
        timeout = self.connect_timeouts.get(request.timeouts.connect)
        if timeout is None:
            timeout = self.connect_timeouts[request.timeouts.connect] = httpx.Timeout(None, connect=request.timeouts.connect)
        exchange = HttpxExchange(self, request, sink, timeout)
        exchange.task = self.loop.create_task(exchange.run(request.method.decode(), url, headers, body))
        self.active.add(exchange)
        # Filed for the soonest deadline (Timeouts.watch_ticks: a shorter stream-idle one runs
        # from a head that may come at once); on_due files it again for the real one.
        sent = exchange.sent_at
        self.wheel.file(exchange, min(request.deadline(sent, sent, False), sent + request.timeouts.watch_ticks))
        return exchange

    def tick(self):
        self.wheel.advance()

    async def close(self):
        await self.client.aclose()


class HttpxExchange:
    """One request through httpx, as one task; reports to its sink like the core pool's exchanges."""

    def __init__(self, upstream, request, sink, timeout):
        self.upstream = upstream
        self.request = request
        self.sink = sink
        self.timeout = timeout
        self.task = None
        self.received = False
        self.wheel = upstream.wheel
        self.due = 0  # the sweep this exchange is filed for (0: not filed)
        self.sent_at = self.read_at = upstream.wheel.now  # sweep counts at the start and the last read
        self.flowing = asyncio.Event()  # cleared while the client cannot take more
        self.flowing.set()

    async def run(self, method, url, headers, body):
        sink = self.sink
        try:
            stream = self.upstream.client.stream(method, url, headers=headers, content=body or None, timeout=self.timeout)
            async with stream as response:
                self.received = True
                self.read_at = self.wheel.now
                if not 100 <= response.status_code <= 599:  # h11 takes any three digits (RFC 9110: 1xx-5xx)
                    self._fail(UpstreamProtocolError("upstream sent an invalid status line"))
                    return
                sink.upstream_events([HttpxHead(response)], False)
                async for piece in response.aiter_raw():
                    self.read_at = self.wheel.now
                    if piece:
                        sink.upstream_events([piece], False)
                    if not self.flowing.is_set():
                        await self.flowing.wait()
        except asyncio.CancelledError:
            return
        except httpx.ConnectTimeout:
            self._fail(UpstreamConnectTimeout(f"connecting to {self.upstream.named} timed out"))
            return
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # httpx reports a close before any answer and an unparsable answer with one class.
            named, kind = self.upstream.named, exc.__class__.__name__  # the provider, never its address
            garbled = isinstance(exc, httpx.RemoteProtocolError) and "without sending" not in str(exc)
            if isinstance(exc, httpx.ConnectError):
                self._fail(UpstreamUnreachable(f"could not connect to {named}: {kind}", unsent=True))
            elif not self.received and not garbled:  # nothing came back: the request was not processed
                self._fail(UpstreamUnreachable(f"{named} closed the connection before answering: {kind}"))
            elif isinstance(exc, httpx.RemoteProtocolError):
                self._fail(UpstreamProtocolError(f"{named} answered invalid HTTP: {kind}"))
            else:
                self._fail(UpstreamError(f"the request to {named} failed: {kind}"))
            return
        except httpx.DecodingError as exc:
            self._fail(UpstreamProtocolError(f"{self.upstream.named} answered invalid HTTP: {exc.__class__.__name__}"))
            return
        except httpx.HTTPError as exc:
            self._fail(UpstreamError(f"the request to {self.upstream.named} failed: {exc.__class__.__name__}"))
            return
        self.upstream.active.discard(self)
        self.wheel.drop(self)
        sink.upstream_done()

    def _fail(self, error):
        self.upstream.active.discard(self)
        self.wheel.drop(self)
        self.sink.upstream_failed(error)

    def on_due(self, now):
        """The sweep this exchange was filed for: fail it if one of its limits fell, else file it
        again for the next one."""
        if self not in self.upstream.active:
            return
        if self.received and not self.flowing.is_set():
            self.read_at = now  # paused by a slow client: that silence is ours, not the upstream's
        request, sent, last_read, received = self.request, self.sent_at, self.read_at, self.received
        deadline = request.deadline(sent, last_read, received)
        if now >= deadline:
            self.cancel()
            self.sink.upstream_failed(request.expired(now - sent, now - last_read, received))
        else:
            self.wheel.file(self, deadline)

    def cancel(self):
        self.upstream.active.discard(self)
        self.wheel.drop(self)
        self.task.cancel()

    def pause_reading(self):
        self.flowing.clear()

    def resume_reading(self):
        self.read_at = self.wheel.now  # the stream-idle clock starts again
        self.flowing.set()
