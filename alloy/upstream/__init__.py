"""The upstream interface: one small contract, two backends.

A proxied request is handed to ``Upstream.start(request, sink)``. The backend reports back by calling
the sink, never by returning a coroutine, so the default (``core``) backend relays bytes from the
upstream socket to the client socket without a task or a future per request:

- ``sink.upstream_events(events, last)``: a list of ``ResponseHead`` (once) and ``bytes`` body
  pieces, everything one read produced, so the sink can answer the client with one write; ``last``
  says the answer ends with this read (``upstream_done`` follows at once), so the end of a chunked
  body can go out in that same write;
- ``sink.upstream_done()``: the response is complete;
- ``sink.upstream_failed(error)``: an ``alloy.errors.UpstreamError`` (before or after the head).

``start`` returns an ``Exchange`` the caller can ``cancel()`` (client gone) or pause and resume
(back-pressure from a slow client).

Response timeouts (first byte, stream idle, total) travel with each request, so one provider can
serve models with different limits; the gateway's once-a-second sweep calls ``tick()`` to enforce
them. A backend files each exchange in a timing wheel (``alloy.timing_wheel``) for the sweep its
first deadline falls in (``UpstreamRequest.deadline``), so a sweep looks only at the exchanges due,
and a read costs one field write (the sweep number of the last read).
"""

from dataclasses import dataclass, field

from alloy.timing_wheel import sweep_ticks  # noqa: F401 - (a leaf module: the compiled call imports it early)
from alloy.upstream.pool import CorePool, Origin
# After the pool: the compiled connection module cimports the pool's class, so the pool must be
# imported first (it imports the connection module itself). An extension type, defined there.
from alloy.upstream.connection import UpstreamRequest




@dataclass(slots=True, frozen=True)
class Timeouts:
    """The limits of one deployment's requests, in seconds (and in sweep ticks for those the sweep
    enforces)."""

    connect: float
    first_byte: float
    stream_idle: float
    total: float  # the whole request, retries included; 0: none
    first_byte_ticks: int = field(init=False)
    idle_ticks: int = field(init=False)
    connect_ticks: int = field(init=False)  # also the longest wait for a free pooled connection
    # The soonest a response deadline can fall after the send: the first byte's, or the stream
    # idle one when that is shorter (it runs from the head, which may come at once). A request is
    # filed in the wheel for it, so a short idle limit is watched from the start.
    watch_ticks: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "connect_ticks", sweep_ticks(self.connect))
        object.__setattr__(self, "first_byte_ticks", sweep_ticks(self.first_byte))
        object.__setattr__(self, "idle_ticks", sweep_ticks(self.stream_idle))
        object.__setattr__(self, "watch_ticks", min(self.first_byte_ticks, self.idle_ticks))


def open_upstream(provider, loop):
    """The backend a provider asked for (``client = "core"`` or ``"httpx"``). httpx is imported
    only when a provider asks for it: the default backend never needs its ~5 MB."""
    origin = Origin.from_url(provider.base_url, provider.ca_file)
    if provider.client == "httpx":
        from alloy.upstream.httpx_backend import HttpxUpstream

        return HttpxUpstream(origin, provider, loop)
    return CorePool(origin, provider, loop)


__all__ = ["Origin", "Timeouts", "UpstreamRequest", "open_upstream", "sweep_ticks"]
