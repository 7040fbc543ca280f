"""Framing: the exact bytes Alloy writes, checked against the vectors and read back by the parsers."""

import pytest

from alloy.headers import HOP_BY_HOP, STATUS_REASONS
from vectors import REQUEST_ROUND_TRIP, RESPONSE_ROUND_TRIP, STREAM_ROUND_TRIP


# --- the vectors, written ------------------------------------------------------------------------


@pytest.mark.parametrize("values,wire", RESPONSE_ROUND_TRIP)
def test_frame_response_writes_vector(core, values, wire):
    status, header_list, body, close = values
    assert core.frame_response(status, core.encode_headers(header_list), body, close) == wire


@pytest.mark.parametrize("values,wire", RESPONSE_ROUND_TRIP)
def test_frame_head_plus_body_is_frame_response(core, values, wire):
    status, header_list, body, close = values
    head = core.frame_head(status, core.encode_headers(header_list), len(body), close)
    assert head + body == wire


@pytest.mark.parametrize("values,wire", STREAM_ROUND_TRIP)
def test_stream_framing_writes_vector(core, values, wire):
    status, header_list, chunks, close = values
    out = core.frame_stream_head(status, core.encode_headers(header_list), close)
    out += b"".join(core.frame_chunk(c) for c in chunks) + core.LAST_CHUNK
    assert out == wire


@pytest.mark.parametrize("values,wire", REQUEST_ROUND_TRIP)
def test_frame_request_writes_vector(core, values, wire):
    method, target, header_list, body = values
    assert core.frame_request(method, target, core.encode_headers(header_list), body) == wire


@pytest.mark.parametrize("values,wire", [(v, w) for v, w in REQUEST_ROUND_TRIP if v[3]])
def test_frame_request_head_plus_body_is_frame_request(core, values, wire):
    method, target, header_list, body = values
    head = core.frame_request_head(method, target, core.encode_headers(header_list), len(body))
    assert head + body == wire


# --- exact bytes of each function ----------------------------------------------------------------


def test_last_chunk(core):
    assert core.LAST_CHUNK == b"0\r\n\r\n"


def test_frame_response_minimal(core):
    assert core.frame_response(200, b"", b"") == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_frame_response_close_keyword(core):
    out = core.frame_response(400, b"x-a: b\r\n", b"{}", close=True)
    assert out == (
        b"HTTP/1.1 400 Bad Request\r\nx-a: b\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
    )


@pytest.mark.parametrize("status", sorted(STATUS_REASONS))
def test_frame_response_reason_phrases(core, status):
    out = core.frame_response(status, b"", b"")
    assert out.startswith(b"HTTP/1.1 %d %s\r\n" % (status, STATUS_REASONS[status]))


def test_frame_response_unknown_status_has_empty_reason(core):
    assert core.frame_response(599, b"", b"").startswith(b"HTTP/1.1 599 \r\n")


def test_frame_response_large_body(core):
    body = b"x" * 1_000_000
    out = core.frame_response(200, b"content-type: text/plain\r\n", body)
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000000\r\n\r\n" + body
    )


def test_frame_head(core):
    assert core.frame_head(200, b"a: b\r\n", 12345) == (
        b"HTTP/1.1 200 OK\r\na: b\r\ncontent-length: 12345\r\n\r\n"
    )
    assert core.frame_head(503, b"", 0, close=True) == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )


def test_frame_stream_head(core):
    assert core.frame_stream_head(200, b"content-type: text/event-stream\r\n") == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    assert core.frame_stream_head(200, b"", close=True) == (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )


def test_frame_chunk_small(core):
    assert core.frame_chunk(b"hello") == b"5\r\nhello\r\n"
    assert core.frame_chunk(b"x") == b"1\r\nx\r\n"
    assert core.frame_chunk(b"\r\n") == b"2\r\n\r\n\r\n"


@pytest.mark.parametrize("size", [9, 10, 15, 16, 17, 255, 256, 4095, 65536, 1_000_001])
def test_frame_chunk_hex_size(core, size):
    data = bytes(i % 251 for i in range(size))
    out = core.frame_chunk(data)
    line, rest = out.split(b"\r\n", 1)
    assert line.lower() == b"%x" % size
    assert rest == data + b"\r\n"


