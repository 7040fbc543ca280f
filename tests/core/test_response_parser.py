"""ResponseParser: the upstream's answer, relayed piece by piece."""

import pytest

from alloy import errors
from vectors import BODYLESS_UNPINNED, RESPONSE_PARSE, RESPONSE_ROUND_TRIP, STREAM_ROUND_TRIP


def head_fields(head, skip=()):
    got = {
        "status": head.status,
        "version": head.version,
        "headers": head.headers,
        "keep_alive": head.keep_alive,
        "content_length": head.content_length,
        "chunked": head.chunked,
    }
    return {k: v for k, v in got.items() if k not in skip}


def split_items(core, items):
    """(heads, body pieces) from what feed returned; pieces must never be empty."""
    heads = [i for i in items if isinstance(i, core.ResponseHead)]
    pieces = [i for i in items if not isinstance(i, core.ResponseHead)]
    assert all(type(p) is bytes and p for p in pieces), pieces
    return heads, pieces


def run(core, chunks, head_request=False, eof=None):
    """Feed ``chunks``; feed_eof when asked. Returns (head, body, parser)."""
    parser = core.ResponseParser(head_request=head_request)
    items = []
    for chunk in chunks:
        items.extend(parser.feed(chunk))
    if eof:
        assert parser.feed_eof() == []
    heads, pieces = split_items(core, items)
    assert len(heads) == 1
    # the head comes first, before any body piece
    assert items[0] is heads[0]
    return heads[0], b"".join(pieces), parser


def expected_head(expected):
    return {k: v for k, v in expected.items() if k != "body"}


def unpinned(expected, head_request):
    bodyless = head_request or expected["status"] in (204, 304)
    return BODYLESS_UNPINNED if bodyless else ()


@pytest.mark.parametrize("wire,head_request,expected,complete", RESPONSE_PARSE)
def test_parses_vector_in_one_feed(core, wire, head_request, expected, complete):
    head, body, parser = run(core, [wire], head_request, eof=not complete)
    skip = unpinned(expected, head_request)
    assert head_fields(head, skip) == {k: v for k, v in expected_head(expected).items() if k not in skip}
    assert body == expected["body"]
    assert parser.done


@pytest.mark.parametrize("wire,head_request,expected,complete", RESPONSE_PARSE)
def test_byte_by_byte_gives_the_same_response(core, wire, head_request, expected, complete):
    chunks = [wire[i : i + 1] for i in range(len(wire))]
    head, body, parser = run(core, chunks, head_request, eof=not complete)
    skip = unpinned(expected, head_request)
    assert head_fields(head, skip) == {k: v for k, v in expected_head(expected).items() if k not in skip}
    assert body == expected["body"]
    assert parser.done


@pytest.mark.parametrize("wire,head_request,expected,complete", RESPONSE_PARSE)
def test_every_two_way_split_gives_the_same_response(core, wire, head_request, expected, complete):
    for cut in range(len(wire) + 1):
        head, body, parser = run(core, [wire[:cut], wire[cut:]], head_request, eof=not complete)
        assert head.status == expected["status"]
        assert body == expected["body"], cut


@pytest.mark.parametrize("wire,head_request,expected,complete", RESPONSE_PARSE)
def test_done_only_at_the_end(core, wire, head_request, expected, complete):
    parser = core.ResponseParser(head_request=head_request)
    for i in range(len(wire) - 1):
        parser.feed(wire[i : i + 1])
        assert not parser.done
    parser.feed(wire[-1:])
    assert parser.done is complete


def test_round_trip_responses_parse(core):
    for (status, header_list, body, close), wire in RESPONSE_ROUND_TRIP:
        head, got, parser = run(core, [wire])
        assert head.status == status
        assert head.headers == header_list + [(b"content-length", b"%d" % len(body))] + (
            [(b"connection", b"close")] if close else []
        )
        assert head.keep_alive is not close
        assert head.content_length == len(body)
        assert got == body
        assert parser.done


def test_round_trip_streams_parse(core):
    for (status, header_list, chunks, close), wire in STREAM_ROUND_TRIP:
        parser = core.ResponseParser()
        items = parser.feed(wire)
        heads, pieces = split_items(core, items)
        (head,) = heads
        assert head.status == status
        assert head.chunked
        assert head.content_length == -1
        assert head.keep_alive is not close
        assert b"".join(pieces) == b"".join(chunks)
        assert parser.done


def test_head_fields_and_get(core):
    wire = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Ratelimit: 1\r\n"
        b"x-ratelimit: 2\r\nContent-Length: 0\r\n\r\n"
    )
    head, _, _ = run(core, [wire])
    assert head.get(b"content-type") == b"text/event-stream"
    assert head.get(b"x-ratelimit") == b"1"
    assert head.get(b"missing") is None
    assert head.get(b"missing", b"dflt") == b"dflt"
    assert head.get(b"x-ratelimit", b"dflt") == b"1"
    assert head.headers[1:3] == [(b"x-ratelimit", b"1"), (b"x-ratelimit", b"2")]


