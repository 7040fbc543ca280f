"""RequestParser with forwarding sets: each request carries the lines a provider may receive.

The send stage forwards ``request.forwarded`` as it is for a provider with the default policy, so
it must be exactly ``encode_forwarded(request.headers, skip, prefixes)`` on both twins, for every
request vector and for heads that repeat a name or name fields in Connection (which the compiled
twin takes from the dict); the client's credentials and the hop-by-hop fields never appear in it;
and the parser refuses what it refused without the sets.
"""

import random

import pytest

from alloy import errors
from alloy.headers import FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES
from test_request_parser import ALL_PARSE, fields
from vectors import REQUEST_REJECTS

SDK_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\nAccept: application/json\r\nContent-Type: application/json\r\n"
    b"User-Agent: OpenAI/Python 1.57.0\r\nX-Stainless-Lang: python\r\nX-Stainless-Retry-Count: 0\r\n"
    b"Authorization: Bearer sk-secret-1\r\nx-api-key: sk-secret-2\r\nOpenAI-Organization: org-x\r\n"
    b"anthropic-beta: b1\r\nX-Goog-User-Project: p\r\nTE: trailers\r\nExpect: 100-continue\r\n"
    b"X-Request-ID: r-1\r\nContent-Length: 2\r\n\r\n{}"
)


def parse(core, wire, skip=FORWARD_SKIP, prefixes=PROVIDER_SCOPED_PREFIXES):
    requests = core.RequestParser(65536, 1 << 20, skip, prefixes).feed(wire)
    assert requests, wire
    return requests


def test_the_sdk_head_forwards_its_own_fields_only(core):
    (request,) = parse(core, SDK_HEAD)
    assert request.forwarded_skip is FORWARD_SKIP
    assert request.forwarded == (  # not accept-encoding: upstream answers are asked uncompressed
        b"accept: application/json\r\ncontent-type: application/json\r\n"
        b"user-agent: OpenAI/Python 1.57.0\r\nx-stainless-lang: python\r\nx-stainless-retry-count: 0\r\n"
    )
    for secret in (b"sk-secret-1", b"sk-secret-2", b"org-x", b"b1", b"trailers", b"r-1", b"127.0.0.1"):
        assert secret not in request.forwarded


def test_without_sets_there_is_no_block(core):
    (request,) = core.RequestParser().feed(SDK_HEAD)
    assert request.forwarded is None and request.forwarded_skip is None


def test_the_sets_are_checked(core):
    with pytest.raises(TypeError):
        core.RequestParser(65536, 1 << 20, {b"authorization"}, ())
    with pytest.raises(TypeError):
        core.RequestParser(65536, 1 << 20, FORWARD_SKIP, [b"x-goog-"])


@pytest.mark.parametrize("wire,expected", ALL_PARSE)
def test_every_vector_forwards_what_encode_forwarded_would(core, wire, expected):
    plain = core.RequestParser().feed(wire)
    blocked = parse(core, wire)
    assert [fields(r) for r in blocked] == [fields(r) for r in plain]
    for request in blocked:
        assert request.forwarded == core.encode_forwarded(request.headers, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES)


@pytest.mark.parametrize(
    "extra",
    [
        b"X-A: 1\r\nx-a: 2\r\n",  # a repeated name: joined in the dict, forwarded once
        b"Connection: keep-alive, X-Drop\r\nX-Drop: gone\r\nX-Keep: kept\r\n",  # Connection-named
        b"Connection: close\r\n",
        b"X-Drop: gone\r\nConnection: X-Drop\r\n",  # named after the field was read
        b"",
    ],
)
def test_repeated_and_connection_named_fields(core, extra):
    wire = b"POST /v1/x HTTP/1.1\r\nHost: h\r\nX-Keep: k\r\n" + extra + b"Content-Length: 0\r\n\r\n"
    (request,) = parse(core, wire)
    assert request.forwarded == core.encode_forwarded(request.headers, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES)
    assert b"x-drop" not in request.forwarded


def test_random_heads_on_one_keep_alive_parser(core):
    rng = random.Random(5)
    names = [b"X-A", b"x-b", b"Accept", b"Authorization", b"anthropic-version", b"X-Goog-Z", b"TE", b"Upgrade",
             b"OpenAI-Project", b"x-api-key", b"Keep-Alive", b"X-Named"]  # fmt: skip
    parser = core.RequestParser(65536, 1 << 20, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES)
    for index in range(300):
        lines = [b"Host: h"]
        for _ in range(rng.randrange(0, 12)):
            lines.append(rng.choice(names) + b":" + b" " * rng.randrange(3) + b"v%d" % rng.randrange(99))
        if rng.random() < 0.2:
            lines.append(b"Connection: keep-alive, x-named")
        wire = b"GET /v1/models/%d HTTP/1.1\r\n" % index + b"\r\n".join(lines) + b"\r\n\r\n"
        (request,) = parser.feed(wire)
        assert request.forwarded == core.encode_forwarded(request.headers, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES)


@pytest.mark.parametrize("wire", [case[1] for case in REQUEST_REJECTS])
def test_what_is_refused_without_sets_is_refused_with_them(core, wire):
    def outcome(parser):
        try:
            return ("ok", [fields(r) for r in parser.feed(wire)], type(parser.error))
        except errors.AlloyError as error:
            return ("refused", type(error))

    assert outcome(core.RequestParser(65536, 1 << 20, FORWARD_SKIP, PROVIDER_SCOPED_PREFIXES)) == outcome(
        core.RequestParser(65536, 1 << 20)
    )
