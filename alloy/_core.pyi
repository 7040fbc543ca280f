"""The contract of Alloy's core: what ``alloy._core`` (compiled) and ``alloy._pycore`` (pure Python)
both export, with the same names, signatures and exceptions. ``alloy.core`` picks one.

All byte-level inputs are ``bytes``; header names come out lower-cased. Errors are the classes of
``alloy.errors``; each carries the HTTP status Alloy answers with.
"""

from typing import Any, Optional, Union

# --- HTTP/1.1 request parsing (RFC 9112) -----------------------------------------------------

VIEW_BODY_ABOVE: int
"""A larger body that came whole with its head is held as a view of that read (``Request.body_buffer``)."""


class Request:
    """One complete request as read from a client."""

    method: bytes
    """The method token, as sent (methods are case-sensitive: ``b"GET"``)."""
    target: bytes
    """The request target, as sent (``b"/v1/models?x=1"``)."""
    version: int
    """``10`` for HTTP/1.0, ``11`` for HTTP/1.1."""
    headers: dict[bytes, bytes]
    """Lower-cased field name -> value with surrounding whitespace removed. A field sent more than
    once has its values joined with ``b", "`` in the order received (RFC 9110 section 5.3)."""
    body: bytes
    """The whole body, de-chunked. ``b""`` when the request has none. For a body held as a view
    (``body_buffer``), made on first use and kept."""
    body_buffer: Union[bytes, memoryview]
    """The body as it is forwarded: ``body`` itself, or, for a body over ``VIEW_BODY_ABOVE`` bytes
    that arrived whole in the read that carried its head, a memoryview of that read (no copy)."""
    keep_alive: bool
    """Whether the connection may stay open after the answer (RFC 9112 section 9.3)."""
    forwarded: Optional[bytes]
    """With a parser given ``forward_skip``: exactly ``encode_forwarded(headers, forward_skip,
    forward_prefixes)``, the lines a provider may receive, which the compiled twin writes while it
    reads the head (a repeated name or a Connection-named field: computed from ``headers``). Else
    None."""
    forwarded_skip: Optional[frozenset[bytes]]
    """The ``forward_skip`` set ``forwarded`` was written with, or None."""

class RequestParser:
    """Incremental request parser: feed bytes as they arrive, get back complete requests.

    Framing follows RFC 9112 section 6: ``Transfer-Encoding: chunked`` or ``Content-Length``,
    otherwise no body. Strict where leniency would allow request smuggling: a request with both
    Content-Length and Transfer-Encoding, differing Content-Length values, a Transfer-Encoding other
    than ``chunked``, an invalid chunk size, a control character in a header value, obs-fold, a bare
    LF line ending, whitespace before the colon, or a missing or repeated Host in HTTP/1.1 is refused.

    After an error the parser is dead: the connection answers the error and closes. When the same
    ``feed`` completed requests before the error, it returns them and keeps the error in ``error``,
    so they are answered first (nothing a client sent whole is lost).
    """

    def __init__(self, max_header_bytes: int = 65536, max_body_bytes: int = 33554432,
                 forward_skip: Optional[frozenset[bytes]] = None, forward_prefixes: tuple[bytes, ...] = ()) -> None:
        """``forward_skip``, ``forward_prefixes``: the default forwarding policy's sets (see
        ``encode_forwarded``); with them each request carries its ``forwarded`` lines."""
    def feed(self, data: bytes) -> list[Request]:
        """Consume ``data``; return the requests it completed, in order (pipelining).

        Raises:
            alloy.errors.ProtocolError: malformed request (400).
            alloy.errors.HeadersTooLarge: request line + headers exceed ``max_header_bytes`` (431).
            alloy.errors.BodyTooLarge: declared or received body exceeds ``max_body_bytes`` (413);
                raised as soon as the Content-Length is read, before the body arrives.
            alloy.errors.UnsupportedTransferCoding: a transfer coding other than chunked (501).
            alloy.errors.UnsupportedVersion: an HTTP version other than 1.0 and 1.1 (505).
        """
    @property
    def error(self) -> "alloy.errors.ProtocolError | None":
        """The error met after the requests the last ``feed`` returned, or None."""
    @property
    def expect_continue(self) -> bool:
        """True while the current request sent ``Expect: 100-continue`` and its body is still
        awaited. The server answers ``100 Continue`` once per request when it sees this."""
    @property
    def in_progress(self) -> bool:
        """True when bytes of an incomplete request are buffered, or empty lines that precede one
        were received (the read timeout applies). More than four empty lines before a request
        line raise ``ProtocolError``."""
    @property
    def reading_body(self) -> bool:
        """The head of the request being read is whole: its body is arriving."""
    @property
    def arriving_method(self) -> bytes | None:
        """The method of the request being read once its request line is read (and after an error
        in its head or body, which the connection answers without a body to a ``b"HEAD"``); None
        between requests."""
    @property
    def arriving_headers(self) -> dict | None:
        """While the body of a request is arriving (its head is whole): that request's headers, for
        an answer that refuses it before its body is (the 408 of a slow body); else None."""
    @property
    def waiting_head(self) -> Request | None:
        """While ``expect_continue``: the request whose body the client holds back, with an empty
        body (a copy), so the server may refuse it from its head alone (RFC 9110 section 10.1.1);
        else None."""
    @property
    def buffered(self) -> int:
        """Bytes held for the request in progress (head buffer and body so far): what a pipelining
        client has made the gateway hold beyond the requests already returned."""

