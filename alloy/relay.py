"""The relay stage: one attempt's upstream answer, written to the client as it arrives.

A relay is the sink an upstream backend reports to (``alloy.upstream``: ``upstream_events``,
``upstream_done``, ``upstream_failed``) for one attempt of a call (``alloy.call``), and the only
writer to the client while that attempt runs. Two kinds, side by side:

- ``PassthroughRelay`` (OpenAI-compatible providers, Azure): the upstream's head is re-framed
  (hop-by-hop and account headers dropped, Alloy's own added) and written at once; each body piece
  is written the moment it arrives, chunk-framed when the upstream's answer was chunked, so
  ``text/event-stream`` answers go out event by event. Everything one upstream read produced goes to
  the client in one write.
- ``TranslatedRelay`` (Anthropic, Gemini): a stream is cut into events by the core ``SSESplitter``
  and each translated into OpenAI chunks as it arrives; a complete answer is read whole (capped at
  ``max_buffered_response_bytes``) and translated at the end.

Both hold an answer another attempt may replace (``Call.holds``: a retryable status, or a 400 that
a context-window or content-policy fallback may repair): read whole, written only if it finally is
the answer (``relay_held``), capped at ``HOLD_LIMIT`` so an upstream cannot make the gateway
buffer without end. Both keep the last two body pieces they wrote, by reference, so the call can
read the answer's ``usage`` when a finish listener asks; and when the cache lookup set
``call.recording``, they append every body piece the client receives to it (unframed).
"""

import logging
import weakref
from time import monotonic

import orjson

from alloy.core import LAST_CHUNK, SSESplitter, encode_headers, frame_chunk, frame_head, frame_response, frame_stream_head
from alloy.errors import ResponseTooLarge, UnsafeHead, UpstreamProtocolError, error_payload
from alloy.headers import DONE_EVENT, EVENT_STREAM_HEADERS, JSON_HEADER
from alloy.providers.types import base64_embeddings
from alloy.stream_usage import WholeEvents, recorded_with

log = logging.getLogger("alloy")
MIN_MASKED = 8  # characters of the shortest provider key masked in error answers (masked_secret)
HOLD_LIMIT = 1024 * 1024  # an error answer held for a possible retry is never longer than this
# What keeping one piece of a body costs besides its bytes (the object's header, its list slot,
# the allocator's rounding): counted against the bounds, so that an answer trickling in as one
# tiny piece per read cannot hold many times its size (``_coalesced`` joins those of one read).
PIECE_COST = 64
OVERHEAD_LINE = b"x-alloy-overhead-us: %d\r\n"  # % microseconds (formatted in place: once per answer)

# The relays reading on for a client that left (``Relay.drain``), in this process: a shutdown waits
# for them as for open connections, then ends them (alloy.server). Weak: an ended one goes by itself.
DRAINING = weakref.WeakSet()


def drains_under_way():
    """The drains whose call has not ended yet."""
    return [relay for relay in DRAINING if not relay.call.ended]


