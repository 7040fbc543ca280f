"""Differential test of RequestParser against h11 (server role) on hypothesis-generated requests.

Each core twin and h11 read the same bytes; they must agree on accept / reject / need-more-data,
and on an accepted request's method, target, version, headers, body and (HTTP/1.1) keep-alive.

Known differences, each asserted in its documented direction rather than hidden:

Alloy is stricter (Alloy MUST reject; h11 accepts) -- the RequestParser docstring's smuggling rules:
  * cl+te        Content-Length together with Transfer-Encoding (h11 lets chunked win).
  * obs-fold     a header line starting with SP/HTAB (h11 unfolds it).
  * bare-lf      an LF without CR ending a head line (h11 accepts LF line endings).
  * ctl-char     a control character (%x01-08, %x0E-1F, %x7F) in a header value (h11 only refuses
                 NUL and whitespace controls).
  * version      an HTTP version other than 1.0 / 1.1 (h11 takes any DIGIT.DIGIT); Alloy says 505.
  * host-value   a Host that is not host[:port] (RFC 9112 3.2 asks for a 400; h11 takes any value).
  * target-form  a request target in none of the forms of RFC 9112 section 3.2 a gateway serves
                 (origin-form "/...", absolute-form "scheme://...", "*" for OPTIONS): h11 takes
                 any target; Alloy says 400.
Not specified by Alloy's contract, so either outcome is accepted (never generated on purpose; only
reachable through the random mutations):
  * te-http10    Transfer-Encoding in an HTTP/1.0 request (h11 decodes it; RFC 9112 section 6.1
                 calls the framing faulty).
  * dup-host-10  a repeated Host in HTTP/1.0 (h11 refuses any repeated Host; Alloy's rule is
                 for HTTP/1.1).
  * chunk-line   a chunk-size line with whitespace or an extension outside the RFC grammar (h11
                 takes ``;.*`` and trailing whitespace).
  * trailer      anything in the trailer section (Alloy consumes trailers, validation unspecified).
  * cl-list      a comma inside Content-Length (h11 accepts "5, 5" and dedups), or repeated
                 Content-Length lines spelling one value two ways ("0", "00").
  * leading-crlf empty lines before the request line (RFC 9112 section 2.2: a server SHOULD ignore
                 at least one; h11 refuses them).
Not compared:
  * keep-alive of HTTP/1.0 requests: h11 never keeps an HTTP/1.0 connection alive, Alloy honours
    ``Connection: keep-alive`` (RFC 9112 section 9.3).
  * the values of Content-Length / Transfer-Encoding headers: h11 normalises them (dedup,
    lower-case), Alloy reports them as sent (joined).
  * when h11 refuses a head early (first byte below %x21, before the blank line), Alloy may still be
    waiting for the rest of the line.
"""

import re

import h11
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from alloy import errors

# No "explain" phase: it traces every line of h11 on a failing example and runs for many minutes.
SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    derandomize=True,  # CI runs the same examples every time
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)

# "known difference" names: Alloy must reject / either outcome accepted
STRICTER = {"cl+te", "obs-fold", "bare-lf", "ctl-char", "version", "host-value", "target-form"}
EITHER = {"te-http10", "dup-host-10", "chunk-line", "trailer", "cl-list", "leading-crlf"}

# --- generation --------------------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/?"
VCHAR_OBS = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))

tokens = st.text(TCHAR, min_size=1, max_size=10)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]) | tokens
targets = (
    st.text(PATH_CHARS, max_size=30).map(lambda s: "/" + s)
    | st.just("*")
    | st.text(PATH_CHARS, max_size=20).map(lambda s: "http://api.example/" + s)
)
header_names = (
    st.sampled_from(
        ["Accept", "User-Agent", "Authorization", "Content-Type", "X-Api-Key", "Cookie",
         "OpenAI-Organization", "x-stainless-lang", "Expect", "Upgrade"]
    )
    | tokens
).filter(lambda n: n.lower() not in ("host", "content-length", "transfer-encoding", "connection"))
value_words = st.binary(min_size=1, max_size=8).map(
    lambda b: bytes(VCHAR_OBS[x % len(VCHAR_OBS)] for x in b)
)
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t "])


@st.composite
def header_values(draw):
    inner = b""
    for i, word in enumerate(draw(st.lists(value_words, max_size=3))):
        if i:
            inner += draw(st.sampled_from([b" ", b"\t", b"  "]))
        inner += word
    return draw(ows) + inner + draw(ows)


