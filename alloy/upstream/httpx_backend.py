"""The ``httpx`` upstream backend: the same interface as the core pool, over ``httpx.AsyncClient``.

Chosen per provider with ``client = "httpx"`` for upstreams that need what only httpx offers:
HTTP/2, proxies from the environment (``HTTPS_PROXY``...). It costs about a millisecond per request
more than the core pool, which is why it is not the default. Each exchange runs as one task.
"""

import asyncio

import httpx

from alloy.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from alloy.headers import HOP_BY_HOP


class HttpxHead:
    """The response head in the shape of the core ``ResponseHead`` (what the relay reads)."""

    __slots__ = ("status", "reason", "headers", "content_length", "chunked", "keep_alive")

    def __init__(self, response):
        self.status = response.status_code
        self.reason = response.reason_phrase.encode("latin-1", "replace")
        # httpx decodes the framing itself: the relay re-frames what it yields.
        self.headers = [
            (name.lower(), value)
            for name, value in response.headers.raw
            if name.lower() not in HOP_BY_HOP
        ]
        self.content_length = -1
        self.chunked = True
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
        self.loop = loop
        self.read_timeout = provider.read_timeout
        self.client = httpx.AsyncClient(
            http2=provider.http2,
            timeout=httpx.Timeout(provider.read_timeout, connect=provider.connect_timeout),
            limits=httpx.Limits(max_connections=provider.max_connections, max_keepalive_connections=64),
            trust_env=True,  # proxies and CA settings from the environment
        )
        # httpx adds Accept, Accept-Encoding and User-Agent of its own: the upstream must see only
        # what the client sent plus Alloy's headers, as with the core backend (an Accept-Encoding
        # nobody asked for would make the provider compress a body the client cannot read).
        for name in list(self.client.headers):
            if name.lower() != "connection":
                del self.client.headers[name]

    def start(self, request, sink, head_request=False):
        url = f"{self.origin.scheme}://{self.origin.host_header}{request.target.decode('latin-1')}"
        headers = [(k, v) for k, v in _parse_header_block(request.header_block) if k.lower() != b"host"]
        body = b"".join(bytes(part) for part in request.body)
        task = self.loop.create_task(self._exchange(request.method.decode(), url, headers, body, sink))
        return HttpxExchange(task)

    async def _exchange(self, method, url, headers, body, sink):
        try:
            async with self.client.stream(method, url, headers=headers, content=body or None) as response:
                sink.upstream_events([HttpxHead(response)])
                async for piece in response.aiter_raw():
                    if piece:
                        sink.upstream_events([piece])
        except asyncio.CancelledError:
            return
        except httpx.TimeoutException:
            sink.upstream_failed(UpstreamTimeout("upstream timed out"))
            return
        except (httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            sink.upstream_failed(UpstreamProtocolError(f"upstream answered invalid HTTP: {exc.__class__.__name__}"))
            return
        except httpx.HTTPError as exc:
            sink.upstream_failed(UpstreamError(f"upstream request failed: {exc.__class__.__name__}"))
            return
        sink.upstream_done()

    def tick(self):  # httpx enforces its own timeouts
        pass

    async def close(self):
        await self.client.aclose()


class HttpxExchange:
    def __init__(self, task):
        self.task = task

    def cancel(self):
        self.task.cancel()

    # httpx reads into its own buffers; back-pressure is its stream iterator awaiting our writes.
    def pause_reading(self):
        pass

    def resume_reading(self):
        pass