class Relay:
    """What both relays share: the client side, holding, and the controls the call uses."""

    __slots__ = (
        "call", "connection", "transport", "keep_alive", "extra_headers", "handle", "finished", "held",
        "held_bytes", "held_at", "before_last", "last", "chunked", "draining", "__weakref__",
    )  # fmt: skip

    def __init__(self, call, extra_headers):
        self.call = call
        self.connection = connection = call.connection
        self.transport = connection.transport
        self.keep_alive = call.request.keep_alive
        self.extra_headers = extra_headers  # x-request-id and the x-alloy-* lines naming what served it
        self.handle = None  # the backend's handle on the upstream request: cancel, pause, resume
        self.finished = False
        self.held = None  # an answer another attempt may replace: [head, body pieces...]
        self.held_bytes = 0
        self.held_at = 0.0  # when the held answer's head arrived
        self.chunked = False  # the client's answer is chunked (else its length is known, or it ends at close)
        self.before_last = self.last = b""  # the last two body pieces written (where usage is)
        self.draining = None  # the client left mid-stream: the timer that bounds reading on (drain)

    # --- called by the call --------------------------------------------------------------------

    def cancel(self):
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()

    def report_so_far(self, call):
        """The client left: the last pieces it was sent go to the call, whose usage may be in them
        (the openai SDK closes at ``data: [DONE]``, before the stream's last chunk)."""
        if self.last:
            call.tail = (self.before_last, self.last)

    def answer_started(self):
        """Has any of the answer been written to the client (so no other answer can be given)?"""
        raise NotImplementedError

    # --- the sink interface (alloy.upstream), each relay's own ------------------------------------

    def upstream_events(self, events, last=False):
        raise NotImplementedError

    def upstream_done(self):
        raise NotImplementedError

    def upstream_failed(self, error):
        raise NotImplementedError

    def drain(self, seconds, loop):
        """The client left a stream under way: read the rest of the upstream's answer, written
        nowhere, for its usage (which a stream gives last), for at most ``seconds``; then the call
        ends as the answer does (``_end``, ``upstream_failed``), or as a client gone (``_drained``).
        False, changing nothing, when this answer is not such a stream."""
        if not self._drainable() or self.finished or self.held is not None or self.handle is None:
            return False
        if hasattr(self.transport, "real"):
            # A Messages or Responses client's wire goes on reading the answer back (a native
            # stream's usage is read there, its input tokens from the first event), written nowhere.
            self.transport.real = DISCARD
        else:
            self.transport = DISCARD
        self.draining = loop.call_later(seconds, self._drained)
        DRAINING.add(self)
        self.handle.resume_reading()  # the client's back-pressure, if any, went with it
        return True

    def _drainable(self):
        raise NotImplementedError

    def _drained(self):
        """The drain's time is up before the answer ended (or the gateway stops): the upstream
        request goes too, and the call is charged what it reserved."""
        call = self.call
        if not self.finished and not call.ended and call.relay is self:
            call.cancel()

    def pause(self):
        if self.handle is not None and not self.finished:
            self.handle.pause_reading()

    def resume(self):
        if self.handle is not None and not self.finished:
            self.handle.resume_reading()

    # --- shared steps ----------------------------------------------------------------------------

    def _hold(self, events):
        """Keep ``events`` (body pieces) of a held answer, as one piece; past HOLD_LIMIT, True (the
        caller decides what then)."""
        piece = events[0] if len(events) == 1 else b"".join(events)
        self.held.append(piece)
        self.held_bytes += len(piece) + PIECE_COST
        return self.held_bytes > HOLD_LIMIT

    def _closing(self):
        """Must the connection close after this answer? (The request said so, or we drain.)"""
        if self.keep_alive and self.connection.closes_for_drain():
            self.keep_alive = False
        return not self.keep_alive

    def _stream_head(self, status, block):
        """The head of an answer whose length is not known yet: chunked; for an HTTP/1.0 client,
        which cannot read chunks (RFC 9112 section 6.1), delimited by closing the connection."""
        if self.call.request.version < 11:
            self.keep_alive = False
            return frame_head(status, block, -1, True)
        self.chunked = True
        return frame_stream_head(status, block, self._closing())

    def _piece(self, data):
        return frame_chunk(data) if self.chunked else data

    def _end(self, out=None):
        """The answer is written whole: its last bytes, the call's account, the next request."""
        if out:
            self.transport.writelines(out)
        self.call.finish()
        if self.draining is not None:
            self.draining.cancel()
            return  # read for its usage after the client left: no connection to go on with
        self.connection.answer_finished(self.keep_alive)


class _Discard:
    """Where a drained answer is written (see ``Relay.drain``): nowhere. A transport to the relay,
    and to the Messages or Responses wire it may write through."""

    def write(self, data):
        pass

    def writelines(self, pieces):
        pass

    def close(self):
        pass

    def abort(self):
        pass

    def is_closing(self):
        return True

    def get_extra_info(self, name, default=None):
        return default