def test_frame_request_post_empty_body_has_zero_length(core):
    assert core.frame_request(b"POST", b"/v1/x", b"host: h\r\n", b"") == (
        b"POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
    )


def test_frame_request_bodiless_get_and_head_have_no_length(core):
    assert core.frame_request(b"GET", b"/v1/models", b"host: h\r\n", b"") == (
        b"GET /v1/models HTTP/1.1\r\nhost: h\r\n\r\n"
    )
    assert core.frame_request(b"HEAD", b"/", b"", b"") == b"HEAD / HTTP/1.1\r\n\r\n"


def test_frame_request_get_with_body_has_length(core):
    assert core.frame_request(b"GET", b"/", b"", b"abc") == (
        b"GET / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"
    )


def test_frame_request_head(core):
    assert core.frame_request_head(b"POST", b"/v1/chat/completions", b"host: h\r\n", 1048576) == (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: h\r\ncontent-length: 1048576\r\n\r\n"
    )


# --- encode_headers -----------------------------------------------------------------------------


def test_encode_headers_keeps_order_duplicates_and_case(core):
    headers = [
        (b"content-type", b"application/json"),
        (b"x-a", b"1"),
        (b"X-Mixed-Case", b"Value With Spaces"),
        (b"x-a", b"2"),
    ]
    assert core.encode_headers(headers) == (
        b"content-type: application/json\r\nx-a: 1\r\nX-Mixed-Case: Value With Spaces\r\nx-a: 2\r\n"
    )


def test_encode_headers_empty(core):
    assert core.encode_headers([]) == b""


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP))
def test_encode_headers_drops_each_hop_by_hop_field(core, name):
    headers = [(b"x-before", b"1"), (name, b"whatever"), (b"x-after", b"2")]
    assert core.encode_headers(headers) == b"x-before: 1\r\nx-after: 2\r\n"


def test_encode_headers_drops_all_hop_by_hop_fields(core):
    headers = [(name, b"v") for name in sorted(HOP_BY_HOP)]
    assert core.encode_headers(headers) == b""


def test_encode_headers_keeps_lookalikes(core):
    headers = [(b"connection-id", b"1"), (b"x-transfer-encoding", b"2"), (b"content-type", b"t")]
    assert core.encode_headers(headers) == (
        b"connection-id: 1\r\nx-transfer-encoding: 2\r\ncontent-type: t\r\n"
    )


# --- written, then read back -----------------------------------------------------------------


def test_framed_response_parses_back(core):
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"abc")]
    body = b'{"id":"chatcmpl-1"}'
    wire = core.frame_response(201, core.encode_headers(headers), body)
    parser = core.ResponseParser()
    head, *pieces = parser.feed(wire)
    assert head.status == 201
    assert head.headers == headers + [(b"content-length", b"%d" % len(body))]
    assert b"".join(pieces) == body
    assert parser.done


def test_framed_stream_parses_back(core):
    events = [b"data: %d\n\n" % i for i in range(20)]
    wire = core.frame_stream_head(200, b"content-type: text/event-stream\r\n")
    wire += b"".join(core.frame_chunk(e) for e in events) + core.LAST_CHUNK
    parser = core.ResponseParser()
    head, *pieces = parser.feed(wire)
    assert head.chunked
    assert b"".join(pieces) == b"".join(events)
    assert parser.done


def test_framed_request_parses_back(core):
    headers = [(b"host", b"api.example"), (b"authorization", b"Bearer sk-x"), (b"connection", b"close")]
    body = b'{"model":"m"}'
    wire = core.frame_request(b"POST", b"/v1/chat/completions", core.encode_headers(headers), body)
    (request,) = core.RequestParser().feed(wire)
    assert request.method == b"POST"
    assert request.target == b"/v1/chat/completions"
    assert request.headers == {
        b"host": b"api.example",
        b"authorization": b"Bearer sk-x",
        b"content-length": b"13",
    }
    assert request.body == body
    assert request.keep_alive
