"""RequestParser: framing, pipelining, keep-alive, smuggling rejects and limits (a request not whole
yet, 100-continue: test_request_parser_waiting.py)."""

import pytest

from alloy import errors
from vectors import REQUEST_PARSE, REQUEST_REJECTS, REQUEST_ROUND_TRIP, expected_request

ROUND_TRIP_PARSE = [(wire, expected_request(*values)) for values, wire in REQUEST_ROUND_TRIP]
ALL_PARSE = REQUEST_PARSE + ROUND_TRIP_PARSE


def fields(request):
    return {
        "method": request.method,
        "target": request.target,
        "version": request.version,
        "headers": request.headers,
        "body": request.body,
        "keep_alive": request.keep_alive,
    }


def feed_bytewise(parser, data):
    requests = []
    for i in range(len(data)):
        requests.extend(parser.feed(data[i : i + 1]))
    return requests


# --- parsing the vectors -----------------------------------------------------------------------


@pytest.mark.parametrize("wire,expected", ALL_PARSE)
def test_parses_vector_in_one_feed(core, wire, expected):
    parser = core.RequestParser()
    requests = parser.feed(wire)
    assert [fields(r) for r in requests] == [expected]
    assert not parser.in_progress


@pytest.mark.parametrize("wire,expected", ALL_PARSE)
def test_byte_by_byte_gives_the_same_request(core, wire, expected):
    parser = core.RequestParser()
    for i in range(len(wire) - 1):
        assert parser.feed(wire[i : i + 1]) == []
        assert parser.in_progress
    requests = parser.feed(wire[-1:])
    assert [fields(r) for r in requests] == [expected]
    assert not parser.in_progress


@pytest.mark.parametrize("wire,expected", ALL_PARSE)
def test_every_two_way_split_gives_the_same_request(core, wire, expected):
    for cut in range(len(wire) + 1):
        parser = core.RequestParser()
        requests = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
        assert [fields(r) for r in requests] == [expected], cut


def test_request_attribute_types(core):
    (request,) = core.RequestParser().feed(
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
    )
    assert type(request.method) is bytes
    assert type(request.target) is bytes
    assert type(request.version) is int
    assert type(request.body) is bytes
    assert type(request.keep_alive) is bool
    assert isinstance(request.headers, dict)
    assert all(type(k) is bytes and type(v) is bytes for k, v in request.headers.items())


def test_empty_feed_returns_nothing(core):
    parser = core.RequestParser()
    assert parser.feed(b"") == []
    assert not parser.in_progress
    assert not parser.expect_continue


def test_chunked_coding_name_is_case_insensitive(core):
    # RFC 9112 section 7: "All transfer-coding names are case-insensitive".
    wire = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    (request,) = core.RequestParser().feed(wire)
    assert request.body == b"abc"


def test_chunk_size_hex_digits_in_both_cases(core):
    body = b"x" * 0xAB + b"y" * 0xCD
    wire = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"aB\r\n" + b"x" * 0xAB + b"\r\nCd\r\n" + b"y" * 0xCD + b"\r\n0\r\n\r\n"
    )
    (request,) = core.RequestParser().feed(wire)
    assert request.body == body


def test_chunk_size_with_leading_zeros(core):
    wire = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0003\r\nabc\r\n000\r\n\r\n"
    )
    (request,) = core.RequestParser().feed(wire)
    assert request.body == b"abc"


def test_content_length_value_whitespace_is_ignored(core):
    wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:   3  \r\n\r\nabc"
    (request,) = core.RequestParser().feed(wire)
    assert request.body == b"abc"
    assert request.headers[b"content-length"] == b"3"


def test_one_megabyte_body_fed_in_pieces(core):
    body = bytes(range(256)) * 4096
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
    parser = core.RequestParser()
    assert parser.feed(head) == []
    requests = []
    for i in range(0, len(body), 65536):
        requests.extend(parser.feed(body[i : i + 65536]))
    assert [r.body for r in requests] == [body]