DISCARD = _Discard()
RETRY_ADVICE = frozenset((b"x-should-retry",))  # the upstream's, replaced by Alloy's (Call.retries_spent)


def masked_secret(api_key):
    """(the provider key, a mask of the same length), to take the key out of an error answer that
    repeats it (some servers print "invalid key: sk-..."); None without a key. The same length
    keeps an announced Content-Length true; like OpenAI's own messages, the mask shows the first 3
    and last 4 characters of a long key. A key of fewer than ``MIN_MASKED`` characters is a
    placeholder (a local server's "x"), not a secret: masking it would mask those letters wherever
    an answer has them."""
    if not api_key or len(api_key) < MIN_MASKED:
        return None
    key = api_key.encode()
    return key, (key[:3] + b"*" * (len(key) - 7) + key[-4:]) if len(key) >= 16 else b"*" * len(key)


class PassthroughRelay(Relay):
    __slots__ = (
        "response_skip", "head_sent", "event_stream", "closed_chunks", "hidden_usage", "whole", "scrub", "scrub_rest",
        "until_close",
    )  # fmt: skip

    def __init__(self, call, extra_headers, response_skip, hidden_usage=None):
        super().__init__(call, extra_headers)
        self.response_skip = response_skip  # upstream headers the client never sees
        self.head_sent = False
        self.event_stream = False
        self.closed_chunks = False  # the last chunk went out with the last data
        # A stream asked for usage the client did not ask for (alloy.stream_usage): the filter
        # that takes it out again, keeping the counts for the call.
        self.hidden_usage = hidden_usage
        # An event stream goes to the client in whole events (alloy.stream_usage.WholeEvents), so an
        # error event after a failure never lands inside one; made by the head of an uncompressed
        # event stream (the hidden-usage filter above cuts its events itself when it runs).
        self.whole = None
        self.scrub = None  # an error answer's: (the provider key, its mask), see masked_secret
        self.scrub_rest = b""  # the end of what came so far that may be the key's beginning (_scrubbed)
        self.until_close = False  # the upstream's body has neither length nor chunks: it ends at close

    # --- the sink interface ------------------------------------------------------------------------

    def upstream_events(self, events, last=False):
        if self.finished:
            return
        if not self.head_sent:
            if self.held is not None:
                if self._hold(events):
                    # Too big to hold: the final answer after all, relayed from here as it comes
                    # (a 400 blames the request, not the deployment: Call.last_failure_relayed).
                    events, self.held = self.held, None
                    call = self.call
                    status = events[0].status
                    call.last_failure_relayed(status)
                    call.head_arrived(status)
                    call.head_at = self.held_at  # when it came, for the overhead header and the log
                    self._write(events)
                return
            status = events[0].status
            call = self.call
            if status >= 400:
                if call.holds(status):
                    self.held_at = monotonic()  # its head's time, should it be the answer after all
                    self.held = held = _coalesced(events)
                    self.held_bytes = sum([len(piece) + PIECE_COST for piece in held[1:]])
                    return
                call.last_failure_relayed(status)
            call.head_arrived(status)
            try:
                self._write(events, last)
            except UnsafeHead as error:  # a head the core refuses to write: nothing was written
                self.head_sent = self.chunked = False
                self.cancel()
                call.failed_with_error(UpstreamProtocolError(f"the upstream's answer cannot be relayed: {error.message}"))
            return
        self._write(events, last)

    def answer_started(self):
        return self.head_sent

    def _drainable(self):
        return self.head_sent and self.event_stream

    def report_so_far(self, call):
        Relay.report_so_far(self, call)
        hidden = self.hidden_usage
        if hidden is not None and hidden.usage is not None:
            call.usage_known(hidden.usage)  # read from a usage chunk the client was not sent

    def upstream_done(self):
        if self.finished:
            return
        if self.held is not None:
            self.finished = True
            self.call.failed_with_answer(self)
            return
        out = [LAST_CHUNK] if self.chunked and not self.closed_chunks else []
        rest = self._scrub_rest() if self.scrub_rest else b""  # an error answer's end, held back in case a key began there
        left = self._left_over()  # the upstream ended inside an event
        if left and self.until_close:
            # Its end was the connection's close, halfway through an event: a cut, not a finish
            # (a closed chunked or sized answer that stops mid-event is the provider's choice).
            name = self.call.deployment.provider.name
            self.upstream_failed(UpstreamProtocolError(f"upstream '{name}' closed the stream inside an event"))
            return
        self.finished = True
        if rest or left:
            out.insert(0, self._piece(self._last_piece(rest + left)))
        self.call.succeeded((self.before_last, self.last))
        self._end(out or None)

    def upstream_failed(self, error):
        if self.finished:
            return
        # The stream is whole, its [DONE] relayed: the upstream failed only to end its own framing
        # (a length it did not fill, a last chunk it never sent). Never an error after [DONE]: a
        # chunked answer ends as a finished one; one framed with the upstream's length closes.
        whole = self.event_stream and self.last and self.last.rstrip().endswith(DONE_EVENT.rstrip())
        if whole and self.chunked:
            self.upstream_done()
            return
        self.finished = True
        if not self.head_sent:
            self.call.failed_with_error(error)
            return
        connection = self.connection
        if self.event_stream:
            # The stream already started: end it with an OpenAI-style error event, cleanly framed,
            # so SDKs raise an error instead of hanging or silently truncating.
            if not whole:
                event = stream_error_event(self.call.path, error)
                self.transport.writelines([frame_chunk(event), LAST_CHUNK] if self.chunked else [event])
                if self.draining is None:  # (a client that left gets nothing)
                    self.call.bytes_out += len(event)  # the body the client received ends with it
            connection.current = None
            connection.close()
        else:
            # A body cut short. The client side ends before the account, the call still current:
            # a Messages or Responses wire, which had read it back without writing a byte, gives
            # its client Alloy's own error instead (the call's: a timeout stays a 504) and says so
            # on the call.
            self.call.error = error
            connection.close() if self.chunked else self.transport.abort()
            connection.current = None
        self.call.broke_off(error)

    def relay_held(self):
        """This held answer is the final one after all."""
        self.call.head_at = self.held_at  # (another attempt's may have been set since)
        events, self.held = self.held, None
        self._write(events)
        left = self._scrub_rest() + self._left_over()
        out = [self._piece(self._last_piece(left))] if left else []
        self._end([*out, LAST_CHUNK] if self.chunked else out or None)

    # --- writing to the client ------------------------------------------------------------------------

    def _write(self, events, last=False):
        if len(events) > 2:  # one read, many chunks (a stream's events): one piece, framed once
            events = _coalesced(events)
        out = []
        call = self.call
        recording = call.recording
        hidden = self.hidden_usage
        scrub = self.scrub
        sent = 0
        for event in events:
            if type(event) is bytes:
                if scrub is not None:  # an error answer: never the provider key (masked_secret)
                    event = self._scrubbed(event, scrub)
                    if not event:
                        continue
                record = recording is not None
                if self.event_stream:  # known once the head went through
                    cut = hidden if hidden is not None else self.whole
                    if cut is not None:
                        event = cut.feed(event)
                        if hidden is not None and hidden.usage_event is not None:
                            # The usage the client did not ask for stays in the recording: the
                            # cache answers later clients who ask for it (or for JSON) from it.
                            if record:
                                recording.append(recorded_with(event, hidden.usage_event))
                                record = False
                            hidden.usage_event = None
                        if not event:
                            continue
                self.before_last = self.last
                self.last = event
                sent += len(event)
                out.append(frame_chunk(event) if self.chunked else event)
                if record:
                    recording.append(event)
            else:
                out.append(self._head(event))
                hidden = self.hidden_usage  # the head may have turned it off
                scrub = self.scrub
        if last and self.chunked:  # the answer ends here: its last chunk goes in the same write
            left = self._scrub_rest() + self._left_over() if self.scrub_rest else self._left_over()
            if left:
                out.append(frame_chunk(self._last_piece(left)))
            out.append(LAST_CHUNK)
            self.closed_chunks = True
        if not out:
            return  # all of it was usage the client did not ask for, or an incomplete event
        if sent:
            if not call.bytes_out and self.event_stream:
                call.first_event_at = monotonic()  # time to first token, for the metrics
            call.bytes_out += sent
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)

    def _scrubbed(self, piece, scrub):
        """``piece`` of an error answer with the provider key masked, where it may also have begun
        in the piece before: the end that could be the beginning of the key is held back
        (``scrub_rest``) until the next piece, or the answer's end (``_scrub_rest``), so a key
        cut between two reads is masked all the same."""
        key, mask = scrub
        if self.scrub_rest:
            piece = self.scrub_rest + piece
        piece = piece.replace(key, mask)
        first = key[:1]
        at = piece.find(first, max(len(piece) - len(key) + 1, 0))
        while at >= 0 and not key.startswith(piece[at:]):
            at = piece.find(first, at + 1)
        if at < 0:
            self.scrub_rest = b""
            return piece
        self.scrub_rest = piece[at:]
        return piece[:at]

    def _scrub_rest(self):
        """What ``_scrubbed`` held back, at the answer's end (it was not the key after all), passed
        through the event cutter like any piece."""
        rest = self.scrub_rest
        if not rest:
            return b""
        self.scrub_rest = b""
        cut = self.hidden_usage if self.hidden_usage is not None else self.whole
        return cut.feed(rest) if cut is not None and self.event_stream else rest

    def _last_piece(self, left):
        """``left``, held to the end of the stream, goes out now: counted and recorded like any."""
        self.before_last, self.last = self.last, left
        self.call.bytes_out += len(left)
        if self.call.recording is not None:
            self.call.recording.append(left)
        return left

    def _left_over(self):
        """What the event cutter holds, at the end (the part of an event the upstream never
        ended); the hidden usage's counts go to the call on the way."""
        hidden = self.hidden_usage
        if hidden is not None and self.event_stream:
            left = hidden.finish()  # which may be the usage chunk itself, its blank line missing
            self.call.usage_known(hidden.usage)
            return left
        return self.whole.finish() if self.whole is not None else b""

    def _head(self, head):
        self.head_sent = True
        status = head.status
        call = self.call
        call.status = status
        secret = call.deployment.provider.secret  # (the provider key, its mask), or None
        if status >= 400:
            self.scrub = secret  # an error's body is masked too
        block = head.block  # written by the core's parser when the request named our skip set
        spent = call.retries_spent(status) if status >= 400 else b""
        if spent and head.get(b"x-should-retry") is not None:
            block = encode_headers(head.headers, self.response_skip | RETRY_ADVICE)  # Alloy's advice, not two
        elif block is None or head.block_skip is not self.response_skip:
            block = encode_headers(head.headers, self.response_skip)
        if secret is not None and secret[0] in block:
            # Never the provider key in a head the client gets, whatever its status (an error's
            # www-authenticate, a server echoing the request's headers, a redirect's Location)
            block = block.replace(secret[0], secret[1])
        block += self.extra_headers
        if spent:
            block += spent
        upstream_id = head.get(b"x-request-id")
        if upstream_id is not None:
            # The client's x-request-id is the gateway's (one value, the one in its logs); the
            # provider's own travels on under its own name, for a support ticket with the provider.
            block += b"x-upstream-request-id: " + upstream_id + b"\r\n"
        if call.pipeline.overhead_header:
            # The gateway's own time: up to the upstream request, and from its head to this one.
            block += OVERHEAD_LINE % ((call.sent_at - call.arrived + monotonic() - call.head_at) * 1e6)
        close = self._closing()
        if status == 204 or status == 304:
            return frame_head(status, block, -1, close)  # no body, no length (RFC 9110 section 8.6)
        if call.request.method == b"HEAD":
            # No body follows; the length is the one the upstream says a GET would have (RFC 9110
            # section 9.3.2), not 0, and none when it says none.
            declared = head.get(b"content-length")
            length = int(declared) if declared is not None and declared.isdigit() and len(declared) < 19 else -1
            return frame_head(status, block, length, close)
        if head.content_length >= 0:
            # A body of announced length goes as it is (taking usage out would break its length).
            self.hidden_usage = None
            return frame_head(status, block, head.content_length, close)
        self.until_close = not head.chunked
        content_type = head.get(b"content-type")
        self.event_stream = content_type is not None and content_type.startswith(b"text/event-stream")
        if head.get(b"content-encoding") not in (None, b"identity"):
            self.hidden_usage = None  # compressed though asked not to be: its events cannot be read
        elif self.event_stream and self.hidden_usage is None:
            self.whole = WholeEvents()
        return self._stream_head(status, block)


