"""ResponseParser with a ``skip`` set: each head carries the client-facing header block.

The relay of a passthrough answer forwards ``head.block`` as it is, so it must be exactly what
``encode_headers(head.headers, skip)`` would have made, on both twins and for every vector; the
compiled twin builds ``headers`` only when asked, so ``headers`` and ``get`` must not change either;
and a head that is refused without ``skip`` is refused with it.
"""

import random

import pytest

from alloy import errors
from test_response_parser import GARBAGE, head_fields, split_items
from vectors import RESPONSE_PARSE, RESPONSE_ROUND_TRIP, STREAM_ROUND_TRIP

SKIP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"x-request-id", b"set-cookie", b"openai-organization"}
)
REALISTIC = (
    b"HTTP/1.1 200 OK\r\nDate: Thu, 03 Dec 2026 10:00:00 GMT\r\nContent-Type: application/json\r\n"
    b"Content-Length: 5\r\nConnection: keep-alive\r\naccess-control-expose-headers: X-Request-ID\r\n"
    b"openai-organization: org-abc\r\nopenai-processing-ms:   412  \r\nopenai-version: 2020-10-01\r\n"
    b"x-ratelimit-limit-requests: 10000\r\nx-ratelimit-remaining-tokens:\t149999\t\r\nX-Request-ID: req_1\r\n"
    b"Set-Cookie: __cf_bm=abc; path=/; HttpOnly\r\nEmpty:\r\nCF-RAY: 8f-SJC\r\nalt-svc: h3=\":443\"; ma=86400\r\n\r\nhello"
)


def parse(core, wire, skip=SKIP, head_request=False, pieces=None):
    parser = core.ResponseParser(head_request=head_request, skip=skip)
    items = []
    for chunk in pieces or [wire]:
        items.extend(parser.feed(chunk))
    heads, body = split_items(core, items)
    return heads, b"".join(body)


def test_the_block_is_encode_headers_of_the_kept_fields(core):
    (head,), body = parse(core, REALISTIC)
    assert body == b"hello"
    assert head.block_skip is SKIP
    assert head.block == core.encode_headers(head.headers, SKIP)
    assert head.block.startswith(b"date: Thu, 03 Dec 2026 10:00:00 GMT\r\ncontent-type: application/json\r\n")
    assert b"openai-processing-ms: 412\r\n" in head.block and b"x-ratelimit-remaining-tokens: 149999\r\n" in head.block
    assert b"empty: \r\n" in head.block and b'alt-svc: h3=":443"; ma=86400\r\n' in head.block
    for hidden in (b"set-cookie", b"x-request-id", b"openai-organization", b"connection", b"content-length"):
        assert hidden + b":" not in head.block.lower()


def test_get_reads_the_received_lines_as_the_list_would(core):
    (head,), _ = parse(core, REALISTIC)
    # get before headers (the compiled twin has not built the list yet), then after
    asked = [b"x-request-id", b"content-type", b"openai-processing-ms", b"empty", b"cf-ray", b"absent", b"X-Request-ID"]
    before = [head.get(name) for name in asked]
    assert before[:6] == [b"req_1", b"application/json", b"412", b"", b"8f-SJC", None]
    assert before[6] is None  # names are asked for in lower case, as the list holds them
    assert head.get(b"absent", b"default") == b"default"
    listed = dict(reversed(head.headers))  # the first of duplicates, as get returns
    assert [listed.get(name) for name in asked] == before
    assert [head.get(name) for name in asked] == before


@pytest.mark.parametrize("where", ["before", "after"])
def test_fields_named_in_connection_never_reach_the_client(core, where):
    """RFC 9110 section 7.6.1: a field named in Connection is hop-by-hop for this connection only,
    wherever it stands. The parser leaves such a head without a block (the named field may have
    been written before Connection was read) and encode_headers leaves the named fields out."""
    lines = [b"X-Secret-Hop: leak", b"X-Kept: 1"]
    connection = b"Connection: X-Secret-Hop , keep-alive"
    lines = [connection, *lines] if where == "before" else [*lines, connection]
    wire = b"HTTP/1.1 200 OK\r\n" + b"\r\n".join(lines) + b"\r\nContent-Length: 2\r\n\r\nok"
    (head,), body = parse(core, wire)
    assert body == b"ok" and head.block is None and head.keep_alive
    written = core.encode_headers(head.headers, SKIP)
    assert written == b"x-kept: 1\r\n"
    assert core.encode_headers([(b"connection", b"close"), (b"x-kept", b"1")], SKIP) == b"x-kept: 1\r\n"


def test_without_skip_there_is_no_block(core):
    (head,), _ = parse(core, REALISTIC, skip=None)
    assert head.block is None and head.block_skip is None


def test_skip_must_be_a_frozenset(core):
    with pytest.raises(TypeError):
        core.ResponseParser(skip={b"set-cookie"})


@pytest.mark.parametrize("wire,head_request,expected,complete", RESPONSE_PARSE)
def test_every_vector_parses_the_same_with_a_block(core, wire, head_request, expected, complete):
    plain = core.ResponseParser(head_request=head_request).feed(wire)
    blocked = core.ResponseParser(head_request=head_request, skip=SKIP).feed(wire)
    assert [type(item) for item in blocked] == [type(item) for item in plain]
    for a, b in zip(plain, blocked):
        if isinstance(a, core.ResponseHead):
            assert head_fields(b) == head_fields(a)
            assert b.block == core.encode_headers(a.headers, SKIP)
        else:
            assert a == b


def test_round_trips_and_streams_split_anywhere(core):
    rng = random.Random(11)
    for _, wire in [*RESPONSE_ROUND_TRIP, *STREAM_ROUND_TRIP]:
        cut = sorted(rng.sample(range(1, len(wire)), min(3, len(wire) - 1)))
        pieces = [wire[a:b] for a, b in zip([0, *cut], [*cut, len(wire)])]
        heads, body = parse(core, wire, pieces=pieces)
        plain_heads, plain_body = parse(core, wire, skip=None)
        assert body == plain_body and len(heads) == len(plain_heads) == 1
        assert heads[0].block == core.encode_headers(plain_heads[0].headers, SKIP)
        assert head_fields(heads[0]) == head_fields(plain_heads[0])


def test_interim_responses_have_no_head_and_the_final_one_a_block(core):
    wire = b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-B: 2\r\n\r\nok"
    (head,), body = parse(core, wire)
    assert (head.status, head.block, body) == (200, b"x-b: 2\r\n", b"ok")


@pytest.mark.parametrize("wire", GARBAGE)
def test_what_is_refused_without_a_block_is_refused_with_one(core, wire):
    with pytest.raises(errors.UpstreamProtocolError):
        core.ResponseParser(skip=SKIP).feed(wire)