def chunk_ext(draw):
    n = draw(st.integers(0, 2))
    out = b""
    for _ in range(n):
        out += b";" + draw(tokens).encode()
        if draw(st.booleans()):
            out += b"=" + draw(
                tokens.map(str.encode) | st.text(TCHAR + " ", max_size=6).map(lambda s: b'"' + s.encode() + b'"')
            )
    return out


ANOMALIES = ["cl+te", "missing-host", "dup-host", "obs-fold", "bare-lf", "ctl-char", "version"]


@st.composite
def requests(draw, anomalies=True, keep_alive=False):
    """(wire bytes, set of anomalies put in on purpose)."""
    anomaly = None
    if anomalies and draw(st.integers(0, 4)) == 0:
        anomaly = draw(st.sampled_from(ANOMALIES))
    version = b"1.1" if keep_alive else draw(st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0"]))
    if anomaly == "version":
        version = draw(st.sampled_from([b"0.9", b"1.2", b"2.0", b"3.0", b"1.9"]))
    method = draw(methods).encode()
    target = draw(targets).encode()
    if target == b"*":
        method = b"OPTIONS"  # the asterisk-form is OPTIONS' alone (RFC 9112 section 3.2.4)

    lines = [(draw(header_names).encode(), draw(header_values())) for _ in range(draw(st.integers(0, 5)))]
    hosts = 1 if version == b"1.1" or draw(st.booleans()) else 0
    if anomaly == "missing-host":
        hosts = 0
    if anomaly == "dup-host" and version == b"1.1":
        hosts = 2
    for _ in range(hosts):
        lines.insert(draw(st.integers(0, len(lines))), (draw(st.sampled_from([b"Host", b"host", b"HOST"])),
                                                         draw(st.sampled_from([b"api.example", b"h:8080", b"[::1]"]))))
    if keep_alive:
        connection = draw(st.sampled_from([None, b"keep-alive"]))
    else:
        connection = draw(st.sampled_from([None, None, b"close", b"keep-alive", b"Close", b"upgrade",
                                           b"keep-alive, close"]))
    if connection is not None:
        lines.insert(draw(st.integers(0, len(lines))), (b"Connection", connection))

    body = draw(st.binary(max_size=40) | st.sampled_from([b"", b"\r\n", b"0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"]))
    framing = draw(st.sampled_from(["none", "cl", "cl", "chunked", "chunked"]))
    if version != b"1.1" and framing == "chunked":
        framing = "cl"  # Transfer-Encoding in HTTP/1.0 is not specified by Alloy (te-http10)
    if anomaly == "cl+te":
        framing = "chunked"
    if framing == "none":
        body = b""
    payload = b""
    if framing == "cl" or anomaly == "cl+te":
        length = str(len(body)).encode()
        if draw(st.integers(0, 5)) == 0:
            length = b"0" * draw(st.integers(1, 3)) + length
        count = draw(st.sampled_from([1, 1, 1, 2])) if anomaly != "cl+te" else 1
        for _ in range(count):
            lines.insert(draw(st.integers(0, len(lines))), (draw(st.sampled_from([b"Content-Length", b"content-length"])), length))
    if framing == "cl":
        payload = body
    if framing == "chunked":
        lines.insert(draw(st.integers(0, len(lines))), (draw(st.sampled_from([b"Transfer-Encoding", b"transfer-encoding"])), b"chunked"))
        rest = body
        while rest:
            n = draw(st.integers(1, len(rest)))
            size = b"%x" % n
            if draw(st.booleans()):
                size = size.upper()
            if draw(st.integers(0, 5)) == 0:
                size = b"0" + size
            payload += size + chunk_ext(draw) + b"\r\n" + rest[:n] + b"\r\n"
            rest = rest[n:]
        payload += b"0" + chunk_ext(draw) + b"\r\n"
        for _ in range(draw(st.integers(0, 2))):
            payload += draw(header_names).encode() + b": " + draw(value_words) + b"\r\n"
        payload += b"\r\n"

    if anomaly == "obs-fold":
        i = draw(st.integers(0, len(lines)))
        lines.insert(i, (b"X-Folded", b"first\r\n" + draw(st.sampled_from([b" ", b"\t"])) + b"second"))
    if anomaly == "ctl-char":
        ctl = draw(st.sampled_from([bytes([c]) for c in list(range(1, 9)) + list(range(0x0E, 0x20)) + [0x7F]]))
        lines.insert(draw(st.integers(0, len(lines))), (b"X-Ctl", b"a" + ctl + b"b"))
    head_lines = [method + b" " + target + b" HTTP/" + version] + [n + b":" + v for n, v in lines]
    eols = [b"\r\n"] * (len(head_lines) + 1)
    if anomaly == "bare-lf":
        eols[draw(st.integers(0, len(eols) - 1))] = b"\n"
    wire = b"".join(line + eol for line, eol in zip(head_lines, eols)) + eols[-1] + payload
    return wire, {anomaly} - {None}


# --- running h11 and Alloy ------------------------------------------------------------------


class Outcome:
    def __init__(self, kind, request=None, body=b"", consumed=None, keep_alive=None, early=False):
        self.kind = kind  # "accept" | "reject" | "incomplete"
        self.request = request
        self.body = body
        self.consumed = consumed
        self.keep_alive = keep_alive
        self.early = early

    def __repr__(self):
        return f"Outcome({self.kind}, {self.request!r}, body={self.body!r})"


def h11_read(data):
    """The first request h11's server reads from ``data``."""
    if not data:
        return Outcome("incomplete")  # h11 takes receive_data(b"") as the peer closing
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request, body = None, b""
    try:
        for _ in range(len(data) + 16):  # h11 yields at most one event per byte, plus a few
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return Outcome("incomplete")
            if event is h11.PAUSED:
                # CONNECT / Upgrade: h11 stops reading after the head and would repeat PAUSED forever.
                if request is None:
                    return Outcome("incomplete")
                consumed = len(data) - len(conn.trailing_data[0])
                return Outcome("accept", request, body, consumed, h11._connection._keep_alive(request))
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                consumed = len(data) - len(conn.trailing_data[0])
                # h11's own keep-alive rule for the request (its connection state cannot say: an
                # Upgrade header parks the client in MIGHT_SWITCH_PROTOCOL instead of MUST_CLOSE).
                return Outcome("accept", request, body, consumed, h11._connection._keep_alive(request))
        raise AssertionError(f"h11 repeats {event!r} on {data!r}")
    except h11.RemoteProtocolError:
        return Outcome("reject", early=re.search(rb"\n\r?\n", data) is None)


def alloy_read(core, data):
    try:
        requests = core.RequestParser().feed(data)
    except errors.ProtocolError:
        return Outcome("reject")
    if not requests:
        return Outcome("incomplete")
    return Outcome("accept", requests[0], requests[0].body)


def h11_view(outcome):
    """The h11 request as Alloy reports one (framing headers compared apart)."""
    event = outcome.request
    headers = {}
    for name, value in event.headers:
        name, value = bytes(name), bytes(value)
        headers[name] = headers[name] + b", " + value if name in headers else value
    framing = {k: headers.pop(k) for k in (b"content-length", b"transfer-encoding") if k in headers}
    return {
        "method": bytes(event.method),
        "target": bytes(event.target),
        "version": {b"1.0": 10, b"1.1": 11}.get(bytes(event.http_version)),
        "headers": headers,
        "framing": set(framing),
        "body": outcome.body,
    }


def alloy_view(request):
    headers = dict(request.headers)
    framing = {k for k in (b"content-length", b"transfer-encoding") if headers.pop(k, None) is not None}
    return {
        "method": request.method,
        "target": request.target,
        "version": request.version,
        "headers": headers,
        "framing": framing,
        "body": request.body,
    }


def assert_same_request(alloy, h11_outcome):
    assert alloy_view(alloy.request) == h11_view(h11_outcome)
    if h11_outcome.request.http_version == b"1.1":
        assert alloy.request.keep_alive is h11_outcome.keep_alive


# --- classifying the known differences -------------------------------------------------------

CHUNK_LINE_STRICT = re.compile(
    rb"[0-9A-Fa-f]+(?:;[-!#$%&'*+.^_`|~0-9a-zA-Z]+(?:=(?:[-!#$%&'*+.^_`|~0-9a-zA-Z]+|\"[^\"\\\r\n]*\"))?)*\r\n"
)
H11_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(;.*)?[ \t]*\r\n")


def known_differences(data):
    """Names of the known differences present in the request at the start of ``data``."""
    found = set()
    if data[:1] in (b"\r", b"\n"):
        found.add("leading-crlf")
    end = re.search(rb"\n\r?\n", data)
    head = data[: end.end()] if end else data
    lines = re.split(rb"\r?\n", head)
    if re.search(rb"(?<!\r)\n", head):
        found.add("bare-lf")
    if any(line[:1] in (b" ", b"\t") for line in lines[1:] if line):
        found.add("obs-fold")
    if any(re.search(rb"[\x01-\x08\x0e-\x1f\x7f]", line) for line in lines[1:]):
        found.add("ctl-char")
    request_line = lines[0] if lines else b""
    parts = request_line.split(b" ")
    if len(parts) == 3 and parts[1] and not (
        parts[1][:1] == b"/" or re.match(rb"[A-Za-z][A-Za-z0-9+.-]*://", parts[1]) or (parts[1] == b"*" and parts[0] == b"OPTIONS")
    ):
        found.add("target-form")
    version = re.search(rb" HTTP/([0-9]\.[0-9])$", request_line)
    if version and version.group(1) not in (b"1.0", b"1.1"):
        found.add("version")
    names = [line.split(b":", 1)[0].lower() for line in lines[1:] if b":" in line]
    if b"content-length" in names and b"transfer-encoding" in names:
        found.add("cl+te")
    if b"transfer-encoding" in names and not (version and version.group(1) == b"1.1"):
        found.add("te-http10")
    if names.count(b"host") > 1 and not (version and version.group(1) == b"1.1"):
        found.add("dup-host-10")
    hosts = [line.split(b":", 1)[1].strip(b" \t") for line in lines[1:] if line.lower().startswith(b"host:")]
    if any(re.search(rb"[^0-9A-Za-z\-._~%!$&'()*+,;=:\[\]]", host) for host in hosts):
        found.add("host-value")  # RFC 9112 3.2: not host[:port]; h11 takes any field value
    if any(re.match(rb"content-length:[^\r\n]*,", line.lower()) for line in lines[1:]):
        found.add("cl-list")
    lengths = {line.split(b":", 1)[1].strip(b" \t") for line in lines[1:] if line.lower().startswith(b"content-length:")}
    if len(lengths) > 1:
        found.add("cl-list")  # "0" and "00": the same decimal value (RFC 9112 6.3), h11 compares text
    if b"transfer-encoding" in names and end:
        found |= _chunked_differences(data, end.end())
    return found


def _chunked_differences(data, pos):
    """Walk the chunked body the way h11 does; note lenient chunk lines and trailers."""
    found = set()
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return found
        line = data[pos : eol + 2]
        match = H11_CHUNK_LINE.fullmatch(line)
        if not match:
            return found
        if not CHUNK_LINE_STRICT.fullmatch(line):
            found.add("chunk-line")
        size = int(match.group(1), 16)
        pos = eol + 2
        if size == 0:
            if data[pos : pos + 2] != b"\r\n":
                found.add("trailer")
            return found
        pos += size + 2


def check_agreement(core, data):
    """Assert that Alloy and h11 agree on ``data`` up to the known differences."""
    h = h11_read(data)
    if h.kind == "accept":
        prefix = data[: h.consumed]
        known = known_differences(prefix)
        a = alloy_read(core, prefix)
        if known & STRICTER:
            assert a.kind == "reject", (prefix, known, a)
        elif a.kind == "accept":
            assert_same_request(a, h)
        else:
            assert a.kind == "reject", ("Alloy waits on a request h11 completed", prefix, a)
            assert known & EITHER, ("Alloy refused a request h11 accepted", prefix, h.request)
    elif h.kind == "reject":
        a = alloy_read(core, data)
        if a.kind == "accept":
            assert known_differences(data) & EITHER, ("Alloy accepted what h11 refused", data, a)
        elif a.kind == "incomplete":
            assert h.early or known_differences(data) & EITHER, ("Alloy waits on what h11 refused", data)
    else:
        a = alloy_read(core, data)
        assert a.kind != "accept", ("Alloy completed a request h11 still waits on", data, a)
    return h, a


# --- the tests ----------------------------------------------------------------------------------


@settings(max_examples=800, **SETTINGS)
@given(case=requests(), cuts=st.lists(st.integers(0, 4000), max_size=4))
def test_generated_requests_agree_with_h11(core, case, cuts):
    wire, anomalies = case
    h, a = check_agreement(core, wire)
    if anomalies & STRICTER:
        assert a.kind == "reject", (wire, anomalies)
    if anomalies & {"missing-host", "dup-host"} and wire.split(b"\r\n", 1)[0].endswith(b"HTTP/1.1"):
        assert a.kind == "reject" and h.kind == "reject", (wire, anomalies)
    if not anomalies:
        assert a.kind == "accept", (wire, a, h)
    # however the bytes are cut, the result is the one of a single feed
    parser = core.RequestParser()
    got = []
    try:
        pos = 0
        for cut in sorted(c % (len(wire) + 1) for c in cuts) + [len(wire)]:
            got.extend(parser.feed(wire[pos:cut]))
            pos = cut
    except errors.ProtocolError:
        assert a.kind == "reject"
    else:
        if a.kind == "accept":
            assert [alloy_view(r) for r in got[:1]] == [alloy_view(a.request)]
        else:
            assert got == [] and a.kind == "incomplete"


MUTATION_BYTES = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b"\x00", b"\x01", b"\x7f", b"\x80",
                  b"\xff", b"0", b"9", b"a", b"f", b"z", b";", b",", b"=", b'"', b"/", b"-"]
