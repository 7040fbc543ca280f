"""What the core lets into an HTTP head, on both twins: the framing functions refuse any byte that
could end a line or a message early, paths are normalized or refused before routing, and a client
cannot hold a connection open with empty lines."""

import random

import pytest

from alloy import errors

# --- the framing guard ------------------------------------------------------------------------------

UNSAFE_BLOCKS = [
    b"x-alloy-model: gpt-4o\r\nset-cookie: a=b\r\n\r\nHTTP/1.1 200 OK\r\n",  # a value ending the head
    b"x-alloy-model: a\nb\r\n",  # bare LF
    b"x-alloy-model: a\rb\r\n",  # bare CR
    b"x-alloy-model: a\x00b\r\n",  # NUL
    b"x-alloy-model: a\x1bb\r\n",  # another control
    b"x-alloy-model: a\x7fb\r\n",  # DEL
    b"x-alloy-model: a",  # no line end
    b"x-alloy-model: a\r",
    b": no name\r\n",
    b"bad name: v\r\n",
    b"no-colon\r\n",
    b"\r\n",  # an empty line would end the head here
    b" folded: v\r\n",
]
SAFE_BLOCKS = [
    b"",
    b"a: b\r\n",
    b"a:b\r\n",
    b"x-tab: a\tb\r\n",
    b"x-obs-text: caf\xc3\xa9\r\n",
    b"x-empty:\r\n",
    b"one: 1\r\ntwo: 2\r\n",
]


@pytest.mark.parametrize("block", UNSAFE_BLOCKS)
def test_every_framing_function_refuses_an_unsafe_header_block(core, block):
    writers = [
        lambda: core.frame_response(200, block, b"{}"),
        lambda: core.frame_head(200, block, 2),
        lambda: core.frame_stream_head(200, block),
        lambda: core.frame_request(b"POST", b"/v1/chat/completions", block, b"{}"),
        lambda: core.frame_request_head(b"POST", b"/v1/chat/completions", block, 2),
    ]
    for write in writers:
        with pytest.raises(errors.UnsafeHead):
            write()


@pytest.mark.parametrize("block", SAFE_BLOCKS)
def test_well_formed_header_blocks_are_written_as_given(core, block):
    assert core.frame_response(200, block, b"") == b"HTTP/1.1 200 OK\r\n" + block + b"content-length: 0\r\n\r\n"
    assert block in core.frame_request(b"GET", b"/v1/models", block, b"")


@pytest.mark.parametrize(
    "target",
    [b"", b"/v1/x HTTP/1.1\r\nHost: evil", b"/v1/a b", b"/v1/\x00", b"/v1/\x7f", b"/v1/caf\xc3\xa9", b"/v1/x\r\n"],
)
def test_request_targets_outside_visible_ascii_are_refused(core, target):
    with pytest.raises(errors.UnsafeHead):
        core.frame_request(b"POST", target, b"host: h\r\n", b"{}")
    with pytest.raises(errors.UnsafeHead):
        core.frame_request_head(b"POST", target, b"host: h\r\n", 2)


@pytest.mark.parametrize("method", [b"", b"GET /x", b"PO\rST", b"G\x00T"])
def test_methods_that_are_not_tokens_are_refused(core, method):
    with pytest.raises(errors.UnsafeHead):
        core.frame_request(method, b"/", b"", b"")


def test_unsafe_head_is_a_server_error_in_openai_shape():
    error = errors.UnsafeHead("x")
    assert (error.status, error.type, error.code) == (500, "server_error", "unsafe_head")


# --- header filters -----------------------------------------------------------------------------------


def test_encode_forwarded_drops_provider_scoped_families_by_prefix(core):
    headers = {
        b"anthropic-beta": b"tools-2024",
        b"anthropic-version": b"2023-06-01",
        b"x-goog-user-project": b"someone-elses",
        b"x-trace": b"1",
        b"anthropicish": b"kept",
    }
    out = core.encode_forwarded(headers, frozenset(), (b"anthropic-", b"x-goog-"))
    assert out == b"x-trace: 1\r\nanthropicish: kept\r\n"


@pytest.mark.parametrize("fields", [0, 1, 15, 64, 65, 200])
def test_encode_forwarded_keeps_the_order_and_drops_what_it_must(core, fields):
    """Every field but the skipped, the prefixed and those Connection names, in the dict's order;
    heads of every size, up to 200 fields."""
    rng = random.Random(fields)
    pool = [b"x-a", b"x-b", b"accept", b"user-agent", b"te", b"anthropic-beta", b"x-goog-id", b"x-named", b"authorization"]
    headers = {}
    for index in range(fields):
        name = rng.choice(pool) + b"-%d" % index if rng.random() < 0.7 else rng.choice(pool)
        headers[name] = b"v%d" % index
    if fields and rng.random() < 0.8:
        headers[b"connection"] = b"keep-alive, X-Named, te"
    skip = frozenset((b"authorization", b"connection", b"te"))
    out = core.encode_forwarded(headers, skip, (b"anthropic-", b"x-goog-"))
    named = {b"x-named", b"te"} if b"connection" in headers else set()
    expected = b"".join(
        name + b": " + value + b"\r\n"
        for name, value in headers.items()
        if name not in skip and name not in named and not name.startswith((b"anthropic-", b"x-goog-"))
    )
    assert out == expected


