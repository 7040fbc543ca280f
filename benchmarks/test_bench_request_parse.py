"""Request parsing: one complete client request, from bytes to (method, target, headers, body).

A fresh parser per request (what a new connection pays) for every implementation. httptools and
h11 rows include the small adapter that turns their callbacks/events into the same result, since
Alloy would need that adapter too. Headers are compared lower-cased, duplicates joined.
"""

import pytest

from alloy.headers import FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES

from data import BIG_REQUEST, BIG_REQUEST_EXPECTED, SMALL_REQUEST, SMALL_REQUEST_EXPECTED

READ_SIZE = 65536
BIG_PIECES = [BIG_REQUEST[i : i + READ_SIZE] for i in range(0, len(BIG_REQUEST), READ_SIZE)]
# A hostile head: one name repeated to fill it. Its values are joined in one pass (joining at each
# repeat made the head cost the square of its length: 2.1 ms compiled, 7.9 ms pure, for this one).
REPEATED = 7000
REPEATED_HEAD = b"GET /v1/models HTTP/1.1\r\nHost: a\r\n" + b"x-a: b\r\n" * REPEATED + b"\r\n"
REPEATED_EXPECTED = (b"GET", b"/v1/models", {b"host": b"a", b"x-a": b", ".join([b"b"] * REPEATED)}, b"")
CASES = {
    "SDK head (15 headers) + 300 B body": ([SMALL_REQUEST], SMALL_REQUEST_EXPECTED),
    "1 MB body in 64 KiB reads": (BIG_PIECES, BIG_REQUEST_EXPECTED),
    "hostile head: one name 7,000 times": ([REPEATED_HEAD], REPEATED_EXPECTED),
}


def parse_core(core, pieces):
    parser = core.RequestParser()
    done = []
    for piece in pieces:
        done += parser.feed(piece)
    request = done[0]
    return request.method, request.target, request.headers, request.body


class _HttptoolsRequest:
    __slots__ = ("url", "headers", "body")

    def __init__(self):
        self.url = b""
        self.headers = {}
        self.body = []

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        name = name.lower()
        previous = self.headers.get(name)
        self.headers[name] = value if previous is None else previous + b", " + value

    def on_body(self, body):
        self.body.append(body)


def parse_httptools(httptools, pieces):
    sink = _HttptoolsRequest()
    parser = httptools.HttpRequestParser(sink)
    for piece in pieces:
        parser.feed_data(piece)
    return parser.get_method(), sink.url, sink.headers, b"".join(sink.body)


def parse_h11(h11, pieces):
    conn = h11.Connection(h11.SERVER)
    body = []
    request = None
    for piece in pieces:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or type(event) is h11.EndOfMessage:
                break
            if type(event) is h11.Data:
                body.append(event.data)
            else:
                request = event
    headers = {}
    for name, value in request.headers:
        previous = headers.get(name)
        headers[name] = value if previous is None else previous + b", " + value
    return request.method, request.target, headers, b"".join(body)


PARSERS = {"compiled": parse_core, "pure": parse_core, "httptools": parse_httptools, "h11": parse_h11}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(PARSERS), indirect=True)
def test_request_parse(benchmark, record, request, impl, case):
    pieces, expected = CASES[case]
    parse = PARSERS[request.node.callspec.params["impl"]]
    record(f"request parse: {case}", parse(impl, pieces) == expected)
    benchmark(parse, impl, pieces)


# The send stage's work on a request head: the lines a provider may receive (the default policy:
# no hop-by-hop field, no credentials, no provider-scoped header). Before Request.forwarded: the
# dict, then encode_forwarded; now the parser writes the lines while it reads the head.
def forwarded_from_dict(core, data):
    request = core.RequestParser().feed(data)[0]
    return core.encode_forwarded(request.headers, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES)


def forwarded_from_parser(core, data):
    return core.RequestParser(65536, 33554432, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES).feed(data)[0].forwarded


FORWARD_WAYS = {"headers dict, then encode_forwarded": forwarded_from_dict, "block written while parsing": forwarded_from_parser}


@pytest.mark.parametrize("way", list(FORWARD_WAYS))
@pytest.mark.parametrize("impl", ["compiled", "pure"], indirect=True)
def test_forwarded_request_head(benchmark, record, impl, way):
    expected = forwarded_from_dict(impl, SMALL_REQUEST)
    record(f"forwarded request head (SDK head + 300 B body): {way}", FORWARD_WAYS[way](impl, SMALL_REQUEST) == expected)
    benchmark(FORWARD_WAYS[way], impl, SMALL_REQUEST)