class TranslatedRelay(Relay):
    __slots__ = (
        "translator", "model", "endpoint", "stream", "include_usage", "max_buffered", "status", "pieces",
        "buffered", "splitter", "events", "kept_headers", "base64_embeddings",
    )  # fmt: skip

    def __init__(self, call, extra_headers, translator, model, stream, include_usage, max_buffered):
        super().__init__(call, extra_headers)
        self.translator = translator
        self.model = model
        self.endpoint = call.endpoint
        self.stream = stream
        self.include_usage = include_usage
        self.max_buffered = max_buffered
        self.status = 0
        self.pieces = []  # a complete (or error) response, read whole before translating
        self.buffered = 0  # bytes in ``pieces``
        self.splitter = None  # set when relaying a stream
        self.events = None
        self.kept_headers = b""  # the provider's answer id, and of an error its Retry-After, for the client
        self.base64_embeddings = False  # the client asked for base64 vectors the provider cannot give

    # --- the sink interface -------------------------------------------------------------------------

    def answer_started(self):
        return self.splitter is not None  # a stream's head went out (a whole answer goes at its end)

    def _drainable(self):
        return self.splitter is not None

    def upstream_events(self, events, last=False):
        out = []  # the client's pieces, written once the events are translated (one write)
        try:
            self._relay_events(events, out)
        except Exception:  # noqa: BLE001 - see _untranslatable
            if out:
                self.transport.writelines(out)  # what was translated before (a stream's head)
            self._untranslatable(events_left=True)
            return
        if out:
            self.transport.writelines(out)

    def upstream_done(self):
        try:
            self._relay_end()
        except Exception:  # noqa: BLE001 - see _untranslatable
            self._untranslatable(events_left=False)

    def _untranslatable(self, events_left):
        """Translating raised: an answer shaped past what its translator reads (a list where an
        object belongs, a count past 64 bits), or a bug. It is logged, and the answer ends as the
        upstream's protocol error, never a client left waiting: Alloy's 502 when nothing reached
        the client (no other attempt: the same answer would break the same way), else the stream's
        error event. ``events_left``: the upstream is still sending, so its connection is dropped."""
        log.exception("the answer of %s could not be translated", self.call.deployment.provider.name)
        if events_left and self.handle is not None:
            self.handle.cancel()
        error = UpstreamProtocolError("the upstream's answer could not be translated (the gateway's log says why)")
        if self.splitter is None:
            self.finished = True
            self.pieces = self.held = None
            self.call.failed_for_good(error)
        else:
            self.finished = False  # the stream's end, whatever of it was under way
            self.upstream_failed(error)

    def _relay_events(self, events, out):
        if self.finished:
            return
        events = _coalesced(events)  # a read of a thousand one-byte chunks: one piece to keep
        if self.held is not None:
            if self._hold(events):
                if self.held[0].status == 400:  # the request's fault: the deployment did its job
                    self.call.request_at_fault()
                self._overflow(HOLD_LIMIT, "error answer")
            return
        for event in events:
            if type(event) is not bytes:
                if event.status >= 400:
                    if self.call.holds(event.status):
                        self.held_at = monotonic()  # its head's time, should it be the answer after all
                        self.held = list(events)
                        self.held_bytes = sum([len(piece) + PIECE_COST for piece in events[1:]])
                        return
                    self.call.last_failure_relayed(event.status)
                self.call.head_arrived(event.status)
                self._head(event, out)
            elif self.splitter is not None:
                call = self.call
                recording = call.recording
                for name, data in self.splitter.feed(event):
                    chunks = self.events.feed(name, data)
                    if not chunks:
                        continue
                    if recording is not None:
                        recording.extend(chunks)
                    if not call.bytes_out:
                        call.first_event_at = monotonic()  # time to first token, for the metrics
                    call.bytes_out += sum(len(chunk) for chunk in chunks)
                    out.extend(self._piece(chunk) for chunk in chunks)
            else:
                self.pieces.append(event)
                self.buffered += len(event) + PIECE_COST
                if self.buffered > self.max_buffered:
                    return self._overflow(self.max_buffered, "answer")

    def _relay_end(self):
        if self.finished:
            return
        self.finished = True
        if self.held is not None:
            self.call.failed_with_answer(self)
            return
        if self.splitter is not None:
            out = []
            for name, data in self.splitter.flush():
                out.extend(self.events.feed(name, data))
            out.extend(self.events.finish())
            # The account's usage, asked for or not: a usage chunk the client asked for went out in
            # an earlier write (Anthropic's message_stop), so the last pieces need not hold it.
            self.call.usage_known(self.events.final_usage())
            if self.call.recording is not None:
                self.call.recording.extend(out)
            self.call.bytes_out += sum(len(chunk) for chunk in out)
            self.call.succeeded(tuple(out[-2:]))
            self._end([*(self._piece(chunk) for chunk in out), *((LAST_CHUNK,) if self.chunked else ())])
        else:
            started = monotonic()
            body = self._translated()
            call = self.call
            block = JSON_HEADER + self.extra_headers + self.kept_headers
            if call.pipeline.overhead_header:
                # The gateway's own time: up to the upstream request, and translating the answer.
                block += OVERHEAD_LINE % ((call.sent_at - call.arrived + monotonic() - started) * 1e6)
            call.succeeded((body,))
            call.bytes_out = len(body)
            if call.recording is not None:
                call.recording.append(body)
            self._end([frame_response(self.status, block, body, self._closing())])

    def upstream_failed(self, error):
        if self.finished:
            return
        if self.splitter is not None and self.events.complete():
            # The translated stream is whole: the upstream failed only to end its own framing (a
            # length it did not fill, a last chunk it never sent). The client's answer ends as a
            # finished one, never with an error after its [DONE].
            self.upstream_done()
            return
        self.finished = True
        if self.splitter is None:
            self.call.failed_with_error(error)
            return
        # The stream started: end it with an OpenAI-style error event, cleanly framed.
        self.call.broke_off(error)
        connection = self.connection
        event = b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"
        pieces = [self._piece(event), self._piece(DONE_EVENT)]
        self.transport.writelines([*pieces, LAST_CHUNK] if self.chunked else pieces)
        connection.current = None
        connection.close()

    def relay_held(self):
        """This held error is the final answer after all: translated like any complete answer."""
        self.call.head_at = self.held_at  # (another attempt's may have been set since)
        head, *self.pieces = self.held
        self.held = None
        self._head(head, [])  # an error head: its status and Retry-After, no stream to start
        try:
            body = self._translated()
        except Exception:  # noqa: BLE001 - as in _untranslatable: logged, answered as a 502
            log.exception("the error answer of %s could not be translated", self.call.deployment.provider.name)
            self.call.answer(UpstreamProtocolError("the upstream's answer could not be translated (the gateway's log says why)"))
            return
        self.call.bytes_out = len(body)
        self._end([frame_response(self.status, JSON_HEADER + self.extra_headers + self.kept_headers, body, self._closing())])

    # --- internals -------------------------------------------------------------------------------------

    def _translated(self):
        status, body = self.translator.translate_response(self.status, b"".join(self.pieces), self.model, self.endpoint)
        self.status = self.call.status = status
        if self.base64_embeddings and status == 200:
            body = base64_embeddings(body)
        if status >= 400:  # its message may repeat the provider key (masked_secret)
            secret = self.call.deployment.provider.secret
            if secret is not None:
                body = body.replace(secret[0], secret[1])
        return body

    def _overflow(self, limit, what):
        """The answer outgrew what may be held: drop it and the upstream connection; the client
        gets Alloy's 502 (as the final answer: the next attempt would be as large)."""
        self.pieces = self.held = None
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()
        self.call.failed_for_good(ResponseTooLarge(f"the upstream's {what} exceeded the gateway's limit of {limit} bytes"))

    def _head(self, head, out):
        self.status = self.call.status = head.status
        self.kept_headers = _upstream_id_line(head)
        if head.status >= 400:
            self.kept_headers += _retry_after_lines(head) + self.call.retries_spent(head.status)
        if self.stream and head.status == 200:
            self.splitter = SSESplitter()
            self.events = self.translator.StreamTranslator(self.model, self.include_usage)
            block = EVENT_STREAM_HEADERS + self.extra_headers + self.kept_headers
            call = self.call
            if call.pipeline.overhead_header:
                block += OVERHEAD_LINE % ((call.sent_at - call.arrived + monotonic() - call.head_at) * 1e6)
            out.append(self._stream_head(200, block))


