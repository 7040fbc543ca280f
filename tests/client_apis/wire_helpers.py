"""What the wire tests of the translated client APIs share (Messages, Responses): a client
connection and transport that record what they are given, and the relay's framing of an answer
read back with the core's parsers."""

from types import SimpleNamespace

import orjson

from alloy.core import LAST_CHUNK, ResponseParser, SSESplitter, frame_chunk, frame_stream_head

SERVED = b"x-request-id: r-1\r\nx-alloy-provider: openai\r\nx-alloy-model: gpt-4o\r\nx-alloy-attempts: 1\r\n"
SSE_HEAD = b"content-type: text/event-stream; charset=utf-8\r\n"
JSON = b"content-type: application/json\r\n"


class Transport:
    def __init__(self):
        self.data = bytearray()
        self.closed = self.aborted = False

    def write(self, data):
        assert not self.closed and not self.aborted
        self.data += data

    def writelines(self, pieces):
        for piece in pieces:
            self.write(piece)

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True

    def is_closing(self):
        return self.closed or self.aborted


class Connection:
    """What the wire uses of the real client connection."""

    def __init__(self):
        self.transport = Transport()
        self.gateway = SimpleNamespace(draining=False)
        self.current = None
        self.closed = False
        self.finished = []

    def close(self):
        self.closed = True
        self.transport.close()

    def answer_finished(self, keep_alive):
        self.finished.append(keep_alive)

    def closes_for_drain(self):
        return self.gateway.draining  # nothing pipelined behind the answer in these tests


def relay_stream(events, head=SSE_HEAD + SERVED, end=True):
    """A stream as PassthroughRelay writes it: the head, one chunk per upstream piece, the end."""
    return frame_stream_head(200, head) + b"".join(frame_chunk(e) for e in events) + (LAST_CHUNK if end else b"")


def openai_events(chunks):
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def splits(data):
    """``data`` whole, then cut in two at every byte boundary."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def answer(raw):
    """The client's bytes -> (head, body): exactly one well-framed response."""
    parser = ResponseParser()
    head, *pieces = parser.feed(bytes(raw))
    assert parser.done, raw[-200:]
    return head, b"".join(pieces)


def sse(body):
    splitter = SSESplitter()
    return [(name.decode(), orjson.loads(data)) for name, data in [*splitter.feed(body), *splitter.flush()]]
