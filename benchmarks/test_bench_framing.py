"""Response and request framing: the bytes Alloy writes to the client and to the upstream.

- encode + frame a whole response: forwarded upstream headers (hop-by-hop dropped) + a chat
  completion body, one buffer;
- one chunk of a streamed response (an SSE event);
- an upstream request with a 300 B body.

Alternatives: "python" is the obvious hand-written ``b"".join`` a proxy author would write; h11
frames the upstream request as a client connection does (h11 keeps state per connection, so its row
includes creating one). Correctness: the output parses (with the pure twin's parsers) back to the
same status/method, headers and body.
"""

import pytest

from alloy import _pycore
from alloy.headers import HOP_BY_HOP, STATUS_REASONS
from data import COMPLETION_BODY, FORWARD_HEADERS, SMALL_BODY, SSE_EVENT, UPSTREAM_REQUEST_HEADERS

TARGET = b"/v1/chat/completions"


# --- whole response -----------------------------------------------------------------------------

def response_core(core):
    return core.frame_response(200, core.encode_headers(FORWARD_HEADERS), COMPLETION_BODY)


def response_python(_):
    lines = [b"HTTP/1.1 200 ", STATUS_REASONS[200], b"\r\n"]
    for name, value in FORWARD_HEADERS:
        if name not in HOP_BY_HOP:
            lines += (name, b": ", value, b"\r\n")
    lines += (b"content-length: ", str(len(COMPLETION_BODY)).encode(), b"\r\n\r\n", COMPLETION_BODY)
    return b"".join(lines)


def _response_ok(wire):
    parser = _pycore.ResponseParser()
    items = parser.feed(wire)
    head, body = items[0], b"".join(items[1:])
    forwarded = [(n, v) for n, v in head.headers if n != b"content-length"]
    return parser.done and head.status == 200 and forwarded == FORWARD_HEADERS and body == COMPLETION_BODY


# --- one chunk ----------------------------------------------------------------------------------

def chunk_core(core):
    return core.frame_chunk(SSE_EVENT)


def chunk_python(_):
    return b"%x\r\n%s\r\n" % (len(SSE_EVENT), SSE_EVENT)


def _chunk_ok(wire):
    return wire == b"%x\r\n" % len(SSE_EVENT) + SSE_EVENT + b"\r\n"


# --- upstream request ---------------------------------------------------------------------------

def request_core(core):
    return core.frame_request(b"POST", TARGET, core.encode_headers(UPSTREAM_REQUEST_HEADERS), SMALL_BODY)


def request_python(_):
    lines = [b"POST ", TARGET, b" HTTP/1.1\r\n"]
    for name, value in UPSTREAM_REQUEST_HEADERS:
        lines += (name, b": ", value, b"\r\n")
    lines += (b"content-length: ", str(len(SMALL_BODY)).encode(), b"\r\n\r\n", SMALL_BODY)
    return b"".join(lines)


def request_h11(h11):
    conn = h11.Connection(h11.CLIENT)
    headers = UPSTREAM_REQUEST_HEADERS + [(b"content-length", str(len(SMALL_BODY)).encode())]
    return (
        conn.send(h11.Request(method=b"POST", target=TARGET, headers=headers))
        + conn.send(h11.Data(data=SMALL_BODY))
        + conn.send(h11.EndOfMessage())
    )


def _request_ok(wire):
    (request,) = _pycore.RequestParser().feed(wire)
    expected = {name: value for name, value in UPSTREAM_REQUEST_HEADERS}
    expected[b"content-length"] = str(len(SMALL_BODY)).encode()
    return request.method == b"POST" and request.headers == expected and request.body == SMALL_BODY


CASES = {
    "response: 17 forwarded headers + completion body": (
        {"compiled": response_core, "pure": response_core, "python": response_python}, _response_ok),
    "one chunk: an SSE event": ({"compiled": chunk_core, "pure": chunk_core, "python": chunk_python}, _chunk_ok),
    "upstream request: 5 headers + 300 B body": (
        {"compiled": request_core, "pure": request_core, "python": request_python, "h11": request_h11},
        _request_ok),
}
ROWS = [(case, impl) for case, (framers, _) in CASES.items() for impl in framers]


@pytest.mark.parametrize(("case", "impl"), ROWS, indirect=["impl"])
def test_framing(benchmark, record, impl, case, request):
    framers, check = CASES[case]
    frame = framers[request.node.callspec.params["impl"]]
    record(f"framing: {case}", check(frame(impl)))
    benchmark(frame, impl)