def test_one_megabyte_chunked_body(core):
    body = b"0123456789abcdef" * 65536
    chunks = b"".join(
        b"%x\r\n" % len(body[i : i + 10000]) + body[i : i + 10000] + b"\r\n"
        for i in range(0, len(body), 10000)
    )
    wire = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    (request,) = core.RequestParser().feed(wire)
    assert request.body == body


def test_a_body_of_tiny_chunks_costs_about_its_size_in_memory(core):
    # Sent before any key is checked: one object per chunk once made a body of 2-byte chunks cost
    # ~29 times its size (a 40 MiB upload pinned over a GB).
    import tracemalloc

    size = 1 << 20
    wire = b"2\r\nyy\r\n" * (size // 2)
    parser = core.RequestParser(max_body_bytes=64 << 20)
    assert parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n") == []
    tracemalloc.start()
    try:
        for start in range(0, len(wire), 65536):
            assert parser.feed(wire[start : start + 65536]) == []
        held, _ = tracemalloc.get_traced_memory()
        (request,) = parser.feed(b"0\r\n\r\n")
    finally:
        tracemalloc.stop()
    assert request.body == b"y" * size
    assert held < 2 * size, held  # the body so far, with a growing buffer's slack


# --- pipelining --------------------------------------------------------------------------------

PIPELINE = [(wire, expected) for wire, expected in ALL_PARSE if expected["keep_alive"]]


def test_pipelined_requests_in_one_feed(core):
    wire = b"".join(w for w, _ in PIPELINE)
    requests = core.RequestParser().feed(wire)
    assert [fields(r) for r in requests] == [e for _, e in PIPELINE]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1000])
def test_pipelined_requests_in_pieces(core, piece):
    wire = b"".join(w for w, _ in PIPELINE)
    parser = core.RequestParser()
    requests = []
    for i in range(0, len(wire), piece):
        requests.extend(parser.feed(wire[i : i + piece]))
    assert [fields(r) for r in requests] == [e for _, e in PIPELINE]
    assert not parser.in_progress


def test_pipelined_with_a_partial_third_request(core):
    first = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
    second = b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    third = b"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
    parser = core.RequestParser()
    requests = parser.feed(first + second + third[:40])
    assert [(r.target, r.body) for r in requests] == [(b"/1", b""), (b"/2", b"abc")]
    assert parser.in_progress
    requests = parser.feed(third[40:])
    assert [(r.target, r.body) for r in requests] == [(b"/3", b"de")]
    assert not parser.in_progress


def test_pipelined_after_chunked_trailers(core):
    first = (
        b"POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nX-T: 1\r\n\r\n"
    )
    second = b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    requests = core.RequestParser().feed(first + second)
    assert [(r.target, r.body) for r in requests] == [(b"/1", b"a"), (b"/2", b"")]


HEAD_CHUNKED = b"POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "tail",
    [
        b"1;x=" + b"a" * 5000 + b"\r\na\r\n0\r\n\r\n",  # a chunk extension past 4 KiB, its CRLF in the same read
        b"1\r\na\r\n0\r\nX-T: " + b"a" * 5000 + b"\r\n\r\n",  # one trailer line past 4 KiB
        b"1\r\na\r\n0\r\n" + (b"X-T: " + b"a" * 1000 + b"\r\n") * 70 + b"\r\n",
    ],
    ids=["a long chunk extension", "a long trailer line", "a trailer section past 64 KiB"],
)
def test_chunk_lines_and_the_trailer_section_are_bounded_however_they_arrive(core, tail):
    # Neither counts toward the head's limit nor the body's: each has its own bound, checked
    # whether the line's CRLF came in the same read or a later one.
    for pieces in ([tail], [tail[i : i + 1000] for i in range(0, len(tail), 1000)]):
        parser = core.RequestParser()
        with pytest.raises(errors.ProtocolError):
            parser.feed(HEAD_CHUNKED)
            for piece in pieces:
                parser.feed(piece)


