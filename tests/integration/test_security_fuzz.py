"""Issue 10's property: no byte a client sends may become a header, a request line or a path it was
not meant to be.

Hypothesis drives arbitrary values through every field a client controls and copies into an HTTP
head somewhere: the body's ``model`` (echoed in ``x-alloy-model``, put in Azure's URL), the path
after ``/v1`` (passed through to the default provider), extra request headers (forwarded upstream)
and ``x-request-id`` (echoed back and sent upstream). Each example is an otherwise valid HTTP/1.1
request sent over a fresh connection with ``Connection: close`` to one gateway process (started
once for the module, with whichever core ``ALLOY_PURE`` selects). Its one upstream is a
``RawUpstream`` (raw_upstream.py) standing for both an ``openai`` and an ``azure`` provider: it
records the exact bytes every upstream connection carried.

The oracle is h11, an HTTP/1.1 implementation independent of Alloy's core, on both sides:

* client side: the bytes the gateway sent back parse (h11 client role) as exactly ONE complete
  response with nothing after it; its raw head has no bare CR or LF, NUL, control byte or obs-fold
  (h11 itself accepts bare LF line ends, which is how a split header would slip through); every
  header name is one the gateway or the upstream is known to send (an injected ``set-cookie`` or
  ``x-injected`` fails), none of ``x-alloy-*`` / ``x-request-id`` twice; a status >= 400 has an
  OpenAI-shaped JSON error body.
* upstream side, after the recorder log is reset for the example: nothing, or exactly one request
  (``[router] max_retries = 0``, and the recorder always answers 200) that h11 (server role)
  delimits with no byte left over, whose raw head passes the same lint, whose target path begins
  with the provider's base path (``/v1/`` for openai, ``/openai/`` for azure) and holds no ``//``,
  no ``.`` or ``..`` segment and no ``%2f`` / ``%2e`` (any case), whose provider credential
  (``authorization`` for openai, ``api-key`` for azure) appears exactly once with the provider's
  key, and where the client's own credential appears nowhere. For the model endpoints the target
  is exactly the endpoint's (``/v1/chat/completions``; ``/openai/deployments/ONE-SEGMENT/chat/
  completions?api-version=...`` for Azure): a model can never add a segment or a query parameter.
  An encoded ``%2f`` is refused even inside one segment: next hops such as nginx decode it before
  they route, so ``..%2F..%2Fadmin`` as an Azure deployment would still climb out of it.

Two checks go a little beyond the issue's list, on purpose: a backslash counts as a segment
separator when looking for dot segments (``..\\``; IIS and Azure front ends read ``\\`` as ``/``),
and ``%5c`` counts with ``%2f``.

A last test sends arbitrary raw bytes (mostly not a valid request) and half-closes: when h11 finds
no complete request in them, the gateway answers at most one well-formed error and closes, or says
nothing; bytes that do hold complete requests get at most one answer per request plus the error.
Never two answers to one malformed request, never bytes after a closing answer, never a hang.

Every socket read is bounded (``IO_TIMEOUT``), so a gateway that stops answering fails the example
instead of hanging the suite. Settings are derandomized: CI runs the same examples every time.
"""

import re
import socket

import h11
import orjson
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from harness import read_until_closed, start_gateway_process
from raw_upstream import REPLY_BODY

IO_TIMEOUT = 5.0
OPENAI_KEY = b"sk-fuzz-openai-provider-key"
AZURE_KEY = b"fuzz-azure-provider-key"
CLIENT_SECRET = b"sk-client-secret-never-forwarded"
API_VERSION = b"2024-10-21"
MAX_ATTEMPTS = 1  # [router] max_retries = 0 below, and the recorder never answers an error

# No "explain" phase: it traces every line of h11 on a failing example and takes minutes.
SETTINGS = {
    "deadline": None,
    "derandomize": True,  # CI runs the same examples every time
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
}

CONFIG = """
[server]
read_timeout = 5

[router]
max_retries = 0

[providers.openai]
kind = "openai"
base_url = "{base}/v1"
api_key = "env:FUZZ_OPENAI_KEY"

[providers.azure]
kind = "azure"
base_url = "{base}"
api_key = "env:FUZZ_AZURE_KEY"
api_version = "{api_version}"

[[models]]
name = "fast"
provider = "openai"
model = "gpt-4o-mini"

[[models]]
name = "prod"
provider = "azure"
model = "gpt4o-prod"

[wildcards]
"*" = "openai"
"""

