"""SSE splitting: a streamed chat completion (200 ``chat.completion.chunk`` events + ``[DONE]``,
about 60 KB) cut into 1,400-byte pieces as it comes off the socket, split into (event, data) pairs.

"python" is the obvious hand-written splitter: buffer, ``split(b"\\n\\n")``, take the ``data:``
lines. It only understands LF line endings (the spec allows CR and CRLF too), which is why it is
short; it is the baseline a proxy author would write first.
"""

import pytest

from data import SSE_EXPECTED, SSE_STREAM_PIECES


def split_core(core, pieces):
    splitter = core.SSESplitter()
    events = []
    for piece in pieces:
        events += splitter.feed(piece)
    events += splitter.flush()
    return events


def split_python(_, pieces):
    events = []
    pending = b""
    for piece in pieces:
        blocks = (pending + piece).split(b"\n\n")
        pending = blocks.pop()
        for block in blocks:
            event = None
            data = []
            for line in block.split(b"\n"):
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    data.append(value)
                elif name == b"event":
                    event = value
            if data:
                events.append((event, b"\n".join(data)))
    return events


SPLITTERS = {"compiled": split_core, "pure": split_core, "python": split_python}


@pytest.mark.parametrize("impl", list(SPLITTERS), indirect=True)
def test_sse_split(benchmark, record, request, impl):
    split = SPLITTERS[request.node.callspec.params["impl"]]
    record("SSE split: 200 chat.completion.chunk events in 1,400 B pieces", split(impl, SSE_STREAM_PIECES) == SSE_EXPECTED)
    benchmark(split, impl, SSE_STREAM_PIECES)