def test_body_bytes_that_look_like_a_request_stay_body(core):
    inner = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    wire = b"POST /outer HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner
    requests = core.RequestParser().feed(wire)
    assert [(r.target, r.body) for r in requests] == [(b"/outer", inner)]


# --- keep-alive (RFC 9112 section 9.3) ---------------------------------------------------------


@pytest.mark.parametrize(
    "version,connection,keep_alive",
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"CLOSE", False),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"upgrade", True),
        (b"1.1", b"keep-alive, close", False),
        (b"1.1", b"x-custom ,  close", False),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"close", False),
        (b"1.0", b"keep-alive, close", False),
    ],
)
def test_keep_alive_rules(core, version, connection, keep_alive):
    wire = b"GET / HTTP/" + version + b"\r\nHost: h\r\n"
    if connection is not None:
        wire += b"Connection: " + connection + b"\r\n"
    (request,) = core.RequestParser().feed(wire + b"\r\n")
    assert request.version == (11 if version == b"1.1" else 10)
    assert request.keep_alive is keep_alive


def test_connection_close_sent_in_two_fields(core):
    wire = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
    (request,) = core.RequestParser().feed(wire)
    assert request.keep_alive is False


# --- refusals --------------------------------------------------------------------------------

REJECT_IDS = [case[0] for case in REQUEST_REJECTS]
REJECT_CASES = [case[1:] for case in REQUEST_REJECTS]


@pytest.mark.parametrize("wire,exc_class,status", REJECT_CASES, ids=REJECT_IDS)
def test_rejected_in_one_feed(core, wire, exc_class, status):
    with pytest.raises(exc_class) as info:
        core.RequestParser().feed(wire)
    assert isinstance(info.value, errors.ProtocolError)
    assert info.value.status == status


@pytest.mark.parametrize("wire,exc_class,status", REJECT_CASES, ids=REJECT_IDS)
def test_rejected_byte_by_byte_without_yielding_a_request(core, wire, exc_class, status):
    parser = core.RequestParser()
    with pytest.raises(exc_class) as info:
        for i in range(len(wire)):
            assert parser.feed(wire[i : i + 1]) == []
    assert info.value.status == status