# Header names the gateway (its own and its error answers) or the recorder can send back.
RESPONSE_HEADERS = {
    b"content-type", b"content-length", b"transfer-encoding", b"connection", b"x-request-id",
    b"x-alloy-provider", b"x-alloy-model", b"x-alloy-attempts", b"retry-after", b"allow",
    b"x-alloy-overhead-us", b"x-upstream-request-id",
}  # fmt: skip
ONCE = (
    b"x-request-id", b"x-alloy-provider", b"x-alloy-model", b"x-alloy-attempts", b"content-length",
    b"x-alloy-overhead-us",
)  # fmt: skip
CREDENTIAL_HEADERS = {b"authorization", b"api-key", b"x-api-key", b"x-goog-api-key", b"proxy-authorization"}
MODEL_ENDPOINTS = ("chat/completions", "completions", "embeddings")


# Named apart from conftest.py's ``gateway`` (mock-based); it and conftest.py's ``recorder`` live for the module.
@pytest.fixture(scope="module")
def fuzz_gateway(recorder, tmp_path_factory):
    config = CONFIG.format(base=recorder.base, api_version=API_VERSION.decode())
    env = {"FUZZ_OPENAI_KEY": OPENAI_KEY.decode(), "FUZZ_AZURE_KEY": AZURE_KEY.decode()}
    process = start_gateway_process(tmp_path_factory.mktemp("security-fuzz") / "alloy.toml", config, env)
    yield process
    process.stop()


# --- the client ------------------------------------------------------------------------------------


def http_request(method, target, headers=(), body=None):
    """A valid HTTP/1.1 request with ``Connection: close``; ``headers`` are (name, value) bytes.
    The generator checks itself: h11 (server role) must read it as one complete request."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: gateway", b"Connection: close"]
    if body is not None:
        lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    lines += [name + b": " + value for name, value in headers]
    wire = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    assert complete_requests(wire) == 1, f"test bug: not one valid HTTP/1.1 request: {wire!r}"
    return wire


def send(gateway, wire, half_close=False):
    """Send ``wire`` on a fresh connection; everything the gateway answers until it closes. Fails
    if it has not closed within IO_TIMEOUT."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT) as sock:
        try:
            sock.sendall(wire)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway refused early and closed: read what it said
        return read_until_closed(sock, IO_TIMEOUT)


# --- the oracle --------------------------------------------------------------------------------------

_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*")


def head_of(raw):
    """The head of a message (up to its blank line), as an h11-tolerant reader would find it."""
    ends = [i + len(m) for m in (b"\r\n\r\n", b"\n\n", b"\n\r\n") if (i := raw.find(m)) >= 0]
    return raw[: min(ends)] if ends else raw


def lint_head(head, who):
    """What h11 lets through but a head must never hold: bare CR or LF, NUL and other controls,
    obs-fold, a line that is not ``name: value``."""
    assert head.endswith(b"\r\n\r\n"), f"{who}: the head does not end with CRLF CRLF: {head!r}"
    lines = head[:-4].split(b"\r\n")
    for number, line in enumerate(lines):
        assert b"\r" not in line and b"\n" not in line, f"{who}: bare CR or LF in head line {line!r}\n{head!r}"
        assert b"\x00" not in line, f"{who}: NUL in head line {line!r}"
        if number:
            assert _HEADER_LINE.fullmatch(line), f"{who}: not a clean header line (obs-fold, control byte): {line!r}"


