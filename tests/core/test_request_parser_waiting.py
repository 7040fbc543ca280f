"""RequestParser while a request is not whole yet: ``in_progress`` (a request begun),
``expect_continue`` (RFC 9110 section 10.1.1: a head that holds its body back for ``100 Continue``)
and ``waiting_head`` (that head, for a refusal decided from it alone), ``arriving_headers`` (the
headers of a request whose body is arriving, for the 408 of a slow one), ``arriving_method`` (the
method of the request being read, kept after an error: a refused HEAD is answered without a body)."""

import pytest

from alloy import errors


def test_in_progress_tracks_buffered_request_bytes(core):
    parser = core.RequestParser()
    assert not parser.in_progress
    parser.feed(b"GE")
    assert parser.in_progress
    parser.feed(b"T / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n")
    assert parser.in_progress  # head complete, body awaited
    parser.feed(b"ab")
    assert parser.in_progress
    assert len(parser.feed(b"cd")) == 1
    assert not parser.in_progress


@pytest.mark.parametrize("framing", [b"Content-Length: 4\r\n", b"Transfer-Encoding: chunked\r\n"])
def test_arriving_headers_while_the_body_arrives(core, framing):
    parser = core.RequestParser()
    assert parser.arriving_headers is None
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\n")
    assert parser.arriving_headers is None  # the head is not whole yet
    parser.feed(framing + b"\r\n" + (b"ab" if b"Length" in framing else b"2\r\nab\r\n"))
    assert parser.arriving_headers[b"origin"] == b"https://app.example"
    parser.feed(b"cd" if b"Length" in framing else b"2\r\ncd\r\n0\r\n\r\n")
    assert parser.arriving_headers is None  # whole: nothing is arriving


def test_arriving_method_from_the_request_line_until_the_request_is_whole(core):
    parser = core.RequestParser()
    assert parser.arriving_method is None
    parser.feed(b"HEAD / HTT")
    assert parser.arriving_method is None  # the request line is not whole yet
    parser.feed(b"P/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\na")
    assert parser.arriving_method == b"HEAD"
    assert len(parser.feed(b"b")) == 1
    assert parser.arriving_method is None  # whole: the next request's method is not known yet


@pytest.mark.parametrize(
    "head",
    [
        b"HEAD / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
    ],
)
def test_arriving_method_outlives_an_error_in_the_head_or_body(core, head):
    parser = core.RequestParser()
    try:
        parser.feed(head)
    except errors.AlloyError:
        pass
    assert parser.arriving_method == b"HEAD"


def test_expect_continue_while_body_awaited(core):
    parser = core.RequestParser()
    assert not parser.expect_continue
    head = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    assert parser.feed(head) == []
    assert parser.expect_continue
    assert parser.feed(b"hel") == []
    assert parser.expect_continue
    (request,) = parser.feed(b"lo")
    assert request.body == b"hello"
    assert request.headers[b"expect"] == b"100-continue"
    assert not parser.expect_continue


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (b"Expect: 100-continue\r\nExpect: 100-continue\r\n", True),  # sent twice: one list (RFC 9110 5.3)
        (b"Expect: 100-Continue , \t\r\n", True),
        (b"Expect: foo, 100-continue\r\n", True),
        (b"Expect: foo\r\n", False),
        (b"Expect: 100-continues\r\n", False),
        (b"Expect:\r\n", False),
    ],
)
def test_expect_is_a_list_that_may_name_100_continue(core, fields, expected):
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\n" + fields + b"Content-Length: 5\r\n\r\n")
    assert parser.expect_continue is expected


def test_the_waiting_head_is_the_request_whose_body_is_held_back(core):
    # The connection may refuse it from its head alone (a wrong key) instead of asking for the body.
    parser = core.RequestParser()
    assert parser.waiting_head is None
    parser.feed(b"POST /v1/x?q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    head = parser.waiting_head
    assert (head.method, head.target, head.body, head.keep_alive) == (b"POST", b"/v1/x?q=1", b"", True)
    assert head.headers[b"authorization"] == b"Bearer k"
    (request,) = parser.feed(b"hello")
    assert request.body == b"hello" and head.body == b""  # a copy: the request itself is untouched
    assert parser.waiting_head is None
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
    assert parser.waiting_head is None  # no Expect: nothing waits


def test_expect_continue_not_set_before_head_complete(core):
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Len")
    assert not parser.expect_continue


def test_expect_continue_with_chunked_body(core):
    parser = core.RequestParser()
    head = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert parser.feed(head) == []
    assert parser.expect_continue
    assert parser.feed(b"3\r\nabc\r\n") == []
    assert parser.expect_continue
    (request,) = parser.feed(b"0\r\n\r\n")
    assert request.body == b"abc"
    assert not parser.expect_continue


def test_expect_continue_value_is_case_insensitive(core):
    # RFC 9110 section 10.1.1: the expectation is compared case-insensitively.
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
    assert parser.expect_continue


def test_expect_continue_false_without_expect(core):
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
    assert parser.in_progress
    assert not parser.expect_continue


def test_expect_continue_false_when_no_body_awaited(core):
    parser = core.RequestParser()
    (request,) = parser.feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"
    )
    assert request.body == b""
    assert not parser.expect_continue


def test_expect_continue_once_per_pipelined_request(core):
    first = b"POST /1 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    second = b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n"
    third = b"POST /3 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    parser = core.RequestParser()
    assert parser.feed(first) == []
    assert parser.expect_continue
    assert [r.target for r in parser.feed(b"a" + second)] == [b"/1"]
    assert not parser.expect_continue  # /2 has no Expect
    assert [r.target for r in parser.feed(b"b" + third)] == [b"/2"]
    assert parser.expect_continue
    assert [r.target for r in parser.feed(b"c")] == [b"/3"]
    assert not parser.expect_continue


def test_expect_continue_ignored_for_http10(core):
    # RFC 9110 section 10.1.1: "A server that receives a 100-continue expectation in an HTTP/1.0
    # request MUST ignore that expectation."
    parser = core.RequestParser()
    parser.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert parser.in_progress
    assert not parser.expect_continue


# --- a head arriving in pieces: each read's bytes are checked once, and nothing is lost between two


HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_stray_crlf_split_between_two_reads_is_an_empty_line(core):
    parser = core.RequestParser()
    assert len(parser.feed(HEAD + b"\r")) == 1
    assert len(parser.feed(b"\n" + HEAD)) == 1  # not "invalid method": the CR began an empty line
    assert parser.error is None


@pytest.mark.parametrize("wire", [
    b"GET / HTTP/1.1\r\nHost: x\rY",  # a CR ending one read, not followed by LF in the next
    b"GET / HTTP/1.1\r\nHost: x\nY",  # an LF starting a read, after a byte that is not CR
    b"G\x01T / HTTP/1.1\r\n",  # a byte no method has, in the middle of the method
])
@pytest.mark.parametrize("piece", [1, 2, 3, 7])
def test_a_head_in_pieces_is_refused_as_it_is_whole(core, wire, piece):
    parser = core.RequestParser()
    with pytest.raises(errors.ProtocolError):
        for start in range(0, len(wire), piece):
            parser.feed(wire[start : start + piece])


@pytest.mark.parametrize("piece", [1, 5, 10])
def test_a_long_head_in_small_pieces_is_read_whole(core, piece):
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a: b\r\n" * 2000 + b"\r\n"
    parser = core.RequestParser()
    requests = []
    for start in range(0, len(head), piece):
        requests += parser.feed(head[start : start + piece])
    (request,) = requests
    assert request.target == b"/" and request.headers[b"host"] == b"x"
