"""Test vectors: wire bytes beside what they mean, used in both directions.

The ``*_ROUND_TRIP`` tables are canonical: each wire is exactly what Alloy's framing functions
write for the values beside it, so the parser tests read wire -> values and the framing tests
write values -> wire from the same rows (h11's ``SIMPLE_CASES`` in ``tests/test_io.py``).
The ``*_PARSE`` tables hold inputs a peer may send but Alloy never writes (mixed case, chunked
requests, whitespace, duplicates): parse direction only.
"""

from alloy import errors

# --- requests: values <-> wire --------------------------------------------------------------
# (method, target, forwarded header list, body) <-> wire.
# frame_request adds content-length (omitted for a bodiless GET/HEAD); the parsed headers are the
# forwarded ones plus that content-length.
REQUEST_ROUND_TRIP = [
    (
        (b"GET", b"/v1/models", [(b"host", b"api.example")], b""),
        b"GET /v1/models HTTP/1.1\r\nhost: api.example\r\n\r\n",
    ),
    (
        (b"HEAD", b"/health", [(b"host", b"gw")], b""),
        b"HEAD /health HTTP/1.1\r\nhost: gw\r\n\r\n",
    ),
    (
        (
            b"POST",
            b"/v1/chat/completions",
            [(b"host", b"api.openai.com"), (b"content-type", b"application/json")],
            b'{"model":"gpt-4o","messages":[]}',
        ),
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\n"
        b"content-type: application/json\r\ncontent-length: 32\r\n\r\n"
        b'{"model":"gpt-4o","messages":[]}',
    ),
    (
        (b"POST", b"/v1/embeddings?api-version=2024-02-01", [(b"host", b"h")], b""),
        b"POST /v1/embeddings?api-version=2024-02-01 HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n",
    ),
    (
        (b"DELETE", b"/v1/files/file-abc", [(b"host", b"h"), (b"x-request-id", b"r-1")], b""),
        b"DELETE /v1/files/file-abc HTTP/1.1\r\nhost: h\r\nx-request-id: r-1\r\ncontent-length: 0\r\n\r\n",
    ),
    (
        (b"GET", b"/search", [(b"host", b"h")], b"q"),
        b"GET /search HTTP/1.1\r\nhost: h\r\ncontent-length: 1\r\n\r\nq",
    ),
    (
        (b"PUT", b"/x", [(b"host", b"h"), (b"accept", b"*/*")], b"\x00\r\n\r\nbinary\xff"),
        b"PUT /x HTTP/1.1\r\nhost: h\r\naccept: */*\r\ncontent-length: 12\r\n\r\n\x00\r\n\r\nbinary\xff",
    ),
]


def expected_request(method, target, header_list, body, version=11, keep_alive=True):
    """The Request fields a REQUEST_ROUND_TRIP row parses to."""
    headers = dict(header_list)
    if body or method not in (b"GET", b"HEAD"):
        headers[b"content-length"] = str(len(body)).encode()
    return {
        "method": method,
        "target": target,
        "version": version,
        "headers": headers,
        "body": body,
        "keep_alive": keep_alive,
    }


# --- requests: wire -> values (inputs Alloy never writes) ------------------------------------
def _req(method, target, headers, body=b"", version=11, keep_alive=True):
    return {
        "method": method,
        "target": target,
        "version": version,
        "headers": headers,
        "body": body,
        "keep_alive": keep_alive,
    }