def complete_requests(raw):
    """How many complete requests h11 (server role) delimits at the start of ``raw`` before it
    needs more data or refuses the bytes (leading empty lines skipped: RFC 9112 section 2.2)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw.lstrip(b"\r\n"))
    count = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return count
        if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return count
        if isinstance(event, h11.EndOfMessage):
            count += 1
            if conn.their_state is not h11.DONE:
                return count
            try:
                conn.send(h11.Response(status_code=204, headers=[]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return count


class Reply:
    def __init__(self, response, body, raw):
        self.status = response.status_code
        self.headers = list(response.headers)
        self.body = body
        self.raw = raw

    def values(self, name):
        return [value for key, value in self.headers if key == name]

    def __repr__(self):
        return f"<Reply {self.raw[:1500]!r}>"


def parse_responses(raw, limit):
    """The responses in ``raw`` (h11 client role), at most ``limit``; fails on anything else: an
    incomplete or malformed response, a 1xx, bytes after the last one, more than ``limit``."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
    replies, pos = [], 0
    while pos < len(raw):
        assert len(replies) < limit, f"more than {limit} response(s) on one connection: {raw[:3000]!r}"
        if replies:
            assert conn.our_state is h11.DONE and conn.their_state is h11.DONE, (
                f"bytes after a response that closes the connection: {raw[pos : pos + 1500]!r}\nall: {raw[:3000]!r}"
            )
            conn.start_next_cycle()
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "gateway")]))
        conn.send(h11.EndOfMessage())
        before = len(conn.trailing_data[0])
        if not replies:
            conn.receive_data(raw)
            conn.receive_data(b"")
            before = len(raw)
        response, body = None, []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as error:
                pytest.fail(f"h11 cannot read the gateway's answer ({error}): {raw[:3000]!r}")
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                pytest.fail(f"an incomplete response: {raw[:3000]!r}")
            if isinstance(event, h11.InformationalResponse):
                pytest.fail(f"an unexpected {event.status_code} response: {raw[:3000]!r}")
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        left = len(conn.trailing_data[0])
        own = raw[pos : pos + before - left]
        pos += before - left
        lint_head(head_of(own), "response")
        replies.append(Reply(response, b"".join(body), own))
    return replies


def check_reply(reply):
    """One response as the client must see it: only known header names, the gateway's own at most
    once, an OpenAI-shaped error body for a status >= 400."""
    for name, value in reply.headers:
        assert name in RESPONSE_HEADERS, (
            f"an unexpected (injected?) header {name!r}: {value!r} (if the gateway now sends it on purpose, "
            f"add it to RESPONSE_HEADERS)\n{reply!r}"
        )
    for name in ONCE:
        assert len(reply.values(name)) <= 1, f"{name!r} more than once: {reply!r}"
    if reply.status >= 400:
        try:
            error = orjson.loads(reply.body)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pytest.fail(f"a {reply.status} answer without an OpenAI error body: {reply!r}")
        assert isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error, reply


def one_reply(raw):
    assert raw, "the gateway closed without answering a valid request"
    (reply,) = parse_responses(raw, 1)
    check_reply(reply)
    return reply


def assert_clean_path(path, who):
    lower = path.lower()
    for encoded in (b"%2f", b"%2e", b"%5c"):
        assert encoded not in lower, f"{who}: an encoded {encoded!r} in the upstream path {path!r}"
    assert b"//" not in path, f"{who}: an empty segment in the upstream path {path!r}"
    for segment in re.split(rb"[/\\]", path):
        assert segment not in (b".", b".."), f"{who}: a dot segment in the upstream path {path!r}"


