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

import orjson

from alloy.core import find_usage

ASKING = b'"stream_options":{"include_usage":true},'
_EVENT_END = b"\n\n"
_NULL_USAGE = (b',"usage":null', b', "usage": null')


def ask_for_usage(parts, scan):
    """The body ``parts`` of a streaming request, asking for usage; None when the client already
    asked for it (then its stream carries the usage chunk and nothing is hidden)."""
    body = scan.body
    if b'"stream_options"' not in body:  # the common case: splice the option in after the "{"
        first = bytes(parts[0])
        brace = first.index(b"{") + 1
        rest = first[brace:].lstrip()
        separator = ASKING if not rest.startswith(b"}") else ASKING[:-1]
        return [first[:brace] + separator + first[brace:], *parts[1:]]
    document = orjson.loads(b"".join(bytes(part) for part in parts))
    options = document.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    document["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return [orjson.dumps(document)]


class HiddenUsage:
    """Takes the usage the client did not ask for out of a stream's bytes, keeping the counts."""

    __slots__ = ("pending", "usage")

    def __init__(self):
        self.pending = b""  # the start of an event whose end has not arrived yet
        self.usage = None

    def feed(self, piece):
        """The bytes of ``piece`` the client may see now (b"" while an event is incomplete)."""
        data = self.pending + piece if self.pending else piece
        end = data.rfind(_EVENT_END)
        if end < 0:
            self.pending = data
            return b""
        end += 2
        self.pending = data[end:]
        complete = data[:end]
        if b'"usage"' not in complete:
            return complete
        kept = []
        for event in complete.split(_EVENT_END):
            if b'"usage":{' in event or b'"usage": {' in event:
                usage = find_usage(event)
                if usage is not None and b'"choices":[]' in event:
                    self.usage = usage
                    continue  # the usage chunk the client did not ask for
            for null in _NULL_USAGE:
                event = event.replace(null, b"")
            kept.append(event)
        return _EVENT_END.join(kept)

    def finish(self):
        """What is left when the stream ends (an event the upstream never closed)."""
        left, self.pending = self.pending, b""
        return left