REQUEST_PARSE = [
    # names are lower-cased, values keep their case
    (
        b"GET / HTTP/1.1\r\nHost: Example.COM\r\nX-Trace-ID: AbC\r\n\r\n",
        _req(b"GET", b"/", {b"host": b"Example.COM", b"x-trace-id": b"AbC"}),
    ),
    # optional whitespace around values is removed, inner whitespace kept
    (
        b"GET / HTTP/1.1\r\nHost:h\r\nX-A:   a  b \t \r\nX-B:\tv\t\r\nX-Empty:\r\nX-Sp:   \r\n\r\n",
        _req(
            b"GET",
            b"/",
            {b"host": b"h", b"x-a": b"a  b", b"x-b": b"v", b"x-empty": b"", b"x-sp": b""},
        ),
    ),
    # a repeated field is joined with ", " in the order received (RFC 9110 section 5.3)
    (
        b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nX-Other: o\r\naccept: b\r\nACCEPT: c\r\n\r\n",
        _req(b"GET", b"/", {b"host": b"h", b"accept": b"a, b, c", b"x-other": b"o"}),
    ),
    # Content-Length body, header case insensitive
    (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nCONTENT-LENGTH: 5\r\n\r\nhello",
        _req(b"POST", b"/v1/chat/completions", {b"host": b"h", b"content-length": b"5"}, b"hello"),
    ),
    # leading zeros are still 1*DIGIT (RFC 9110 section 8.6)
    (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n\r\nabc",
        _req(b"POST", b"/", {b"host": b"h", b"content-length": b"003"}, b"abc"),
    ),
    # POST without Content-Length or Transfer-Encoding has no body (RFC 9112 section 6.3 rule 7)
    (
        b"POST /v1/x HTTP/1.1\r\nHost: h\r\n\r\n",
        _req(b"POST", b"/v1/x", {b"host": b"h"}),
    ),
    # chunked body, several chunks, hex sizes in both cases
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1\r\n \r\na\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n",
        _req(
            b"POST",
            b"/c",
            {b"host": b"h", b"transfer-encoding": b"chunked"},
            b"hello 0123456789abcdefghijk",
        ),
    ),
    # chunk extensions are ignored (RFC 9112 section 7.1.1)
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\n2;a;b=c\r\nde\r\n0;last\r\n\r\n",
        _req(b"POST", b"/c", {b"host": b"h", b"transfer-encoding": b"chunked"}, b"abcde"),
    ),
    # a chunk extension's BWS, quoted-string values with quoted-pairs (RFC 9112 section 7.1.1)
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3 ; a = "x \\" ;y"\t;b\r\nabc\r\n0;n="\xe9"\r\n\r\n',
        _req(b"POST", b"/c", {b"host": b"h", b"transfer-encoding": b"chunked"}, b"abc"),
    ),
    # empty list elements in Transfer-Encoding are ignored (RFC 9110 section 5.6.1.2)
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked,\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        _req(b"POST", b"/c", {b"host": b"h", b"transfer-encoding": b", chunked,"}, b"ab"),
    ),
    # trailer fields after the last chunk are consumed (RFC 9112 section 7.1.2)
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nwiki\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        _req(b"POST", b"/c", {b"host": b"h", b"transfer-encoding": b"chunked"}, b"wiki"),
    ),
    # chunked with only the last chunk: empty body
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        _req(b"POST", b"/c", {b"host": b"h", b"transfer-encoding": b"chunked"}),
    ),
    # chunk data may contain CRLF
    (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n\r\n\r\n\r\n0\r\n\r\n",
        _req(b"POST", b"/c", {b"host": b"h", b"transfer-encoding": b"chunked"}, b"\r\n\r\n"),
    ),
    # HTTP/1.0: no Host needed, closes by default
    (
        b"GET /v1/models HTTP/1.0\r\n\r\n",
        _req(b"GET", b"/v1/models", {}, version=10, keep_alive=False),
    ),
    (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        _req(b"GET", b"/", {b"connection": b"keep-alive"}, version=10, keep_alive=True),
    ),
    (
        b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
        _req(b"POST", b"/", {b"content-length": b"2"}, b"hi", version=10, keep_alive=False),
    ),
    # HTTP/1.1: keep-alive unless "close" is among the Connection options (RFC 9112 section 9.3)
    (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        _req(b"GET", b"/", {b"host": b"h", b"connection": b"close"}, keep_alive=False),
    ),
    (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        _req(b"GET", b"/", {b"host": b"h", b"connection": b"keep-alive"}),
    ),
    # other methods and target forms, as sent
    (
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        _req(b"OPTIONS", b"*", {b"host": b"h"}),
    ),
    (
        b"GET http://h/v1/models?a=1&b=%20 HTTP/1.1\r\nHost: h\r\n\r\n",
        _req(b"GET", b"http://h/v1/models?a=1&b=%20", {b"host": b"h"}),
    ),
    (
        b"PATCH /a/b;c=d?e/f?g HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        _req(b"PATCH", b"/a/b;c=d?e/f?g", {b"host": b"h", b"content-length": b"0"}),
    ),
    # values may carry obs-text and HTAB inside (RFC 9110 section 5.5)
    (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\tau lait\r\n\r\n",
        _req(b"GET", b"/", {b"host": b"h", b"x-name": b"caf\xc3\xa9\tau lait"}),
    ),
]