def upstream_requests(recorder, reply=None, client_secret=CLIENT_SECRET):
    """What the upstream received for this example, each checked: at most MAX_ATTEMPTS requests,
    each one complete request for h11 with no byte left over, a clean head and path, the provider's
    credential exactly once. Returns the (provider, Received) pairs."""
    recorder.settle()
    received = recorder.received()
    leftovers = recorder.leftovers()
    shown = "\n".join(repr(entry.raw[:2000]) for entry in received)
    assert not leftovers, f"the upstream received bytes beyond its request(s): {leftovers}\nrequests: {shown}"
    assert len(received) <= MAX_ATTEMPTS, f"{len(received)} upstream requests for one client request:\n{shown}"
    checked = []
    for entry in received:
        who = f"upstream request {entry.raw[:2000]!r}"
        assert entry.error is None, f"{entry.error}: {entry.raw[:2000]!r}"
        lint_head(head_of(entry.raw), "upstream request")
        request = entry.request
        for name, value in request.headers:
            assert not set(value) & {0x0D, 0x0A, 0x00}, f"{who}: CR, LF or NUL in {name!r}"
        assert entry.headers(b"host") == [recorder.host_header], who
        path = request.target.partition(b"?")[0]
        if path.startswith(b"/v1/"):
            provider = "openai"
            assert entry.headers(b"authorization") == [b"Bearer " + OPENAI_KEY], who
            assert entry.headers(b"api-key") == [], who
        else:
            assert path.startswith(b"/openai/"), f"{who}: the target left the providers' base paths"
            provider = "azure"
            assert entry.headers(b"api-key") == [AZURE_KEY], who
            assert entry.headers(b"authorization") == [], who
        assert_clean_path(path, who)
        assert client_secret is None or client_secret not in entry.raw, f"{who}: the client's credential went upstream"
        assert len(entry.headers(b"x-request-id")) == 1, who
        if reply is not None and reply.body == REPLY_BODY:
            assert reply.values(b"x-request-id") == entry.headers(b"x-request-id"), (who, reply)
        checked.append((provider, entry))
    if reply is not None and reply.status == 200 and reply.body == REPLY_BODY:
        assert len(checked) == 1, f"the client got the upstream's answer but the upstream logged {shown}"
    # --hypothesis-show-statistics tells how many examples reached each provider, with what answer
    event(f"upstream: {', '.join(p for p, _ in checked) or 'not reached'}; client: {reply and reply.status}")
    return checked


def check_model_target(provider, entry, endpoint):
    """A model request reaches exactly its endpoint: the model adds no segment, no parameter."""
    target = entry.request.target
    if provider == "openai":
        assert target == b"/v1/" + endpoint.encode(), f"the upstream target became {target!r}"
        return
    path, _, query = target.partition(b"?")
    assert re.fullmatch(rb"/openai/deployments/[^/]+/" + re.escape(endpoint.encode()), path), (
        f"the Azure target became {target!r}"
    )
    assert query == b"api-version=" + API_VERSION, f"the Azure query became {query!r} in {target!r}"


# --- strategies --------------------------------------------------------------------------------------

INJECTIONS = [
    "\r\n", "\r", "\n", "\x00", "\x7f", "\x1b", "\t", " ", "\u2028", "\u2029", "\u0085", "\xe9", "\uffff",
    "\U0001f600", "..", ".", "../..", "/", "//", "\\", "%2F..", "%2e%2E", "%2f", "%00", "?", "#", "&",
    "?api-version=evil&", " HTTP/1.1\r\nHost: evil", "\r\nSet-Cookie: pwned=1", "\r\nx-injected: 1",
    "\r\n api-key: stolen", "\r\n\r\nGET /admin HTTP/1.1\r\nHost: evil\r\n\r\n", "\r\n\r\n<html>",
]  # fmt: skip
MODEL_PREFIXES = ["", "", "azure/", "azure/", "openai/", "fast", "prod", "azure/gpt4o-prod", "gpt-4o-mini"]

model_tails = st.lists(st.sampled_from(INJECTIONS) | st.text(max_size=8), max_size=6).map("".join) | st.text(
    max_size=64
)
long_models = st.builds(
    lambda prefix, piece, count: prefix + piece * count,
    st.sampled_from(MODEL_PREFIXES),
    st.sampled_from(["a", "\r\n", "..", "/", "\xe9", "%2f"]),
    st.integers(1, 4) | st.integers(500, 3000),  # short first: the shrinker reports the shortest
)
models = st.builds(lambda prefix, tail: prefix + tail, st.sampled_from(MODEL_PREFIXES), model_tails) | long_models