# --- upstream response parsing ------------------------------------------------------------------

class ResponseHead:
    """Status line and headers of an upstream response."""

    status: int
    version: int
    headers: list[tuple[bytes, bytes]]
    """(lower-cased name, value) in the order received, duplicates kept."""
    keep_alive: bool
    """Whether the upstream connection can be reused after this response."""
    content_length: int
    """Declared length, or ``-1`` when the body is chunked or delimited by the connection closing."""
    chunked: bool
    block: Optional[bytes]
    """The client-facing header lines when the parser was given ``skip``: exactly
    ``encode_headers(headers, block_skip)``, written while parsing; else None. The compiled twin
    then builds ``headers`` only when it is read, and ``get`` reads the received lines without it,
    so a relay that forwards the block makes no (name, value) pair per header."""
    block_skip: Optional[frozenset[bytes]]
    """The ``skip`` set ``block`` was written with (the parser's), or None."""
    def get(self, name: bytes, default: Optional[bytes] = None) -> Optional[bytes]:
        """The first value of header ``name`` (lower-case), or ``default``."""

class ResponseParser:
    """Incremental upstream response parser that yields the body piece by piece for relaying.

    ``feed`` returns a list whose items are, in order: the ``ResponseHead`` (once, when complete;
    interim 1xx responses are skipped), then ``bytes`` body pieces (de-chunked; never empty).
    ``done`` turns True when the message is complete; bytes after it are ignored and make the
    connection non-reusable (``keep_alive`` is then False on the head).
    """

    done: bool
    def __init__(self, head_request: bool = False, max_header_bytes: int = 65536, skip: Optional[frozenset[bytes]] = None) -> None:
        """``skip``: the lower-case names a relay leaves out of the client's answer; with it each
        head carries its ``block`` (TypeError unless a frozenset)."""
    def feed(self, data: bytes) -> list[Any]:
        """Raises ``alloy.errors.UpstreamProtocolError`` on anything that is not valid HTTP/1.x."""
    def feed_eof(self) -> list[Any]:
        """The upstream closed. Completes a close-delimited body (returns ``[]`` and sets ``done``);
        raises ``UpstreamProtocolError`` when the head or a framed body was incomplete."""

# --- response framing ----------------------------------------------------------------------------

LAST_CHUNK: bytes
"""The terminating chunk of a chunked body: ``b"0\\r\\n\\r\\n"``."""

