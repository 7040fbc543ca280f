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

import math
from dataclasses import dataclass, field

from alloy.core import frame_request_head
from alloy.errors import UpstreamTimeout
from alloy.timing_wheel import sweep_ticks  # noqa: F401 - (a leaf module: the compiled call imports it early)
from alloy.upstream.pool import CorePool, Origin




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


class UpstreamRequest:
    """One attempt's request. Its head is framed when it is made, so a value that does not belong
    in a head (``alloy.errors.UnsafeHead``) fails the attempt before any backend sees it. (A plain
    class rather than a dataclass: one is made per attempt, and the generated ``__init__`` plus
    ``__post_init__`` cost a frame more.)"""

    __slots__ = (
        "method", "target", "header_block", "body", "body_length", "timeouts", "total_ticks", "response_skip", "head",
    )  # fmt: skip

    def __init__(self, method, target, header_block, body, body_length, timeouts, total_ticks=0, response_skip=None):
        self.method = method
        self.target = target
        self.header_block = header_block  # host, credentials, forwarded headers, each line CRLF-terminated
        self.body = body  # buffers (bytes or memoryview) whose concatenation is the body
        self.body_length = body_length
        self.timeouts = timeouts
        self.total_ticks = total_ticks  # what is left of the total timeout for this attempt; 0: no limit
        # The response header names the client must not see (a passthrough relay's): given, the
        # core's response parser writes the client's header block while it parses (ResponseHead.block).
        self.response_skip = response_skip
        self.head = frame_request_head(method, target, header_block, body_length)  # checked by the core

    def deadline(self, sent, last_read, received):
        """The sweep at which the first of this request's limits falls, for a request sent when the
        sweep count was ``sent`` whose last read came when it was ``last_read`` (``received``: any
        byte came back; else ``last_read`` is ``sent``)."""
        timeouts = self.timeouts
        quiet = last_read + (timeouts.idle_ticks if received else timeouts.first_byte_ticks)
        if self.total_ticks and sent + self.total_ticks < quiet:
            return sent + self.total_ticks
        return quiet

    def expired(self, age_ticks, quiet_ticks, received, partial=False):
        """The ``UpstreamTimeout`` this request has run into, after ``age_ticks`` sweeps since it
        was sent and ``quiet_ticks`` since the last read (``received``: the response head came
        back; ``partial``: bytes of it did, or interim answers), or None."""
        timeouts = self.timeouts
        if self.total_ticks and age_ticks >= self.total_ticks:
            return UpstreamTimeout(f"upstream did not complete the response within {timeouts.total:g} s")
        if received:
            if quiet_ticks >= timeouts.idle_ticks:
                return UpstreamTimeout(f"upstream went silent for {timeouts.stream_idle:g} s")
        elif quiet_ticks >= timeouts.first_byte_ticks:
            what = "a complete response head" if partial else "the first byte"
            return UpstreamTimeout(f"upstream did not send {what} within {timeouts.first_byte:g} s")
        return None


def open_upstream(provider, loop):
    """The backend a provider asked for (``client = "core"`` or ``"httpx"``). httpx is imported
    only when a provider asks for it: the default backend never needs its ~5 MB."""
    origin = Origin.from_url(provider.base_url, provider.ca_file)
    if provider.client == "httpx":
        from alloy.upstream.httpx_backend import HttpxUpstream

        return HttpxUpstream(origin, provider, loop)
    return CorePool(origin, provider, loop)


__all__ = ["Origin", "Timeouts", "UpstreamRequest", "open_upstream", "sweep_ticks"]