RAW_PIECES = [
    b"\r\n", b"\r", b"\n", b"\x00", b'"', b"\\", b'\\"', b"\\r\\n", b"\\u000d\\u000a", b"\\u0000", b"\\u2028",
    b"\\/", b"..", b"/", b"%2f", b"\xff", b"\xc3\xa9", b"\xed\xa0\x80", b" HTTP/1.1\r\nHost: evil",
    b"\\r\\nSet-Cookie: pwned=1", b"\r\nSet-Cookie: pwned=1", b'","model":"x', b"azure/", b"openai/",
]  # fmt: skip
raw_models = st.builds(
    lambda prefix, parts: prefix + b"".join(parts),
    st.sampled_from([m.encode() for m in MODEL_PREFIXES]),
    st.lists(st.sampled_from(RAW_PIECES) | st.binary(max_size=8), max_size=6),
)

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
SEGMENT_CHARS = VISIBLE.replace("/", "").replace("?", "")
SEGMENTS = [
    "", ".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "%2e.", "%2f", "%2F", "\\", "..\\", ".\\", "%5c", "chat",
    "completions", "models", "fast", "files", "admin", "embeddings",
]  # fmt: skip
segments = st.sampled_from(SEGMENTS) | st.text(SEGMENT_CHARS, max_size=6)
# Paths an allow-list of OpenAI's endpoints would pass, with fuzzed segments where the id goes.
ID_TEMPLATES = [
    "files/{}", "files/{}/content", "responses/{}", "responses/{}/input_items", "batches/{}/cancel",
    "uploads/{}/parts", "models/{}", "chat/{}", "{}/completions",
]  # fmt: skip
id_paths = st.builds(str.format, st.sampled_from(ID_TEMPLATES), segments | st.lists(segments, max_size=3).map("/".join))
path_tails = st.one_of(
    id_paths,
    id_paths,
    st.lists(segments, max_size=6).map("/".join),
    st.text(VISIBLE.replace("?", ""), max_size=40),
    st.sampled_from(["chat/completions", "models", "models/fast", "files", "moderations", "responses"]),
)
queries = st.none() | st.text(VISIBLE, max_size=20)

VCHAR_OBS = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
FIELD_BYTES = VCHAR_OBS + b" \t"


@st.composite
def field_values(draw, max_size=40):
    """An RFC 9110 field-value: visible bytes and obs-text, inner SP/HTAB, no leading/trailing
    whitespace; sometimes a fixed interesting value."""
    fixed = draw(st.sampled_from([None, None, None, b"", b"Bearer " + CLIENT_SECRET, CLIENT_SECRET,
                                  b"a, b", b"\xff\xfe", b"x" * 300]))  # fmt: skip
    if fixed is not None:
        return fixed
    raw = draw(st.binary(max_size=max_size))
    value = bytes(FIELD_BYTES[b % len(FIELD_BYTES)] for b in raw)
    return value.strip(b" \t")


HEADER_NAMES = [
    "openai-organization", "openai-project", "anthropic-beta", "x-request-id", "authorization", "api-key",
    "x-api-key", "x-goog-api-key", "cookie", "user-agent", "accept", "x-stainless-lang", "proxy-authorization",
    "keep-alive", "te", "upgrade", "trailer", "x-forwarded-for", "set-cookie",
]  # fmt: skip
FRAMING = ("host", "content-length", "transfer-encoding", "connection", "expect")  # the test sets these
header_names = st.builds(
    lambda name, case: case(name),
    (st.sampled_from(HEADER_NAMES) | st.text(TCHAR, min_size=1, max_size=12)).filter(
        lambda name: name.lower() not in FRAMING
    ),
    st.sampled_from([str.lower, str.title, str.upper]),
)
header_lists = st.lists(st.tuples(header_names.map(str.encode), field_values()), max_size=6)

# Routes reaching each provider: a configured model, a prefix route, the wildcard.
ROUTED_MODELS = ["fast", "prod", "openai/gpt-4o-mini", "azure/gpt4o-prod", "gpt-4o"]


def chat_body(model, messages_first=False):
    messages = [{"role": "user", "content": "hi"}]
    document = {"messages": messages, "model": model} if messages_first else {"model": model, "messages": messages}
    return orjson.dumps(document)


# --- the properties ----------------------------------------------------------------------------------