MUTATION_LINES = [b"Transfer-Encoding: chunked\r\n", b"Content-Length: 5\r\n", b"Content-Length: 0\r\n",
                  b"Host: other\r\n", b" folded\r\n", b"\tfolded\r\n", b"Connection: close\r\n",
                  b"Transfer-Encoding: gzip\r\n", b"\r\n", b"X: y\n"]


@st.composite
def mutated(draw):
    wire, _ = draw(requests(anomalies=False))
    data = bytearray(wire)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "line", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[pos:pos] = draw(st.sampled_from(MUTATION_BYTES) | st.binary(min_size=1, max_size=2))
        elif kind == "delete" and data:
            del data[min(pos, len(data) - 1)]
        elif kind == "replace" and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "duplicate":
            end = draw(st.integers(pos, min(len(data), pos + 30)))
            data[pos:pos] = data[pos:end]
        elif kind == "line":
            starts = [m.end() for m in re.finditer(rb"\r\n", bytes(data))]
            if starts:
                at = draw(st.sampled_from(starts))
                data[at:at] = draw(st.sampled_from(MUTATION_LINES))
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


# To explore beyond the fixed examples, set derandomize=False in SETTINGS and run with
# --hypothesis-seed=<n> (seeds 1-3, 11-16 and 21-26 agreed after the chunk-line fixes).
@settings(max_examples=800, **SETTINGS)
@given(data=mutated())
def test_mutated_requests_agree_with_h11(core, data):
    check_agreement(core, data)