def encode_headers(headers: list[tuple[bytes, bytes]], skip: frozenset[bytes] | None = None) -> bytes:
    """``name: value\\r\\n`` lines for forwarding, skipping the names in ``skip`` (default: the
    hop-by-hop and framing fields, ``alloy.headers.HOP_BY_HOP``; a caller hiding more passes a
    superset)."""

def encode_forwarded(headers: dict[bytes, bytes], skip: frozenset[bytes], skip_prefixes: tuple[bytes, ...] = ()) -> bytes:
    """The client's request headers as lines for the upstream, without the names in ``skip``, the
    names starting with one of ``skip_prefixes`` (provider-scoped families such as ``anthropic-``),
    and any field the Connection header names as hop-by-hop (RFC 9110 section 7.6.1)."""

# Every framing function below checks what it writes: each line of ``header_block`` must be
# ``token ":" field-value CRLF`` (no CR, LF, NUL or other control but HTAB inside a value), the
# method a token and the target visible ASCII. Anything else raises ``alloy.errors.UnsafeHead``
# and nothing is written: no value, whatever its source, can end a line or a message early.

def frame_response(status: int, header_block: bytes, body: bytes, close: bool = False) -> bytes:
    """A whole response in one buffer: status line, ``header_block`` (pre-encoded lines, each ending
    in CRLF), ``content-length``, ``connection: close`` when ``close``, blank line, body."""

def frame_head(status: int, header_block: bytes, content_length: int, close: bool = False) -> bytes:
    """The head of a response whose ``content_length``-byte body the caller writes separately
    (large bodies are written as they are, never copied into a joined buffer). A negative
    ``content_length`` writes no length at all: 204 and 304 answers have no body."""

def frame_stream_head(status: int, header_block: bytes, close: bool = False) -> bytes:
    """Status line and headers of a chunked response (``transfer-encoding: chunked``)."""