# --- requests refused (RFC 9112 smuggling defences and limits) --------------------------------
# (id, wire, exception class, status). Each wire is otherwise a complete, valid request.
REQUEST_REJECTS = [
    # RFC 9112 section 3.2: a Host that is not host[:port] (RFC 3986) is a 400.
    ("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", errors.ProtocolError, 400),
    ("host-with-slash", b"GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", errors.ProtocolError, 400),
    ("host-with-userinfo", b"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", errors.ProtocolError, 400),
    # ... and more than one Host is a 400 whatever the version (HTTP/1.0 needs none).
    ("two-hosts-http10", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", errors.ProtocolError, 400),
    # RFC 9112 section 3: a request line that does not end within the head's limit is a 414.
    ("target-too-long", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", errors.URITooLong, 414),
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
        b"0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "differing-duplicate-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        errors.ProtocolError,
        400,
    ),
    (
        "differing-cl-list",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd",
        errors.ProtocolError,
        400,
    ),
    (
        "negative-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "plus-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
        errors.ProtocolError,
        400,
    ),
    (
        "hex-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc",
        errors.ProtocolError,
        400,
    ),
    (
        "empty-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "te-gzip",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        errors.UnsupportedTransferCoding,
        501,
    ),
    (
        "te-gzip-chunked",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        errors.UnsupportedTransferCoding,
        501,
    ),
    (
        "te-identity",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
        errors.UnsupportedTransferCoding,
        501,
    ),
    (
        "te-chunked-then-gzip",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        b"0\r\n\r\n",
        errors.UnsupportedTransferCoding,
        501,
    ),
    (
        "chunk-size-not-hex",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-size-empty",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-size-negative",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (  # both twins count a chunk in a signed 64-bit integer
        "chunk-size-over-63-bits",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (  # a chunk announced beyond the body limit is refused at its size line, as a Content-Length is
        "chunk-announced-over-the-limit",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nab\r\n0\r\n\r\n",
        errors.BodyTooLarge,
        413,
    ),
    (
        "chunk-size-0x",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-size-leading-space",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-data-longer-than-size",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-data-without-crlf",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-data-bare-lf",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "chunk-size-line-bare-lf",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", errors.ProtocolError, 400),
    ("ctl-01-in-value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", errors.ProtocolError, 400),
    ("ctl-1f-in-value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x1fb\r\n\r\n", errors.ProtocolError, 400),
    ("del-in-value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", errors.ProtocolError, 400),
    ("vt-in-value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x0bb\r\n\r\n", errors.ProtocolError, 400),
    ("bare-cr-in-value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", errors.ProtocolError, 400),
    ("ctl-in-host", b"GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n", errors.ProtocolError, 400),
    (
        "obs-fold",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n b\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "obs-fold-tab",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n\tb\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    (
        "obs-fold-first-line",
        b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: h\n\n", errors.ProtocolError, 400),
    ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("bare-lf-header", b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", errors.ProtocolError, 400),
    ("bare-lf-end", b"GET / HTTP/1.1\r\nHost: h\r\n\n", errors.ProtocolError, 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", errors.ProtocolError, 400),
    ("tab-before-colon", b"GET / HTTP/1.1\r\nHost: h\r\nX\t: y\r\n\r\n", errors.ProtocolError, 400),
    (
        "space-before-colon-cl",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
        errors.ProtocolError,
        400,
    ),
    ("no-colon", b"GET / HTTP/1.1\r\nHost: h\r\nX-No-Colon\r\n\r\n", errors.ProtocolError, 400),
    ("empty-name", b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", errors.ProtocolError, 400),
    ("bad-name-char", b"GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n", errors.ProtocolError, 400),
    ("missing-host-11", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", errors.ProtocolError, 400),
    ("duplicate-host-11", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", errors.ProtocolError, 400),
    ("differing-host-11", b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", errors.ProtocolError, 400),
    ("http-2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", errors.UnsupportedVersion, 505),
    ("http-1.2", b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", errors.UnsupportedVersion, 505),
    ("http-0.9", b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", errors.UnsupportedVersion, 505),
    ("http-3.0", b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", errors.UnsupportedVersion, 505),
    ("lowercase-http", b"GET / http/1.1\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("no-version", b"GET /\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("junk-version", b"GET / HTTP/x.y\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("empty-request-line", b"\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("bad-method-char", b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("nul-in-target", b"GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    # a fragment is never sent (RFC 9110 section 7.1): a target holding one is not a request target
    ("fragment-in-target", b"GET /v1/models#top HTTP/1.1\r\nHost: h\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-size-trailing-space", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2 \r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-nul", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2;a=\x00\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-no-name", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2;\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-no-semicolon", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2 a\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-empty-value", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2;a=\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-unterminated-quote", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2;a=\"b\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-control-in-quote", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2;a=\"\x01\"\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    ("chunk-ext-del", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" b"2;a\x7f\r\nab\r\n0\r\n\r\n", errors.ProtocolError, 400),
    (
        "tls-client-hello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
        errors.ProtocolError,
        400,
    ),
]


# --- responses: values <-> wire ----------------------------------------------------------------
# (status, header list, body, close) <-> frame_response(status, encode_headers(list), body, close).
RESPONSE_ROUND_TRIP = [
    (
        (200, [(b"content-type", b"application/json")], b'{"ok":true}', False),
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
        b'{"ok":true}',
    ),
    (
        (404, [], b"", False),
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    ),
    (
        (429, [(b"retry-after", b"1"), (b"x-a", b"1"), (b"x-a", b"2")], b"slow down", True),
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\nx-a: 1\r\nx-a: 2\r\n"
        b"content-length: 9\r\nconnection: close\r\n\r\nslow down",
    ),
    (
        (502, [(b"content-type", b"application/json")], b"{}", True),
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\n{}",
    ),
    # unknown code: empty reason phrase (RFC 9112 section 4)
    (
        (299, [], b"x", False),
        b"HTTP/1.1 299 \r\ncontent-length: 1\r\n\r\nx",
    ),
]

# (status, header list, chunks, close) <-> frame_stream_head + frame_chunk(c)... + LAST_CHUNK.
STREAM_ROUND_TRIP = [
    (
        (200, [(b"content-type", b"text/event-stream")], [b"data: 1\n\n", b"data: [DONE]\n\n"], False),
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        b"9\r\ndata: 1\n\n\r\n" b"e\r\ndata: [DONE]\n\n\r\n" b"0\r\n\r\n",
    ),
    (
        (200, [], [b"x"], True),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        b"1\r\nx\r\n0\r\n\r\n",
    ),
    (
        (503, [(b"x-reason", b"busy")], [], False),
        b"HTTP/1.1 503 Service Unavailable\r\nx-reason: busy\r\ntransfer-encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
    ),
]


# --- responses: wire -> values -------------------------------------------------------------------
def _resp(status, headers, body, *, version=11, reason=b"OK", keep_alive=True, content_length=-1,
          chunked=False):
    # ``reason`` documents the wire only: the parser does not keep the reason phrase (Alloy writes
    # its own status line, RFC 9112 section 4 lets a client ignore the phrase).
    return {
        "status": status,
        "version": version,
        "headers": headers,
        "body": body,
        "keep_alive": keep_alive,
        "content_length": content_length,
        "chunked": chunked,
    }


# (wire, head_request, expected, complete_without_eof)
RESPONSE_PARSE = [
    (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        False,
        _resp(200, [(b"content-type", b"application/json"), (b"content-length", b"2")], b"{}",
              content_length=2),
        True,
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        False,
        _resp(200, [(b"transfer-encoding", b"chunked"), (b"x-a", b"1"), (b"x-a", b"2")],
              b"hello world", chunked=True),
        True,
    ),
    # close-delimited: no framing header, body ends when the upstream closes
    (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        False,
        _resp(200, [(b"content-type", b"text/plain")], b"until the end", keep_alive=False),
        False,
    ),
    # HTTP/1.0: not reusable unless keep-alive is asked for
    (
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        False,
        _resp(200, [(b"content-length", b"3")], b"abc", version=10, keep_alive=False,
              content_length=3),
        True,
    ),
    (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
        False,
        _resp(200, [(b"connection", b"keep-alive"), (b"content-length", b"3")], b"abc",
              version=10, keep_alive=True, content_length=3),
        True,
    ),
    (
        b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 4\r\n\r\noops",
        False,
        _resp(500, [(b"connection", b"close"), (b"content-length", b"4")], b"oops",
              reason=b"Internal Server Error", keep_alive=False, content_length=4),
        True,
    ),
    # interim 1xx responses are skipped
    (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz",
        False,
        _resp(201, [(b"content-length", b"1")], b"z", reason=b"Created", content_length=1),
        True,
    ),
    # 204 and 304 never have a body, whatever the headers say (RFC 9112 section 6.3 rule 1)
    (
        b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
        False,
        _resp(204, [(b"x-a", b"b")], b"", reason=b"No Content", content_length=-1),
        True,
    ),
    (
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
        False,
        _resp(304, [(b"etag", b'"x"')], b"", reason=b"Not Modified"),
        True,
    ),
    # reason phrase may be empty
    (
        b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
        False,
        _resp(200, [(b"content-length", b"0")], b"", reason=b"", content_length=0),
        True,
    ),
    (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\nContent-Length: 0\r\n\r\n",
        False,
        _resp(429, [(b"retry-after", b"7"), (b"content-length", b"0")], b"",
              reason=b"Too Many Requests", content_length=0),
        True,
    ),
]
# Fields whose value the tests do not pin for bodiless responses (204/304/HEAD): Alloy may report
# the declared length or -1 there, the contract only says that no body follows.
BODYLESS_UNPINNED = ("content_length",)


# --- Server-Sent Events: stream -> events --------------------------------------------------------
SSE_CASES = [
    (b"data: hello\n\n", [(None, b"hello")]),
    (b"data: hello\r\n\r\n", [(None, b"hello")]),
    (b"data: hello\r\r", [(None, b"hello")]),
    (b"data:no-space\n\n", [(None, b"no-space")]),
    (b"data:  two spaces\n\n", [(None, b" two spaces")]),
    (b"data: a\ndata: b\ndata:\ndata: c\n\n", [(None, b"a\nb\n\nc")]),
    (b"data: a\r\ndata: b\r\n\r\n", [(None, b"a\nb")]),
    (b"data: a\rdata: b\r\r", [(None, b"a\nb")]),
    # mixed line endings within one stream
    (b"data: a\r\ndata: b\ndata: c\r\r\ndata: d\n\r", [(None, b"a\nb\nc"), (None, b"d")]),
    (b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
     [(b"message_start", b'{"type":"message_start"}')]),
    (b"data: x\nevent: late\n\n", [(b"late", b"x")]),
    (b"event:ping\ndata: p\n\n", [(b"ping", b"p")]),
    # the event name does not carry over to the next event
    (b"event: a\ndata: 1\n\ndata: 2\n\n", [(b"a", b"1"), (None, b"2")]),
    # comments and events without data are dropped
    (b": ping\n\n", []),
    (b":\n\n", []),
    (b": keep-alive\n\ndata: after\n\n", [(None, b"after")]),
    (b": c1\ndata: x\n: c2\n\n", [(None, b"x")]),
    (b"event: lonely\n\n", []),
    (b"id: 7\nretry: 100\n\n", []),
    # other fields are ignored
    (b"id: 7\ndata: x\nretry: 100\nfoo: bar\n\n", [(None, b"x")]),
    # a data field with an empty value is still a data field
    (b"data:\n\n", [(None, b"")]),
    (b"data\n\n", [(None, b"")]),
    # colons after the first belong to the value
    (b"data: {\"a\":\"b:c\"}\n\n", [(None, b'{"a":"b:c"}')]),
    # several blank lines between events change nothing
    (b"\n\n\ndata: 1\n\n\n\ndata: 2\n\n", [(None, b"1"), (None, b"2")]),
    # OpenAI's stream shape
    (
        b'data: {"id":"c","choices":[{"delta":{"content":"Hi"}}]}\n\n'
        b'data: {"id":"c","choices":[{"delta":{}}]}\n\n'
        b"data: [DONE]\n\n",
        [
            (None, b'{"id":"c","choices":[{"delta":{"content":"Hi"}}]}'),
            (None, b'{"id":"c","choices":[{"delta":{}}]}'),
            (None, b"[DONE]"),
        ],
    ),
    # Anthropic's stream shape
    (
        b"event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
        b"event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
        b"event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
        [
            (b"message_start", b'{"type":"message_start"}'),
            (b"ping", b'{"type": "ping"}'),
            (b"message_stop", b'{"type":"message_stop"}'),
        ],
    ),
    # UTF-8 passes through untouched
    ("data: h\u00e9llo \u2603\n\n".encode(), [(None, "h\u00e9llo \u2603".encode())]),
]

# (stream without a final blank line, events from feed + flush)
SSE_FLUSH_CASES = [
    (b"data: last", [(None, b"last")]),
    (b"data: last\n", [(None, b"last")]),
    (b"data: last\r\n", [(None, b"last")]),
    (b"data: one\n\ndata: two", [(None, b"one"), (None, b"two")]),
    (b"event: e\ndata: a\ndata: b", [(b"e", b"a\nb")]),
    (b": only a comment", []),
    (b"event: no-data", []),
    (b"", []),
]