@settings(max_examples=1000, **SETTINGS)
@given(model=models, endpoint=st.sampled_from(MODEL_ENDPOINTS), messages_first=st.booleans())
@example(model="azure/x HTTP/1.1\r\nHost: evil", endpoint="chat/completions", messages_first=False)
@example(model="openai/x\r\nSet-Cookie: pwned=1", endpoint="chat/completions", messages_first=False)
@example(model="azure/../../admin", endpoint="chat/completions", messages_first=False)
@example(model="azure/%2F..", endpoint="chat/completions", messages_first=False)
def test_the_model_string_never_leaves_its_json_string(fuzz_gateway, recorder, model, endpoint, messages_first):
    """An attacker choosing the JSON ``model`` (escapes like ``\\r\\n`` are legal JSON and decode to
    real CR LF) cannot add a header to the answer (response splitting through ``x-alloy-model``),
    cannot change the Azure request line, path or ``api-version`` (request smuggling, a second
    ``api-key``), and cannot break the JSON body the upstream receives."""
    recorder.reset()
    body = chat_body(model, messages_first)
    reply = one_reply(send(fuzz_gateway, http_request(b"POST", b"/v1/" + endpoint.encode(), body=body)))
    for provider, entry in upstream_requests(recorder, reply):
        check_model_target(provider, entry, endpoint)
        document = orjson.loads(entry.body)  # the body stayed one JSON document
        assert isinstance(document, dict) and isinstance(document.get("model"), str), entry.body[:500]
        assert document["messages"] == [{"role": "user", "content": "hi"}], entry.body[:500]


@settings(max_examples=600, **SETTINGS)
@given(raw=raw_models, endpoint=st.sampled_from(MODEL_ENDPOINTS))
@example(raw=b"azure/x\\r\\nHost: evil", endpoint="chat/completions")
@example(raw=b"openai/x\r\nSet-Cookie: pwned=1", endpoint="chat/completions")
def test_raw_bytes_spliced_into_the_model_string(fuzz_gateway, recorder, raw, endpoint):
    """The same attacker writing the body by hand: raw CR LF, NUL, invalid UTF-8, broken escapes
    or quotes spliced into the model string (often not valid JSON at all). Whatever the gateway
    makes of it, the answer and the upstream request stay single well-formed messages."""
    recorder.reset()
    body = b'{"model":"' + raw + b'","messages":[{"role":"user","content":"hi"}]}'
    reply = one_reply(send(fuzz_gateway, http_request(b"POST", b"/v1/" + endpoint.encode(), body=body)))
    for provider, entry in upstream_requests(recorder, reply):
        check_model_target(provider, entry, endpoint)


@settings(max_examples=1000, **SETTINGS)
@given(
    method=st.sampled_from([b"GET", b"POST", b"GET", b"POST", b"DELETE"]),
    tail=path_tails,
    query=queries,
    model=st.sampled_from(ROUTED_MODELS),
)
@example(method=b"GET", tail="../../admin", query="x=1", model="fast")
@example(method=b"POST", tail="/chat/completions", query=None, model="fast")
@example(method=b"GET", tail="./x", query=None, model="fast")
@example(method=b"POST", tail="chat%2Fcompletions", query=None, model="fast")
def test_the_path_reaches_the_upstream_only_as_a_clean_path(fuzz_gateway, recorder, method, tail, query, model):
    """An attacker choosing the path after ``/v1/`` (dot segments, empty segments, encoded slashes
    and dots, backslashes, any query; a POST's model routes it to either provider) cannot make the
    upstream see a path outside the provider's base path or one that a normalising server would read
    as another resource."""
    recorder.reset()
    target = ("/v1/" + tail + ("" if query is None else "?" + query)).encode()
    body = chat_body(model) if method == b"POST" else None
    reply = one_reply(send(fuzz_gateway, http_request(method, target, body=body)))
    upstream_requests(recorder, reply)


@settings(max_examples=400, **SETTINGS)
@given(model=st.sampled_from(ROUTED_MODELS), headers=header_lists)
@example(
    model="azure/gpt4o-prod", headers=[(b"api-key", CLIENT_SECRET), (b"Authorization", b"Bearer " + CLIENT_SECRET)]
)
@example(model="fast", headers=[(b"openai-organization", b"org-\xff\x80"), (b"anthropic-beta", b"a, b")])
def test_client_headers_are_forwarded_without_changing_the_message(fuzz_gateway, recorder, model, headers):
    """Any header a valid HTTP/1.1 client may send (tokens, field-values with obs-text, the
    client's own credentials, hop-by-hop names) is forwarded or dropped, never able to add a
    second provider key or a second Host, or to leak the client's key upstream."""
    recorder.reset()
    wire = http_request(b"POST", b"/v1/chat/completions", headers, chat_body(model))
    reply = one_reply(send(fuzz_gateway, wire))
    # The client's secret must not go upstream in a credential header; under any other name it is
    # just a value, forwarded as such.
    elsewhere = any(CLIENT_SECRET in v for n, v in headers if n.lower() not in CREDENTIAL_HEADERS)
    checked = upstream_requests(recorder, reply, client_secret=None if elsewhere else CLIENT_SECRET)
    assert reply.status != 200 or len(checked) == 1, reply
    for provider, entry in checked:
        check_model_target(provider, entry, "chat/completions")


