"""Upstream response parsing: bytes from the provider to (status, headers, body).

- a chat completion (17 headers, Content-Length body) in one read;
- a streamed completion (chunked, one chunk per SSE event, ~60 KB) in 1,400-byte reads.

A fresh parser per response. httptools is given the callbacks it needs to produce the same result;
h11 runs as a client connection that has sent its request (its row includes that setup, since h11
will not parse a response otherwise). Headers are compared as (lower-cased name, value) in order.
"""

import pytest

from data import RESPONSE, RESPONSE_EXPECTED, STREAM_RESPONSE_EXPECTED, STREAM_RESPONSE_PIECES

CASES = {
    "chat completion, Content-Length, one read": ([RESPONSE], RESPONSE_EXPECTED),
    "streamed completion, chunked, 1,400 B reads": (STREAM_RESPONSE_PIECES, STREAM_RESPONSE_EXPECTED),
}


def parse_core(core, pieces):
    parser = core.ResponseParser()
    items = []
    for piece in pieces:
        items += parser.feed(piece)
    head = items[0]
    return head.status, head.headers, b"".join(items[1:])


class _HttptoolsResponse:
    __slots__ = ("headers", "body")

    def __init__(self):
        self.headers = []
        self.body = []

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_body(self, body):
        self.body.append(body)


def parse_httptools(httptools, pieces):
    sink = _HttptoolsResponse()
    parser = httptools.HttpResponseParser(sink)
    for piece in pieces:
        parser.feed_data(piece)
    return parser.get_status_code(), sink.headers, b"".join(sink.body)


def parse_h11(h11, pieces):
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=b"POST", target=b"/v1/chat/completions", headers=[(b"host", b"api.openai.com"), (b"content-length", b"0")]))
    conn.send(h11.EndOfMessage())
    response = None
    body = []
    for piece in pieces:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or type(event) is h11.EndOfMessage:
                break
            if type(event) is h11.Data:
                body.append(event.data)
            else:
                response = event
    return response.status_code, list(response.headers), b"".join(body)


PARSERS = {"compiled": parse_core, "pure": parse_core, "httptools": parse_httptools, "h11": parse_h11}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(PARSERS), indirect=True)
def test_response_parse(benchmark, record, request, impl, case):
    pieces, expected = CASES[case]
    parse = PARSERS[request.node.callspec.params["impl"]]
    record(f"response parse: {case}", parse(impl, pieces) == expected)
    benchmark(parse, impl, pieces)


# The relay's work on a passthrough answer's head: the client's header lines without the hidden
# names, and the upstream's x-request-id. Before ResponseHead.block: the (name, value) list, then
# encode_headers; now the parser writes the lines while it parses (the compiled twin builds no
# list, and get() reads the received lines).
HIDDEN = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"te", b"trailer",
                    b"upgrade", b"proxy-connection", b"x-request-id", b"set-cookie", b"openai-organization", b"openai-project"})  # fmt: skip


def relay_head_from_list(core, data):
    head = core.ResponseParser().feed(data)[0]
    return core.encode_headers(head.headers, HIDDEN), head.get(b"x-request-id")


def relay_head_from_block(core, data):
    head = core.ResponseParser(False, 65536, HIDDEN).feed(data)[0]
    return head.block, head.get(b"x-request-id")


RELAY_WAYS = {"headers list, then encode_headers": relay_head_from_list, "block written while parsing": relay_head_from_block}


@pytest.mark.parametrize("way", list(RELAY_WAYS))
@pytest.mark.parametrize("impl", ["compiled", "pure"], indirect=True)
def test_relay_response_head(benchmark, record, impl, way):
    expected = relay_head_from_list(impl, RESPONSE)
    record(f"relay's response head (chat completion): {way}", RELAY_WAYS[way](impl, RESPONSE) == expected)
    benchmark(RELAY_WAYS[way], impl, RESPONSE)
