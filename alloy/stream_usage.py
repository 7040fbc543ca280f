"""Usage of a stream whose client did not ask for it, read without the client seeing a difference.

OpenAI-compatible providers report a stream's token counts only when the request carries
``stream_options.include_usage``: then every chunk gets ``"usage":null`` and one more chunk, with
empty ``choices`` and the counts, comes just before ``data: [DONE]``. Limits, budgets and the
ledger need those counts for every stream, so when the pipeline wants them
(``Pipeline.needs_stream_usage``) a streaming chat or completions request that did not ask is sent
asking (``ask_for_usage``), and its answer goes through a ``HiddenUsage`` filter on its way to the
client: the ``"usage":null`` fields and the usage chunk are taken out, the counts kept for the call.
What the client receives is what it would have received without the option.

The filter works on whole events: a piece that ends inside an event keeps that part until the rest
arrives (an SSE client acts on an event only at its blank line anyway).
"""

import re

import orjson

from alloy.core import find_usage
from alloy.headers import DONE_EVENT as DONE

ASKING = b'"stream_options":{"include_usage":true},'
MAX_HELD = 16 * 1024 * 1024  # an event longer than this: the stream is not SSE as we know it
# A blank line ends an event: the line end before it and its own, each \n, \r\n or \r.
# (Longest first: the split below must take a whole CRLF blank line, not its end.)
_END_MARKS = (b"\r\n\r\n", b"\n\r\n", b"\r\n\n", b"\n\n", b"\r\r")
_EVENT_ENDS = re.compile(b"(" + b"|".join(re.escape(mark) for mark in _END_MARKS) + b")")
_OPENING = re.compile(rb"\{")
_EMPTY_REST = re.compile(rb"\s*\}")  # after the opening brace: an empty object
_STREAM_OPTIONS = re.compile(rb'"stream_options"')  # searched in bytes or a memoryview alike
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_NO_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null')


def ask_for_usage(parts, scan):
    """The body ``parts`` of a streaming request, asking for usage; None when the client already
    asked for it (then its stream carries the usage chunk and nothing is hidden)."""
    if _STREAM_OPTIONS.search(scan.body) is None:  # the common case: splice the option in after the "{"
        first = parts[0]  # bytes, or a view of the client's read: only its head is copied
        brace = _OPENING.search(first).end()
        separator = ASKING if _EMPTY_REST.match(first, brace) is None else ASKING[:-1]
        return [bytes(first[:brace]) + separator, first[brace:], *parts[1:]]
    document = orjson.loads(b"".join(bytes(part) for part in parts))
    options = document.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    document["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return [orjson.dumps(document)]


class WholeEvents:
    """Cuts a stream's bytes at its event ends, so what goes on is whole events only.

    Events end at a blank line, spelled as SSE allows (``\n\n``, ``\r\n\r\n``, ``\r\r``; servers
    such as sse-starlette write CRLF). The bytes after the last event end are held, as a list (no
    copying per read: a large event costs what its bytes cost), until an end arrives; a stream with
    no event end in ``MAX_HELD`` bytes is not SSE as we know it, and goes on as it comes from then
    on (``passing``)."""

    __slots__ = ("held", "held_bytes", "edge", "passing")

    def __init__(self):
        self.held = []  # the pieces of an event whose end has not arrived yet
        self.held_bytes = 0
        self.edge = b""  # the last bytes held: an event end may start in them
        self.passing = False

    def feed(self, piece):
        """The whole events ``piece`` completes, with what was held before it (b"" while none)."""
        if self.passing:
            return piece
        held = self.held
        if not held and piece.endswith(_END_MARKS):  # the common read: it ends an event
            return piece
        edge = self.edge
        end = _last_event_end(piece)
        if edge and end < 3:  # an end may begin in the bytes held (a mark is at most 4 bytes long)
            end = max(end, _last_event_end(edge + piece[:3]) - len(edge))
        if end <= 0:  # no event ends in this piece
            held.append(piece)
            self.held_bytes += len(piece)
            self.edge = (edge + piece[-3:])[-3:]  # (not a copy of the whole piece)
            if self.held_bytes > MAX_HELD:
                self.passing = True
                return self.finish()
            return b""
        complete = b"".join(held) + piece[:end] if held else piece[:end]
        rest = piece[end:]
        self.held = [rest] if rest else []
        self.held_bytes = len(rest)
        self.edge = rest[-3:]
        return complete

    def finish(self):
        """What is held (the stream ended, or failed, inside an event)."""
        left = b"".join(self.held)
        self.held = []
        self.held_bytes = 0
        self.edge = b""
        return left


def recorded_with(sent, usage_event):
    """What the cache records of a piece ``sent`` to the client when the usage event was taken out
    of it: the event back where it was, just before the stream's ``[DONE]`` (which follows it),
    else after the piece's events (it was their last)."""
    if sent.endswith(DONE):
        return sent[: -len(DONE)] + usage_event + DONE
    return sent + usage_event


class HiddenUsage:
    """Takes the usage the client did not ask for out of a stream's bytes, keeping the counts. It
    works on whole events (``WholeEvents``), and filters nothing once the stream is found not to be
    SSE."""

    __slots__ = ("events", "usage", "usage_event")

    def __init__(self):
        self.events = WholeEvents()
        self.usage = None
        # The usage event taken out (with its end), until the relay takes it for the cache's
        # recording (``recorded_with``): a stored stream keeps its usage for later clients who ask.
        self.usage_event = None

    def feed(self, piece):
        """The bytes of ``piece`` the client may see now (b"" while an event is incomplete)."""
        return self._filtered(self.events.feed(piece))

    def _filtered(self, complete):
        if b'"usage"' not in complete or self.events.passing:
            return complete
        kept = []
        parts = _EVENT_ENDS.split(complete)  # event, its end, event, its end..., b""
        if parts[-1]:  # the stream's last event, never ended (see finish)
            parts.append(b"")
        for at in range(0, len(parts) - 1, 2):
            event = parts[at]
            if b'"usage"' in event:
                if _USAGE_OBJECT.search(event) and _NO_CHOICES.search(event):
                    usage = find_usage(event)
                    if usage is not None:
                        self.usage = usage
                        self.usage_event = event + parts[at + 1]
                        continue  # the usage chunk the client did not ask for, and its end
                event = _NULL_USAGE.sub(b"", event)
            kept.append(event)
            kept.append(parts[at + 1])
        return b"".join(kept)

    @property
    def passing(self):
        return self.events.passing

    def finish(self):
        """What is held when the stream ends (an event the upstream never closed), filtered as an
        event that ended: a usage chunk the client did not ask for does not reach it this way either."""
        return self._filtered(self.events.finish())


def _last_event_end(data):
    """Where the bytes after the last event end (blank line) in ``data`` start; -1 when none does."""
    end = -1
    for mark in _END_MARKS:
        found = data.rfind(mark)
        if found >= 0 and found + len(mark) > end:
            end = found + len(mark)
    return end