def frame_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body. ``data`` must not be empty."""

def frame_request(method: bytes, target: bytes, header_block: bytes, body: bytes) -> bytes:
    """An upstream HTTP/1.1 request: request line, ``header_block``, ``content-length`` (omitted for a
    bodiless GET/HEAD), blank line, body."""

def frame_request_head(method: bytes, target: bytes, header_block: bytes, content_length: int) -> bytes:
    """The head of an upstream request whose body the caller writes separately (``content-length``
    omitted for a bodiless GET/HEAD, as ``frame_request`` does)."""

# --- request paths --------------------------------------------------------------------------------

def clean_path(path: bytes) -> bytes:
    """The path (no query) a request is routed and forwarded by: repeated slashes merged, a trailing
    slash dropped. Returns ``path`` itself when there is nothing to change (the common case).

    Raises:
        alloy.errors.InvalidPath: a dot segment (``.`` or ``..``), a backslash, or a percent-encoded
            slash, backslash, dot or control character (400): each next hop may decode them into a
            path other than the one routed here.
    """

# --- Server-Sent Events -----------------------------------------------------------------------

class SSESplitter:
    """Incremental splitter of an ``text/event-stream`` body into events.

    Lines may end in CRLF, LF or CR. Returns ``(event, data)`` per complete event: ``event`` is the
    ``event:`` field value or None, ``data`` the ``data:`` lines joined by ``b"\\n"`` (one leading
    space after the colon removed). Events without a data field (comments, ``: ping``) are dropped.
    """

    def __init__(self, max_event_bytes: int = 16777216) -> None: ...
    def feed(self, data: bytes) -> list[tuple[Optional[bytes], bytes]]:
        """Raises ``alloy.errors.UpstreamProtocolError`` when one event exceeds ``max_event_bytes``."""
    def flush(self) -> list[tuple[Optional[bytes], bytes]]:
        """End of stream: return a last event that was not followed by a blank line, if any."""

# --- request body scanning -----------------------------------------------------------------------

class ScanResult:
    model: Optional[str]
    """The top-level ``"model"`` string, or None when absent."""
    stream: bool
    """The top-level ``"stream"`` value (False when absent or null)."""
    body: Union[bytes, memoryview]
    """The body to forward (the input itself, a view included, unless the scanner had to
    re-serialise)."""
    user: Optional[bytes]
    """The raw JSON of the top-level ``"user"`` value (attribution), or None when absent."""
    metadata: Optional[bytes]
    """The raw JSON of the top-level ``"metadata"`` value (attribution), or None when absent."""
    max_tokens: int
    """The answer's token cap asked for: the top-level ``max_completion_tokens`` when it is a
    non-negative integer, else ``max_tokens`` when it is, else 0; times the top-level ``n`` when it
    is an integer above one (every choice may use the cap); capped at 999,999,999. What a
    tokens-per-minute limit reserves for the answer (no search of the body)."""

def scan_body(body: Union[bytes, memoryview]) -> ScanResult:
    """Find the top-level ``model`` and ``stream`` of a JSON object without decoding the document.

    Strings, arrays and nested objects are skipped with bracket counting, so a 1 MB prompt costs one
    pass and no allocation. When the scanner cannot decide on its own (an escape in the model
    string, a repeated top-level key), the body is decoded with orjson instead.

    Raises:
        alloy.errors.InvalidRequest: not JSON, not an object, ``model`` not a string or not
            printable text of at most 256 bytes (it is echoed in a header and may be placed in an
            upstream URL), ``stream`` neither a boolean nor null (400).
    """

def find_usage(data: bytes) -> dict | None:
    """The last ``"usage": {...}`` object in ``data`` (the tail of a JSON answer, or the last events
    of a stream), decoded with orjson; None when there is none (a ``null`` usage is skipped) or it
    is cut off. Used on demand by ``Call.usage``: nothing on the relay path calls it."""

def rewrite_model(result: ScanResult, model: str) -> bytes:
    """``result.body`` with the top-level ``model`` value replaced by ``model``: a splice of the
    original bytes, not a re-serialisation (unless the scan already fell back to orjson)."""

def rewrite_model_parts(result: ScanResult, model: str) -> list[Any]:
    """The pieces (bytes or memoryviews over ``result.body``) whose concatenation is
    ``rewrite_model(result, model)``, for writing a large body upstream without copying it."""

# --- routing table -------------------------------------------------------------------------------

class RouteTable:
    """Model name -> target, built once from the configuration.

    Lookup order: exact names (and aliases), then ``prefix/rest`` where ``prefix`` was added with
    ``add_prefix``, then wildcards (``*`` matches any run of characters), most literal characters
    first, then in insertion order.
    """

    def __init__(self) -> None: ...
    def add_exact(self, name: str, target: Any) -> None: ...
    def add_prefix(self, prefix: str, target: Any) -> None:
        """``prefix`` without its slash: ``add_prefix("groq", t)`` routes ``"groq/llama3"``."""
    def add_wildcard(self, pattern: str, target: Any) -> None: ...
    def lookup(self, model: str) -> Optional[tuple[Any, str]]:
        """``(target, upstream_model)``: the model name to send upstream is ``model`` itself for exact
        and wildcard matches and the part after ``prefix/`` for prefix matches. None if no route."""

# --- accounting: a virtual key's live limits, the access log's line -------------------------

class LimitCounters:
    """A keyed request's limits against the counters memory of ``alloy.governance.counters``
    (80-byte slots), under ``flock`` on ``fd`` when the memory is shared by workers (-1: not).
    ``scopes``: one ``(slot offset, rpm, tpm, max_parallel, budget micro-USD, budget period s,
    period anchor)`` per scope (the key's, its team's), 0 for no limit; ``reported``:
    ``((kind, ((scope index, limit), ...)), ...)`` for the kinds "rpm" and "tpm" reported."""

    fd: int
    def __init__(self, memory: Any, fd: int = -1) -> None: ...
    def take(self, scopes: tuple, reported: tuple, reserve: int, now: float, wall: float) -> tuple:
        """Every limit checked, then the request counted in every scope, or in none.
        ``(None, windows, lines)`` when admitted (each scope's token window start, the
        ``x-ratelimit-*`` lines); ``(what, scope index, figure, tokens, lines)`` when refused,
        ``what`` in "requests", "tokens", "parallel", "budget"."""
    def give_back(self, scopes: tuple, windows: tuple, reserved: int, used: int, cost: int, wall: float) -> None:
        """The request ended: tokens reconciled (same window only), out of flight, cost spent."""
    def spent(self, scopes: tuple, cost: int, wall: float) -> None:
        """A cost spent where the limits were decided elsewhere (Redis): the spend alone, so that
        these counters know it should they decide again (Redis unreachable, fail_mode open)."""
    def release(self) -> None:
        """Let go of the memory (before its map is closed)."""

def untracked(row: tuple) -> tuple:
    """``row`` (returned), out of the cyclic collector's sight when nothing in it is tracked, after
    the same for the tuples inside it: a record a listener keeps until its next flush costs the
    collector nothing. The pure twin returns ``row`` as is."""

def ledger_stored(batch: list, columns: tuple, metadata_json: Any) -> list:
    """The ledger's rows as stored, for its writer thread: an ended call's raw row (path and tags
    as bytes, latency in seconds, the answer's header lines, a held metadata document) converted
    (text, milliseconds with 3 decimals rounded half to even, the request id, ``metadata_json`` of
    the document); ``columns`` are the indexes of those five. A row whose path is text is kept."""

def usage_cost(usage: Optional[dict], price: Optional[tuple]) -> tuple[int, int, int, float, int]:
    """What an answer cost, in one call: (tokens in, out, cached in) as ``alloy.usage.tokens_of``
    reads an OpenAI or Anthropic ``usage``, the cost in USD at ``price`` (USD per million input,
    output and cached input tokens; None: unpriced, 0) as ``Prices.cost`` computes it, and that
    cost in whole micro-USD (rounded half to even). Byte for byte the twin's result: the compiled
    twin computes counts below 2**53 and prices of three floats in C, anything else as the twin."""

def ratelimit_lines(reported: tuple, rows: Any, now: float) -> bytes:
    """OpenAI's ``x-ratelimit-*`` lines, each trio from the tightest scope (``LimitCounters``'
    ``reported``); ``rows``: each scope's counters, indexes 1-4 as in a slot (requests window start
    and count, tokens window start and count), e.g. as decided in Redis."""

def ratelimit_reset(seconds: float) -> bytes:
    """OpenAI's spelling of a reset time: ``250ms``, ``12s``, ``1m0s``."""