@settings(max_examples=300, **SETTINGS)
@given(
    model=st.sampled_from(ROUTED_MODELS),
    values=st.lists(field_values(max_size=200), min_size=1, max_size=2),
)
@example(model="fast", values=[b"req-123"])
@example(model="azure/gpt4o-prod", values=[b"a\xffb"])
def test_the_request_id_is_one_clean_value_on_both_sides(fuzz_gateway, recorder, model, values):
    """``x-request-id`` is echoed to the client and sent upstream: whatever the client sent (any
    field-value, sent twice, very long), both sides see exactly one, the same one, and a plain
    token the client sent is the one kept."""
    recorder.reset()
    wire = http_request(b"POST", b"/v1/chat/completions", [(b"X-Request-Id", v) for v in values], chat_body(model))
    reply = one_reply(send(fuzz_gateway, wire))
    checked = upstream_requests(recorder, reply, client_secret=None)  # CLIENT_SECRET is just an id here
    assert reply.status == 200 and len(checked) == 1, reply
    ids = reply.values(b"x-request-id")
    assert len(ids) == 1 and ids == checked[0][1].headers(b"x-request-id"), (ids, checked[0][1].raw[:1000])
    if len(values) == 1 and re.fullmatch(rb"[A-Za-z0-9._-]{1,64}", values[0]):
        assert ids == [values[0]], "a plain client request id was not kept"


RAW_PREFIXES = [
    b"", b"GET ", b"GET /health HTTP/1.1\r\n", b"POST /v1/chat/completions HTTP/1.1\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: a\r\n", b"\x16\x03\x01\x02\x00\x01\x00", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]  # fmt: skip
RAW_BYTES_PIECES = [
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b" ", b"\x00", b"\xff", b":", b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n", b"Host: b\r\n", b"0\r\n\r\n", b" HTTP/1.1\r\n", b" /v1/../x HTTP/1.1\r\n",
]  # fmt: skip
raw_streams = st.builds(
    lambda prefix, parts: prefix + b"".join(parts),
    st.sampled_from(RAW_PREFIXES),
    st.lists(st.sampled_from(RAW_BYTES_PIECES) | st.binary(max_size=16), max_size=8),
)


@settings(max_examples=600, **SETTINGS)
@given(raw=raw_streams)
@example(raw=b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n\x00garbage")
def test_arbitrary_bytes_get_at_most_one_answer_then_a_close(fuzz_gateway, recorder, raw):
    """An attacker sending arbitrary bytes (then closing its side) gets nothing, or one
    well-formed answer and a close; never two answers for one malformed request, never a hang.
    Bytes holding complete requests (h11's reading) may get one answer per request, each complete
    and well-formed, and nothing after the last. The upstream sees only well-formed requests."""
    recorder.reset()
    reply = send(fuzz_gateway, raw, half_close=True)
    requests = complete_requests(raw)
    replies = parse_responses(reply, requests + 1)
    event(f"complete requests (h11): {min(requests, 2)}; answers: {[each.status for each in replies]}")
    for each in replies:
        check_reply(each)
    if requests == 0 and replies:
        assert replies[0].status >= 400, replies[0]
    upstream_requests(recorder)


def test_the_gateway_survived_the_fuzzing(fuzz_gateway):
    """After all of the above the gateway still serves, and nothing it met was an unhandled crash."""
    reply = one_reply(send(fuzz_gateway, http_request(b"GET", b"/health")))
    assert reply.status == 200
    assert "Traceback" not in fuzz_gateway.stderr, fuzz_gateway.stderr[-5000:]