def test_body_pieces_are_relayed_as_they_arrive(core):
    parser = core.ResponseParser()
    items = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    heads, pieces = split_items(core, items)
    assert len(heads) == 1 and pieces == [b"abc"]
    assert not parser.done
    assert parser.feed(b"defg") == [b"defg"]
    assert not parser.done
    assert parser.feed(b"hij") == [b"hij"]
    assert parser.done


def test_chunked_pieces_are_relayed_as_they_arrive(core):
    parser = core.ResponseParser()
    items = parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    heads, pieces = split_items(core, items)
    assert heads[0].chunked
    assert pieces == [b"hel"]
    assert b"".join(parser.feed(b"lo\r\n3\r\nabc\r\n")) == b"loabc"
    assert not parser.done
    assert parser.feed(b"0\r\n\r\n") == []
    assert parser.done


def test_feed_after_head_only_returns_pieces(core):
    parser = core.ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    items = parser.feed(b"abcd")
    assert items == [b"abcd"]


def test_close_delimited_body_completes_at_eof(core):
    parser = core.ResponseParser()
    items = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ")
    heads, pieces = split_items(core, items)
    (head,) = heads
    assert head.content_length == -1
    assert not head.chunked
    assert not head.keep_alive
    assert pieces == [b"first "]
    assert parser.feed(b"second") == [b"second"]
    assert not parser.done
    assert parser.feed_eof() == []
    assert parser.done


def test_close_delimited_empty_body(core):
    parser = core.ResponseParser()
    heads, pieces = split_items(core, parser.feed(b"HTTP/1.1 200 OK\r\n\r\n"))
    assert len(heads) == 1 and pieces == []
    assert parser.feed_eof() == []
    assert parser.done


def test_interim_responses_skipped_across_feeds(core):
    parser = core.ResponseParser()
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n") == []
    assert not parser.done
    items = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    heads, pieces = split_items(core, items)
    assert [h.status for h in heads] == [200]
    assert pieces == [b"ok"]


@pytest.mark.parametrize("skip", [None, frozenset()], ids=["pairs", "block"])
@pytest.mark.parametrize(
    "status, framing, reusable",
    [
        (304, b"Content-Length: 10", True),  # a 304's length describes the resource
        (204, b"Content-Length: 0", True),
        (204, b"Content-Length: 10", False),  # a body it may still send would be the next answer's
        (204, b"Transfer-Encoding: chunked", False),
        (304, b"Transfer-Encoding: chunked", False),
    ],
)
def test_no_body_statuses_have_no_body_and_a_doubtful_one_is_not_reused(core, status, framing, reusable, skip):
    wire = b"HTTP/1.1 %d X\r\n%s\r\n\r\n" % (status, framing)
    parser = core.ResponseParser(False, 65536, skip)
    heads, pieces = split_items(core, parser.feed(wire))
    assert [h.status for h in heads] == [status]
    assert pieces == []
    assert parser.done
    assert heads[0].keep_alive is reusable


@pytest.mark.parametrize("skip", [None, frozenset()], ids=["pairs", "block"])
def test_101_switching_protocols_is_refused(core, skip):
    """101 ends HTTP/1.1 on the connection, and the gateway never asks for an upgrade."""
    parser = core.ResponseParser(False, 65536, skip)
    with pytest.raises(errors.UpstreamProtocolError, match="101"):
        parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")


def test_head_request_has_no_body(core):
    parser = core.ResponseParser(head_request=True)
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: application/json\r\n\r\n"
    heads, pieces = split_items(core, parser.feed(wire))
    assert [h.status for h in heads] == [200]
    assert pieces == []
    assert parser.done
    assert heads[0].keep_alive


def test_head_request_with_chunked_header_has_no_body(core):
    parser = core.ResponseParser(head_request=True)
    heads, pieces = split_items(
        core, parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    )
    assert len(heads) == 1 and pieces == []
    assert parser.done


def test_bytes_after_done_make_connection_non_reusable(core):
    parser = core.ResponseParser()
    items = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    heads, pieces = split_items(core, items)
    assert b"".join(pieces) == b"ok"
    assert parser.done
    assert heads[0].keep_alive is False


def test_bytes_in_a_later_feed_after_done_make_connection_non_reusable(core):
    parser = core.ResponseParser()
    heads, _ = split_items(core, parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert heads[0].keep_alive is True
    assert parser.feed(b"HTTP/1.1 200 OK\r\n") == []
    assert heads[0].keep_alive is False


def test_chunked_trailers_are_consumed(core):
    parser = core.ResponseParser()
    items = parser.feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n"
    )
    heads, pieces = split_items(core, items)
    assert b"".join(pieces) == b"hi"
    assert parser.done
    assert heads[0].keep_alive is True