def access_json_line(entry: tuple, offset: float) -> bytes:
    """The access log's JSON line (a newline at the end) for ``AccessLog.record``'s 20-field
    entry; ``offset`` turns its monotonic clock reads into wall-clock time."""

class SlotObserver:
    """Adds one ended call (``status``, ``arrived``, ``sent_at``, ``head_at``, ``ended_at``,
    ``first_event_at``, ``count``, ``error``) to a metrics slot of ``alloy.observability.metrics``:
    its status class, its latency, time-to-first-byte, overhead and time-to-first-event buckets
    (bisection of the bounds) and sums, attempts and retries. ``layout``: the slot's indexes
    (``metrics.SLOT_LAYOUT``)."""

    def __init__(self, latency_bounds: tuple, overhead_bounds: tuple, layout: tuple) -> None: ...
    def observe(self, slot: list, call: Any, stream: bool) -> None: ...

# --- The process: the C library's allocator, the open-file limit ---------------------------------

def tune_allocator(heap_up_to: int, trim_above: int) -> bool:
    """glibc's ``mallopt``: allocations up to ``heap_up_to`` bytes come from the heap (not a fresh
    ``mmap`` each), and free heap is returned to the system past ``trim_above`` bytes. True when
    both were set; False where the C library is not glibc."""

def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free heap memory goes back to the system now. True when some
    did; False when none could, or the C library is not glibc."""

def raise_open_file_limit() -> bool:
    """The soft limit of open files (often 1,024) raised to the hard one: every connection is a
    file descriptor. True when the limit is the hard one now."""