def stream_error_event(path, error):
    """The event that ends a passed-through stream the upstream broke off: OpenAI's error object as a
    chat completions stream carries it (which the SDKs raise), and for the Responses API, whose
    events are named and typed, as its ``error`` event too (``type``, ``code``, ``message``,
    ``param``), still holding the ``error`` object the SDKs raise on."""
    payload = error_payload(error)
    if path != b"/v1/responses":
        return b"data: " + orjson.dumps(payload) + b"\n\n"
    inner = payload["error"]
    event = {"type": "error", "code": inner["code"], "message": inner["message"], "param": inner["param"], **payload}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


def _upstream_id_line(head):
    """The provider's id of this answer (Anthropic's ``request-id``, or ``x-request-id``) as
    ``x-upstream-request-id``, for a support ticket with the provider; b"" when it sent none."""
    value = head.get(b"request-id") or head.get(b"x-request-id")
    return b"x-upstream-request-id: " + value + b"\r\n" if value else b""


def _retry_after_lines(head):
    """A provider's ``retry-after`` (and OpenAI-style ``retry-after-ms``), kept on a translated
    error so SDKs back off as the provider asked."""
    lines = []
    for name in (b"retry-after", b"retry-after-ms"):
        value = head.get(name)
        if value is not None:
            lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines)


def _coalesced(events):
    """``events`` (a head, body pieces) with each run of body pieces joined into one. An upstream
    that frames its body as thousands of one-byte chunks gives them all in one read, and each piece
    kept would cost ~40 bytes besides its own byte: a 2 MB answer took ~80 MB. Written, a run is one
    chunk to the client instead of one per piece: a stream whose 20 events came in one read cost
    9.6 µs in process framed one by one, 7.6 joined (benchmarks/request_path_bench.py --stream).
    Most reads give a head and a piece, or a piece: returned as they are."""
    if len(events) <= 2:
        return events
    out = []
    run = []
    for event in events:
        if type(event) is bytes:
            run.append(event)
            continue
        if run:
            out.append(run[0] if len(run) == 1 else b"".join(run))
            run = []
        out.append(event)
    if run:
        out.append(run[0] if len(run) == 1 else b"".join(run))
    return out