def test_large_content_length_body(core):
    body = bytes(range(256)) * 8192
    parser = core.ResponseParser()
    items = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
    for i in range(0, len(body), 50000):
        items.extend(parser.feed(body[i : i + 50000]))
    heads, pieces = split_items(core, items)
    assert heads[0].content_length == len(body)
    assert b"".join(pieces) == body
    assert parser.done


# --- errors ------------------------------------------------------------------------------------

GARBAGE = [
    b"garbage\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"<html><body>hi</body></html>\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 099 Weird\r\n\r\n",  # RFC 9110 section 15: a status is 100 to 599
    b"HTTP/1.1 999 Weird\r\n\r\n",
    b"HTTP/1.1 600 OK\r\n\r\n",
    b"HTTP/x 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
]


@pytest.mark.parametrize("wire", GARBAGE)
def test_garbage_is_upstream_protocol_error(core, wire):
    with pytest.raises(errors.UpstreamProtocolError) as info:
        core.ResponseParser().feed(wire)
    assert info.value.status == 502


@pytest.mark.parametrize("wire", GARBAGE)
def test_garbage_byte_by_byte_is_upstream_protocol_error(core, wire):
    parser = core.ResponseParser()
    with pytest.raises(errors.UpstreamProtocolError):
        for i in range(len(wire)):
            parser.feed(wire[i : i + 1])


def test_head_over_limit_is_upstream_protocol_error(core):
    parser = core.ResponseParser(max_header_bytes=1024)
    with pytest.raises(errors.UpstreamProtocolError):
        parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 4000 + b"\r\n\r\n")


@pytest.mark.parametrize("codings", [b"gzip, chunked", b"gzip", b"identity", b"chunked, chunked", b"chunked\r\nTransfer-Encoding: br"])
def test_a_transfer_coding_other_than_chunked_alone_is_refused(core, codings):
    # Only chunked is decoded: a coding before it would reach the client undecoded, and with no
    # header left to say so (Transfer-Encoding is not relayed).
    with pytest.raises(errors.UpstreamProtocolError):
        core.ResponseParser().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + codings + b"\r\n\r\n0\r\n\r\n")


@pytest.mark.parametrize("length", [b"99999999999999999999999", b"1000000000000000000"])
def test_a_content_length_past_18_digits_is_refused(core, length):
    # Saturated (not wrapped) by the shared parser, it was relayed to the client as 10**18.
    with pytest.raises(errors.UpstreamProtocolError):
        core.ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n")


def test_content_length_with_chunked_decodes_the_chunks_and_ends_the_connection(core):
    # RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, and such a message "ought to
    # be handled as an error": the body is read as chunks, and the connection is never reused.
    parser = core.ResponseParser()
    head, body = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert body == b"hello" and head.chunked and parser.done
    assert head.keep_alive is False


def test_unterminated_head_over_limit_is_upstream_protocol_error(core):
    parser = core.ResponseParser(max_header_bytes=1024)
    with pytest.raises(errors.UpstreamProtocolError):
        parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 4000)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["nothing", "partial-head", "short-cl-body", "mid-chunk", "no-last-chunk",
         "no-final-crlf", "only-interim"],
)
def test_truncated_at_eof_is_upstream_protocol_error(core, wire):
    parser = core.ResponseParser()
    parser.feed(wire)
    with pytest.raises(errors.UpstreamProtocolError):
        parser.feed_eof()
    assert not parser.done


def test_done_starts_false(core):
    assert core.ResponseParser().done is False


@pytest.mark.parametrize("body", [b"2\nhi\r\n0\r\n\r\n", b"2\r\nhi\r\n0\r\nX-T: 1\n", b"2\r\nhiX"])
def test_bare_line_endings_in_an_upstream_chunked_body_fail_at_once(core, body):
    parser = core.ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(errors.UpstreamProtocolError):
        for i in range(len(body)):
            parser.feed(body[i : i + 1])


@pytest.mark.parametrize(
    "wire",
    [b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", b"HTTP/1.1 200 OK\r\nX: 1\nContent-Length: 2\r\n\r\n{}", b"HTTP/1.1 200 OK\rX: 1\r\n"],
)
def test_a_head_with_bare_line_ends_fails_at_once_not_at_the_timeout(core, wire):
    """An upstream that ends its lines with LF alone never sends the CRLF CRLF the parser waits
    for: refused as it arrives, whole or byte by byte, instead of when the first-byte timeout fires."""
    with pytest.raises(errors.UpstreamProtocolError):
        core.ResponseParser().feed(wire)
    parser = core.ResponseParser()
    with pytest.raises(errors.UpstreamProtocolError):
        for i in range(len(wire)):
            parser.feed(wire[i : i + 1])
