"""The upstream interface: one small contract, two backends.

A proxied request is handed to ``Upstream.start(request, sink)``. The backend reports back by calling
the sink, never by returning a coroutine, so the default (``core``) backend relays bytes from the
upstream socket to the client socket without a task or a future per request:

- ``sink.upstream_events(events)``: a list of ``ResponseHead`` (once) and ``bytes`` body pieces,
  everything one read produced, so the sink can answer the client with one write;
- ``sink.upstream_done()``: the response is complete;
- ``sink.upstream_failed(error)``: an ``alloy.errors.UpstreamError`` (before or after the head).

``start`` returns an ``Exchange`` the caller can ``cancel()`` (client gone) or pause and resume
(back-pressure from a slow client).
"""

from dataclasses import dataclass

from alloy.upstream.httpx_backend import HttpxUpstream
from alloy.upstream.pool import CorePool, Origin


@dataclass(slots=True)
class UpstreamRequest:
    method: bytes
    target: bytes
    header_block: bytes  # host, provider credentials and forwarded headers, each line CRLF-terminated
    body: list  # buffers (bytes or memoryview) whose concatenation is the body
    body_length: int


def open_upstream(provider, loop):
    """The backend a provider asked for (``client = "core"`` or ``"httpx"``)."""
    origin = Origin.from_url(provider.base_url)
    if provider.client == "httpx":
        return HttpxUpstream(origin, provider, loop)
    return CorePool(origin, provider, loop)


__all__ = ["Origin", "UpstreamRequest", "open_upstream"]