@pytest.mark.parametrize("wire,exc_class,status", REJECT_CASES, ids=REJECT_IDS)
def test_rejected_after_a_valid_pipelined_request(core, wire, exc_class, status):
    parser = core.RequestParser()
    (first,) = parser.feed(b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n")
    assert first.target == b"/ok"
    with pytest.raises(exc_class) as info:
        parser.feed(wire)
    assert info.value.status == status


def test_identical_duplicate_content_length_accepted(core):
    wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: h\r\n\r\n"
    requests = core.RequestParser().feed(wire)
    assert [(r.target, r.body) for r in requests] == [(b"/", b"hello"), (b"/next", b"")]


def test_identical_duplicate_content_length_joined_like_any_repeated_field(core):
    wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    (request,) = core.RequestParser().feed(wire)
    assert request.headers[b"content-length"] == b"5, 5"


def test_tab_inside_header_value_is_not_a_control_character_reject(core):
    (request,) = core.RequestParser().feed(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\n\r\n")
    assert request.headers[b"x"] == b"a\tb"


def test_missing_host_allowed_in_http10(core):
    (request,) = core.RequestParser().feed(b"GET / HTTP/1.0\r\n\r\n")
    assert b"host" not in request.headers


def test_parser_is_dead_after_an_error(core):
    parser = core.RequestParser()
    with pytest.raises(errors.ProtocolError):
        parser.feed(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n")
    # Whatever it does next, it never hands out a request again.
    try:
        requests = parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    except errors.ProtocolError:
        requests = []
    assert requests == []


def test_errors_carry_openai_shape(core):
    with pytest.raises(errors.ProtocolError) as info:
        core.RequestParser().feed(b"GET / HTTP/1.1\r\n\r\n")
    payload = errors.error_payload(info.value)["error"]
    assert payload["type"] == "invalid_request_error"
    assert isinstance(payload["message"], str) and payload["message"]


# --- limits ------------------------------------------------------------------------------------


def test_head_within_limit_accepted(core):
    wire = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 800 + b"\r\n\r\n"
    (request,) = core.RequestParser(max_header_bytes=1024).feed(wire)
    assert request.headers[b"x-big"] == b"a" * 800


def test_head_over_limit_is_431(core):
    wire = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    with pytest.raises(errors.HeadersTooLarge) as info:
        core.RequestParser(max_header_bytes=1024).feed(wire)
    assert info.value.status == 431


def test_many_small_headers_over_limit_is_431(core):
    wire = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(
        b"X-%d: v\r\n" % i for i in range(300)
    ) + b"\r\n"
    with pytest.raises(errors.HeadersTooLarge) as info:
        core.RequestParser(max_header_bytes=1024).feed(wire)
    assert info.value.status == 431


def test_long_request_line_counts_toward_header_limit(core):
    """A request line that does not end within the limit is a 414 (RFC 9112 section 3), whole or
    still arriving; one that ends within it, followed by fields that do not, is a 431."""
    wire = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    with pytest.raises(errors.URITooLong):
        core.RequestParser(max_header_bytes=1024).feed(wire)
    with pytest.raises(errors.URITooLong):
        core.RequestParser(max_header_bytes=1024).feed(wire[:1500])
    with pytest.raises(errors.HeadersTooLarge):
        core.RequestParser(max_header_bytes=1024).feed(b"GET /" + b"a" * 900 + b" HTTP/1.1\r\nHost: h\r\nX: " + b"b" * 200 + b"\r\n\r\n")


def test_unterminated_head_over_limit_is_431_without_waiting(core):
    parser = core.RequestParser(max_header_bytes=1024)
    with pytest.raises(errors.HeadersTooLarge):
        parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 5000)


def test_trickled_head_is_refused_by_twice_the_limit(core):
    parser = core.RequestParser(max_header_bytes=1024)
    data = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 100
    with pytest.raises(errors.HeadersTooLarge):
        for i in range(0, 2048, 16):
            parser.feed(data[i : i + 16])


def test_default_header_limit_is_64_kib(core):
    small = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 60000 + b"\r\n\r\n"
    assert len(core.RequestParser().feed(small)) == 1
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 70000 + b"\r\n\r\n"
    with pytest.raises(errors.HeadersTooLarge):
        core.RequestParser().feed(big)


def test_body_at_limit_accepted(core):
    wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    (request,) = core.RequestParser(max_body_bytes=100).feed(wire)
    assert request.body == b"x" * 100


def test_declared_body_over_limit_is_413_before_the_body(core):
    parser = core.RequestParser(max_body_bytes=100)
    with pytest.raises(errors.BodyTooLarge) as info:
        parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n")
    assert info.value.status == 413


def test_huge_content_length_is_413(core):
    with pytest.raises(errors.BodyTooLarge):
        core.RequestParser().feed(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n"
        )


def test_default_body_limit_is_32_mib(core):
    ok = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 33554432\r\n\r\n"
    parser = core.RequestParser()
    assert parser.feed(ok) == []
    assert parser.in_progress
    with pytest.raises(errors.BodyTooLarge):
        core.RequestParser().feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 33554433\r\n\r\n")


def test_chunked_body_at_limit_accepted(core):
    wire = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"32\r\n" + b"a" * 50 + b"\r\n32\r\n" + b"b" * 50 + b"\r\n0\r\n\r\n"
    )
    (request,) = core.RequestParser(max_body_bytes=100).feed(wire)
    assert len(request.body) == 100


def test_chunked_body_growing_past_limit_is_413(core):
    parser = core.RequestParser(max_body_bytes=100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert parser.feed(b"3c\r\n" + b"a" * 60 + b"\r\n") == []
    with pytest.raises(errors.BodyTooLarge) as info:
        parser.feed(b"3c\r\n" + b"b" * 60 + b"\r\n")
    assert info.value.status == 413


def test_chunked_body_past_limit_refused_by_the_first_byte_over(core):
    parser = core.RequestParser(max_body_bytes=100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(errors.BodyTooLarge):
        parser.feed(b"1000\r\n")
        for _ in range(101):
            parser.feed(b"z")


def test_a_refused_body_keeps_its_target_for_the_answer(core):
    # The client connection answers a /v1/messages refusal in Anthropic's shape (alloy.client_connection).
    for wire in (
        b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n",
        b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
    ):
        with pytest.raises(errors.BodyTooLarge) as info:
            core.RequestParser(max_body_bytes=100).feed(wire)
        assert info.value.target == b"/v1/messages?beta=true"


def test_a_chunk_announced_past_the_limit_after_another_is_413_at_its_size_line(core):
    # body size + announced size must not overflow (the compiled twin counts in 64 bits)
    parser = core.RequestParser(max_body_bytes=100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
    with pytest.raises(errors.BodyTooLarge):
        parser.feed(b"7fffffffffffffff\r\n")


def test_many_tiny_chunks_past_limit_is_413(core):
    parser = core.RequestParser(max_body_bytes=100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(errors.BodyTooLarge):
        for _ in range(101):
            parser.feed(b"1\r\nz\r\n")


def test_overflowing_chunk_size_is_refused(core):
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(errors.ProtocolError):
        parser.feed(b"1" + b"0" * 40 + b"\r\n")


# A line ended by a bare LF or CR can never be completed by a CRLF: refused as soon as it is seen,
# not after the read timeout (and never half-accepted as h11 would for some of them).
BARE_LINE_ENDINGS = [
    b"5\nhello\r\n0\r\n\r\n",  # chunk size ended by a bare LF
    b"5\rhello\r\n0\r\n\r\n",  # ... by a lone CR
    b"5;ext\nhello\r\n0\r\n\r\n",  # ... after an extension
    b"0\r\nx-trailer: 1\n",  # a trailer ended by a bare LF
    b"0\r\nx-trailer: 1\rmore",  # ... by a lone CR
    b"5\r\nhelloX",  # chunk data followed by something other than CR
    b"0;ext\r \r\n\r\n",  # a lone CR hidden in a chunk extension
    b"0;a=b\nAccept: x\r\n\r\n",  # a bare LF hidden in a chunk extension
    b"5;x\r\r\nhello\r\n0\r\n\r\n",  # a CR just before the line's CRLF
]


@pytest.mark.parametrize("body", BARE_LINE_ENDINGS)
def test_bare_line_endings_in_chunked_framing_are_refused_at_once(core, body):
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(errors.ProtocolError):
        feed_bytewise(parser, body)


@pytest.mark.parametrize("split", range(1, 12))
def test_crlf_split_anywhere_in_chunked_framing_still_parses(core, split):
    body = b"5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n"
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    requests = parser.feed(body[:split]) + parser.feed(body[split:])
    assert [r.body for r in requests] == [b"hello"]


def test_requests_completed_before_an_error_in_the_same_data_are_returned_first(core):
    parser = core.RequestParser()
    good = b"GET /first HTTP/1.1\r\nHost: h\r\n\r\nPOST /second HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
    smuggling = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    requests = parser.feed(good + smuggling)
    assert [r.target for r in requests] == [b"/first", b"/second"]
    assert isinstance(parser.error, errors.ProtocolError)
    with pytest.raises(errors.ProtocolError):  # and the parser is dead
        parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


def test_an_error_with_no_request_before_it_is_raised_and_error_stays_none(core):
    parser = core.RequestParser()
    with pytest.raises(errors.ProtocolError):
        parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n")
    assert parser.error is None