def h11_read_all(data):
    """Every request h11 reads from ``data``, answering each so the next can be read."""
    if not data:
        return Outcome("incomplete")  # h11 takes receive_data(b"") as the peer closing
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out = []
    request, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED and conn.their_state is not h11.DONE:
            return out
        if event is h11.PAUSED:
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
            continue
        if isinstance(event, h11.Request):
            request, body = event, b""
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            out.append(Outcome("accept", request, body))


@settings(max_examples=400, **SETTINGS)
@given(
    batch=st.lists(requests(anomalies=False, keep_alive=True), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10000), max_size=6),
)
def test_pipelined_requests_agree_with_h11(core, batch, cuts):
    # h11 stops reading at an Upgrade request (it waits for the protocol switch): not comparable.
    assume(not any(b"\nupgrade:" in w.lower() for w, _ in batch[:-1]))
    wire = b"".join(w for w, _ in batch)
    expected = [h11_view(o) for o in h11_read_all(wire)]
    assert len(expected) == len(batch)
    parser = core.RequestParser()
    got, pos = [], 0
    for cut in sorted(c % (len(wire) + 1) for c in cuts) + [len(wire)]:
        got.extend(parser.feed(wire[pos:cut]))
        pos = cut
    assert [alloy_view(r) for r in got] == expected
    assert all(r.keep_alive for r in got)
    assert not parser.in_progress


# --- the table of known differences, checked against h11 itself ----------------------------------
# If h11 ever changes its mind on one of these, the comment at the top is out of date.

STRICTER_EXAMPLES = [
    ("cl+te", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
    ("bare-lf", b"GET / HTTP/1.1\nHost: h\n\n"),
    ("ctl-char", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n"),
    ("version", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
    ("target-form", b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("target-form", b"GET v1/models HTTP/1.1\r\nHost: h\r\n\r\n"),
]


@pytest.mark.parametrize("name,wire", STRICTER_EXAMPLES, ids=[n for n, _ in STRICTER_EXAMPLES])
def test_known_stricter_cases_h11_accepts_and_alloy_rejects(core, name, wire):
    assert h11_read(wire).kind == "accept"
    assert known_differences(wire) & STRICTER == {name}
    with pytest.raises(errors.ProtocolError):
        core.RequestParser().feed(wire)
