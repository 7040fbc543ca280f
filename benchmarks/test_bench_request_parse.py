"""Request parsing: one complete client request, from bytes to (method, target, headers, body).

A fresh parser per request (what a new connection pays) for every implementation. httptools and
h11 rows include the small adapter that turns their callbacks/events into the same result, since
Alloy would need that adapter too. Headers are compared lower-cased, duplicates joined.
"""

import pytest

from data import BIG_REQUEST, BIG_REQUEST_EXPECTED, SMALL_REQUEST, SMALL_REQUEST_EXPECTED

READ_SIZE = 65536
BIG_PIECES = [BIG_REQUEST[i : i + READ_SIZE] for i in range(0, len(BIG_REQUEST), READ_SIZE)]
CASES = {
    "SDK head (15 headers) + 300 B body": ([SMALL_REQUEST], SMALL_REQUEST_EXPECTED),
    "1 MB body in 64 KiB reads": (BIG_PIECES, BIG_REQUEST_EXPECTED),
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