def test_encode_headers_hides_the_names_given(core):
    headers = [(b"set-cookie", b"s=1"), (b"openai-organization", b"org-1"), (b"x-ok", b"1")]
    assert core.encode_headers(headers, frozenset((b"set-cookie", b"openai-organization"))) == b"x-ok: 1\r\n"
    assert core.encode_headers(headers) == b"set-cookie: s=1\r\nopenai-organization: org-1\r\nx-ok: 1\r\n"


# --- paths ------------------------------------------------------------------------------------------------

CLEANED = [
    (b"/v1/chat/completions", b"/v1/chat/completions"),
    (b"/v1//chat/completions", b"/v1/chat/completions"),
    (b"//v1///chat//completions", b"/v1/chat/completions"),
    (b"/v1/chat/completions/", b"/v1/chat/completions"),
    (b"/v1/files/file-abc%20x", b"/v1/files/file-abc%20x"),
    (b"/v1/x.y/.hidden", b"/v1/x.y/.hidden"),
    (b"/v1/files/...;x", b"/v1/files/...;x"),  # three dots are a name, parameters or not
    (b"/", b"/"),
    (b"//", b"/"),
]
REFUSED = [
    b"/v1/../../admin",
    b"/v1/./chat/completions",
    b"/v1/chat/..",
    b"/v1/.",
    b"/v1/chat%2Fcompletions",
    b"/v1/chat%2fcompletions",
    b"/v1/%2e%2e/admin",
    b"/v1/%2E./admin",
    b"/v1/.%2e/admin",
    b"/v1/a%5Cb",
    b"/v1/a\\b",
    b"/v1/a%00b",
    b"/v1/a%0d%0ab",
    b"/v1/a%7f",
    b"/v1/files/..;/content",  # ";" parameters: Tomcat, Jetty and Spring read "..;" as ".."
    b"/v1/models/..;x",
    b"/v1/.;/models",
]


@pytest.mark.parametrize("path,cleaned", CLEANED)
def test_clean_path_merges_slashes_and_drops_a_trailing_one(core, path, cleaned):
    assert core.clean_path(path) == cleaned


@pytest.mark.parametrize("path", REFUSED)
def test_clean_path_refuses_dot_segments_and_encoded_separators(core, path):
    with pytest.raises(errors.InvalidPath) as info:
        core.clean_path(path)
    assert (info.value.status, info.value.code) == (400, "invalid_path")


def test_clean_path_returns_a_plain_path_itself(core):
    path = b"/v1/chat/completions"
    assert core.clean_path(path) is path


# --- empty lines before a request line ---------------------------------------------------------------------


def test_a_few_empty_lines_before_a_request_are_ignored(core):
    parser = core.RequestParser()
    [request] = parser.feed(b"\r\n\r\nGET / HTTP/1.1\r\nhost: h\r\n\r\n")
    assert request.target == b"/"
    assert not parser.in_progress


def test_empty_lines_start_the_read_timeout_and_too_many_are_refused(core):
    parser = core.RequestParser()
    assert parser.feed(b"\r\n") == []
    assert parser.in_progress  # the read timeout runs from the first empty line
    for _ in range(3):
        assert parser.feed(b"\r\n") == []
    with pytest.raises(errors.ProtocolError):
        parser.feed(b"\r\n")


def test_empty_lines_are_counted_per_request(core):
    parser = core.RequestParser()
    for _ in range(3):
        [request] = parser.feed(b"\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nhost: h\r\n\r\n")
        assert request.method == b"GET"


def test_buffered_counts_the_request_in_progress(core):
    parser = core.RequestParser()
    assert parser.feed(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\n12345") == []
    assert parser.buffered == 5
    [request] = parser.feed(b"67890GET")
    assert request.body == b"1234567890"
    assert parser.buffered == 3


def test_a_head_without_a_length_for_bodiless_statuses(core):
    assert core.frame_head(204, b"x-a: 1\r\n", -1) == b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n"
    assert core.frame_head(304, b"", -1, True) == b"HTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n"
    with pytest.raises(errors.UnsafeHead):
        core.frame_head(204, b"x-a: 1\nx-b: 2\r\n", -1)
