"""The pure-Python twin of ``alloy._core``: the same names, signatures and exceptions, written to be
read. ``alloy/_core.pyi`` is the contract; the sections below follow the same order as the compiled
module so the two can be compared side by side.

Selected with ``ALLOY_PURE=1`` (or automatically when the extension is missing). Every core test runs
against both twins.
"""

import fcntl
import re
import struct
import time
from bisect import bisect_left

import orjson

from alloy.errors import (
    BodyTooLarge,
    HeadersTooLarge,
    InvalidRequest,
    InvalidPath,
    ProtocolError,
    UnsafeHead,
    UnsupportedTransferCoding,
    UnsupportedVersion,
    UpstreamProtocolError,
    URITooLong,
    unreadable_json,
)
from alloy.headers import HOP_BY_HOP, STATUS_REASONS

# ============================================================================================
# Shared character classes (RFC 9110 section 5.6.2 and 5.5)
# ============================================================================================

# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
#         / DIGIT / ALPHA
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# field-vchar = VCHAR / obs-text; SP and HTAB are allowed inside a value. Everything else below
# 0x20, and DEL, is a control character that a recipient MUST reject or replace (section 5.5):
# we reject, because a proxy that "replaces" is how smuggling vectors survive.
_FORBIDDEN_IN_VALUE = frozenset(range(0x00, 0x20)) - {0x09} | {0x7F}
# Request targets: visible ASCII only (RFC 9112 section 3.2); no spaces, no controls.
_TARGET_OK = frozenset(range(0x21, 0x7F))
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_MAX_CHUNK_SIZE_DIGITS = 16
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]*")
# chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) (RFC 9112 7.1.1);
# in a quoted-string, any byte but controls (HTAB aside), '"' and '\', or '\' and such a byte.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_CHUNK_EXTENSIONS = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*")
# RFC 9112 section 2.2 asks a server to ignore "at least one" empty line before a request line;
# a few are tolerated, more are a client trickling CRLFs to hold the connection open.
MAX_EMPTY_LINES = 4

_CRLF = b"\r\n"


def _is_token(value):
    return bool(value) and all(c in _TCHAR for c in value)


def _parse_header_lines(lines, error):
    """Parse ``name: value`` lines into a list of (lower-cased name, value); ``error`` is the
    exception class to raise (client or upstream side)."""
    fields = []
    for line in lines:
        if not line:
            continue
        if line[0] in (0x20, 0x09):
            # RFC 9112 section 5.2: obs-fold is deprecated; a server MUST reject it (or unfold),
            # and unfolding differently from the next hop is a smuggling vector.
            raise error("obsolete line folding in header field")
        name, sep, value = line.partition(b":")
        if not sep:
            raise error("header line without a colon")
        if not _is_token(name):
            # RFC 9112 section 5.1: no whitespace is allowed between the field name and colon;
            # a server MUST reject such a request with 400.
            raise error("invalid header field name")
        value = value.strip(b" \t")
        if any(c in _FORBIDDEN_IN_VALUE for c in value):
            raise error("control character in header field value")
        fields.append((name.lower(), value))
    return fields


def _body_too_large(target, headers):
    """413 for the request to ``target``, which the error keeps with its ``headers`` (see
    errors.BodyTooLarge)."""
    error = BodyTooLarge("request body too large")
    error.target = target
    error.headers = headers
    return error


def _head_too_large(buffer, pos, limit):
    """431, or 414 when the request line alone does not end within the head's limit (RFC 9112
    section 3: a target longer than the server parses is answered 414)."""
    if buffer.find(b"\n", pos, pos + limit) < 0:
        raise URITooLong("request target too long")
    raise HeadersTooLarge("request header section too large")


def _check_bare_line_ends(buffer, pos, error, start=0):
    """An incomplete head (request or response) with a bare LF, or a CR not followed by LF, would
    wait for a CRLF CRLF that may never come (RFC 9112 section 2.2): ``error`` at once. The head
    begins at ``pos``; ``start``: where its bytes not checked yet begin (the last read's last byte,
    a CR that could not be judged then): a head trickled in small pieces is not checked whole again
    at each one, which cost time quadratic in its size."""
    start = max(pos, start)
    lf = buffer.find(b"\n", start)
    while lf >= 0:
        if lf == pos or buffer[lf - 1] != 0x0D:
            raise error("bare CR or LF in message head")
        lf = buffer.find(b"\n", lf + 1)
    cr = buffer.find(b"\r", start)
    while 0 <= cr < len(buffer) - 1:
        if buffer[cr + 1] != 0x0A:
            raise error("bare CR or LF in message head")
        cr = buffer.find(b"\r", cr + 1)


def _split_head(head, error):
    """Split a header section into its lines, refusing bare CR or LF (RFC 9112 section 2.2)."""
    lines = head.split(_CRLF)
    for line in lines:
        if b"\n" in line or b"\r" in line:
            raise error("bare CR or LF in message head")
    return lines


def _parse_version(text, error, unsupported):
    if text == b"HTTP/1.1":
        return 11
    if text == b"HTTP/1.0":
        return 10
    if len(text) == 8 and text.startswith(b"HTTP/") and text[5] in _DIGITS and text[6] == 0x2E and text[7] in _DIGITS:
        raise unsupported("HTTP version not supported")
    raise error("invalid HTTP version")


_HOST_CHARS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-._~%!$&'()*+,;=:[]"


def _connection_tokens(value):
    return {token.strip().lower() for token in value.split(b",")}


def _connection_named(value):
    """The fields a Connection value names (RFC 9110 section 7.6.1: hop-by-hop too)."""
    return _connection_tokens(value) - {b"close", b"keep-alive"}


_CONTENT_LENGTH_HUGE = 10**18


def _parse_content_length(values, error):
    """RFC 9112 section 6.3 rule 5: several Content-Length values are acceptable only when they
    are all the same valid number; anything else is unrecoverable framing."""
    length = None
    for raw in values:
        for part in raw.split(b","):
            part = part.strip(b" \t")
            if not part or not all(c in _DIGITS for c in part):
                raise error("invalid Content-Length")
            # Past 18 digits the number saturates: it is over any body limit (413).
            significant = part.lstrip(b"0")
            number = _CONTENT_LENGTH_HUGE if len(significant) > 18 else int(significant or b"0")
            if length is not None and number != length:
                raise error("conflicting Content-Length values")
            length = number
    return length


def _codings(transfer_encodings):
    """The Transfer-Encoding lines as one list of lower-case codings. Empty list elements
    (``,chunked``, ``chunked,``) are skipped, as RFC 9110 section 5.6.1.2 asks of a recipient."""
    parts = (c.strip(b" \t").lower() for c in b",".join(transfer_encodings).split(b","))
    return [c for c in parts if c]


def _parse_chunk_size(line, error):
    """chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 section 7.1). Extensions are ignored, but
    checked: a control byte, or whitespace with no ";" after it, is framing a reader may take
    differently, so it is refused."""
    size_text = _CHUNK_SIZE.match(line).group()
    if not size_text or len(size_text) > _MAX_CHUNK_SIZE_DIGITS:
        raise error("invalid chunk size")
    size = int(size_text, 16)
    if size >= 1 << 63:  # beyond what the compiled twin counts in a signed 64-bit integer
        raise error("invalid chunk size")
    if _CHUNK_EXTENSIONS.fullmatch(line, len(size_text)) is None:
        raise error("invalid chunk extension")
    return size


def _has_bare_cr_or_lf(buffer, pos, end):
    """In a line with no CRLF yet: an LF anywhere, or a CR that is not the last byte received."""
    return buffer.find(b"\n", pos, end) >= 0 or buffer.find(b"\r", pos, end - 1) >= 0


_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")  # a request target's scheme "://"


class _ChunkedDecoder:
    """Incremental de-chunking shared by the request and response parsers.

    ``feed(buffer, pos)`` consumes what it can from ``buffer[pos:]`` and returns
    ``(new_pos, pieces, finished)``. It never rescans bytes it already consumed, so the cost is
    linear in the bytes received however they are split.
    """

    SIZE, DATA, DATA_CRLF, TRAILER = range(4)
    # A line (chunk size with its extensions, or a trailer field) is bounded whether or not its
    # CRLF came in the same read, and so is the whole trailer section, as a head is: neither counts
    # toward the body's limit nor the head's, and neither may grow without end.
    MAX_LINE = 4096
    MAX_TRAILER_BYTES = 65536

    def __init__(self, error):
        self.error = error
        self.state = self.SIZE
        self.remaining = 0
        self.trailer_bytes = 0

    def feed(self, buffer, pos):
        pieces = []
        end = len(buffer)
        while pos < end:
            if self.state == self.SIZE:
                eol = buffer.find(_CRLF, pos)
                if (eol if eol >= 0 else end) - pos > self.MAX_LINE:
                    raise self.error("chunk size line too long")
                if eol < 0:
                    if _has_bare_cr_or_lf(buffer, pos, end):  # no CRLF can end this line any more
                        raise self.error("bare CR or LF in chunk size line")
                    break
                if _has_bare_cr_or_lf(buffer, pos, eol + 1):  # hidden in a chunk extension
                    raise self.error("bare CR or LF in chunk size line")
                self.remaining = _parse_chunk_size(bytes(buffer[pos:eol]), self.error)
                pos = eol + 2
                self.state = self.DATA if self.remaining else self.TRAILER
            elif self.state == self.DATA:
                take = min(self.remaining, end - pos)
                pieces.append(bytes(buffer[pos : pos + take]))
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = self.DATA_CRLF
            elif self.state == self.DATA_CRLF:
                if end - pos < 2:
                    if buffer[pos] != 13:
                        raise self.error("chunk data not followed by CRLF")
                    break
                if buffer[pos : pos + 2] != _CRLF:
                    raise self.error("chunk data not followed by CRLF")
                pos += 2
                self.state = self.SIZE
            else:  # TRAILER: trailer fields until an empty line; validated, then discarded
                eol = buffer.find(_CRLF, pos)
                if (eol if eol >= 0 else end) - pos > self.MAX_LINE:
                    raise self.error("trailer line too long")
                if eol < 0:
                    if _has_bare_cr_or_lf(buffer, pos, end):
                        raise self.error("bare CR or LF in trailer")
                    break
                self.trailer_bytes += eol + 2 - pos
                if self.trailer_bytes > self.MAX_TRAILER_BYTES:
                    raise self.error("trailer section too large")
                line = bytes(buffer[pos:eol])
                pos = eol + 2
                if not line:
                    return pos, pieces, True
                if b"\n" in line or b"\r" in line:
                    raise self.error("bare CR or LF in trailer")
                _parse_header_lines([line], self.error)
        return pos, pieces, False


# ============================================================================================
# HTTP/1.1 request parsing (RFC 9112)
# ============================================================================================


# A body larger than this that arrives whole in the read carrying its head is forwarded as a view
# of that read instead of a copy (``Request.body_buffer``): the upstream connection writes a body
# up to this size in one piece with its head anyway (one copy there), a larger one as it is.
VIEW_BODY_ABOVE = 65536


class Request:
    __slots__ = ("method", "target", "version", "headers", "body_buffer", "_body", "keep_alive", "forwarded", "forwarded_skip")

    def __init__(self, method, target, version, headers, body, keep_alive, forwarded=None, forwarded_skip=None):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        # The body as it is forwarded: its bytes, or a memoryview of the read (see the parser).
        # ``body`` is always bytes, made from the view on first use and kept.
        self.body_buffer = body
        self._body = body if type(body) is bytes else None
        self.keep_alive = keep_alive
        # The lines a provider may receive, ``encode_forwarded(headers, forwarded_skip, <the
        # parser's prefixes>)``, when the parser was given forwarding sets (else both None). The
        # compiled twin writes them while it reads the head.
        self.forwarded = forwarded
        self.forwarded_skip = forwarded_skip

    @property
    def body(self):
        if self._body is None:
            self._body = bytes(self.body_buffer)
        return self._body

    def __repr__(self):
        return f"<Request {self.method.decode()} {self.target.decode(errors='replace')}>"


_HEAD, _BODY_LENGTH, _BODY_CHUNKED, _DEAD = range(4)


class RequestParser:
    """See ``alloy/_core.pyi``."""

    def __init__(self, max_header_bytes=65536, max_body_bytes=33554432, forward_skip=None, forward_prefixes=()):
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        if forward_skip is not None and type(forward_skip) is not frozenset:
            raise TypeError("forward_skip must be a frozenset of lower-case names")
        if type(forward_prefixes) is not tuple:
            raise TypeError("forward_prefixes must be a tuple")
        self._forward_skip = forward_skip
        self._forward_prefixes = forward_prefixes
        self._buffer = bytearray()
        self._state = _HEAD
        self._scan_from = 0  # where to resume looking for the end of the head: never rescan
        self._current = None
        self._remaining = 0
        self._body_parts = []
        self._body_size = 0
        self._chunked = None
        # A chunked body grows here in place: as a list of its chunks, a body of one-byte chunks
        # cost some 30 bytes of memory per byte (one object each), read before any key was checked.
        self._chunked_body = None
        self._expect_continue = False
        self._error = None
        self._empty_lines = 0  # skipped before the request line being waited for
        self._method = None  # of the request being read, once its request line is read

    @property
    def expect_continue(self):
        return self._expect_continue

    @property
    def in_progress(self):
        # An empty line already counts as the start of the next request, so the read timeout
        # runs from it: a CRLF every few seconds cannot hold a connection open.
        return bool(self._buffer) or self._state != _HEAD or self._empty_lines > 0

    @property
    def reading_body(self):
        """The head of the request being read is whole: its body is arriving."""
        return self._state == _BODY_LENGTH or self._state == _BODY_CHUNKED

    @property
    def arriving_method(self):
        """See ``alloy/_core.pyi``."""
        return self._method

    @property
    def arriving_headers(self):
        """See ``alloy/_core.pyi``."""
        return self._current[3] if self._state == _BODY_LENGTH or self._state == _BODY_CHUNKED else None

    @property
    def waiting_head(self):
        """See ``alloy/_core.pyi``."""
        if not self._expect_continue:
            return None
        method, target, version, headers, keep_alive, forwarded, skip = self._current
        return Request(method, target, version, headers, b"", keep_alive, forwarded, skip)

    @property
    def buffered(self):
        return len(self._buffer) + self._body_size

    @property
    def error(self):
        return self._error

    def feed(self, data):
        if self._state == _DEAD:
            raise ProtocolError("connection is no longer readable after an error")
        done = []
        try:
            self._feed(data, done)
        except ProtocolError as error:
            self._state = _DEAD
            if not done:
                raise
            self._error = error  # the requests before it are answered first
        return done

    def _feed(self, data, done):
        buffer = self._buffer
        fresh = not buffer and type(data) is bytes  # then a position in buffer is one in data
        buffer += data
        pos = 0
        while True:
            if self._state == _HEAD:
                # RFC 9112 section 2.2: a server SHOULD ignore at least one empty line received
                # before the request line (some clients send a stray CRLF after a body).
                while buffer[pos : pos + 2] == _CRLF:
                    pos += 2
                    self._empty_lines += 1
                    if self._empty_lines > MAX_EMPTY_LINES:
                        raise ProtocolError("too many empty lines before the request line")
                end = buffer.find(b"\r\n\r\n", max(pos, self._scan_from - 3))
                if end < 0:
                    self._check_incomplete_head(buffer, pos)
                    break
                if end - pos + 4 > self._max_header:
                    _head_too_large(buffer, pos, self._max_header)
                self._start_request(bytes(buffer[pos:end]))
                pos = end + 4
                self._scan_from = 0
                self._empty_lines = 0
            elif self._state == _BODY_LENGTH:
                take = min(self._remaining, len(buffer) - pos)
                if take:
                    if fresh and pos and take > VIEW_BODY_ABOVE and take == self._remaining and not self._body_parts:
                        # a large body whole in the read that carried its head: a view, no copy
                        self._body_parts.append(memoryview(data)[pos : pos + take])
                    else:
                        self._body_parts.append(bytes(buffer[pos : pos + take]))
                    self._body_size += take
                    pos += take
                    self._remaining -= take
                if self._remaining:
                    break
                done.append(self._finish_request())
            else:  # _BODY_CHUNKED
                pos, pieces, finished = self._chunked.feed(buffer, pos)
                body = self._chunked_body
                for piece in pieces:
                    self._body_size += len(piece)
                    if self._body_size > self._max_body:
                        raise _body_too_large(self._current[1], self._current[3])
                    body += piece
                if self._body_size + self._chunked.remaining > self._max_body:
                    # A chunk announced beyond the limit is refused now, as a Content-Length is.
                    raise _body_too_large(self._current[1], self._current[3])
                if not finished:
                    break
                done.append(self._finish_request())
            if pos >= len(buffer) and self._state == _HEAD:
                break
        del buffer[:pos]
        if self._state == _HEAD:
            self._scan_from = len(buffer)

    def _check_incomplete_head(self, buffer, pos):
        pending = len(buffer) - pos
        if pending > self._max_header:
            _head_too_large(buffer, pos, self._max_header)
        checked = self._scan_from  # what the reads before this one brought, checked then
        _check_bare_line_ends(buffer, pos, ProtocolError, checked - 1)
        if len(buffer) - pos == 1 and buffer[pos] == 0x0D:
            return  # the first half of an empty line between two requests (RFC 9112 section 2.2)
        # Bytes that cannot begin a method token (TLS, binary noise) are refused at once instead
        # of after the read timeout: nothing that follows could make them a request. The method
        # ends at the first space; bytes before it checked by an earlier read are not read again.
        space = buffer.find(b" ", pos)
        if space < 0 or space >= checked:
            for c in buffer[max(pos, checked) : space if space >= 0 else len(buffer)]:
                if c not in _TCHAR:
                    raise ProtocolError("invalid method")

    def _start_request(self, head):
        lines = _split_head(head, ProtocolError)
        method, target, version = self._parse_request_line(lines[0])
        self._method = method
        fields = _parse_header_lines(lines[1:], ProtocolError)

        headers = {}
        joined = {}  # a repeated name -> its values
        content_lengths = []
        transfer_encodings = []
        hosts = 0
        for name, value in fields:
            if name == b"content-length":
                content_lengths.append(value)
            elif name == b"transfer-encoding":
                transfer_encodings.append(value)
            elif name == b"host":
                hosts += 1
                if value.strip(_HOST_CHARS):
                    raise ProtocolError("invalid Host header")  # RFC 9112 section 3.2 (RFC 3986 host[:port])
            previous = headers.get(name)
            if previous is None:
                headers[name] = value
            else:  # joined once below (RFC 9110 5.3): joining at each repeat would cost its square
                joined.setdefault(name, [previous]).append(value)
        for name, parts in joined.items():
            headers[name] = b", ".join(parts)

        # RFC 9112 section 3.2: a server MUST respond 400 to any request with more than one Host
        # field, and to an HTTP/1.1 request without one.
        if hosts > 1 or (version == 11 and hosts == 0):
            raise ProtocolError("a request needs exactly one Host header")

        connection = _connection_tokens(headers.get(b"connection", b""))
        if version == 11:
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection and b"close" not in connection

        skip = self._forward_skip
        forwarded = None if skip is None else encode_forwarded(headers, skip, self._forward_prefixes)
        self._current = (method, target, version, headers, keep_alive, forwarded, skip)
        self._body_parts = []
        self._body_size = 0
        expects = headers.get(b"expect")
        # Expect is a list (RFC 9110 section 10.1.1): sent twice, it arrives joined ("100-continue, 100-continue").
        self._expect_continue = version == 11 and expects is not None and b"100-continue" in _members(expects)

        if transfer_encodings:
            # RFC 9112 section 6.1: Content-Length with Transfer-Encoding "ought to be handled
            # as an error" by a server; we reject, because a proxy that picks one is the
            # textbook request-smuggling setup.
            if content_lengths:
                raise ProtocolError("both Content-Length and Transfer-Encoding")
            if version == 10:
                raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            codings = _codings(transfer_encodings)
            if codings != [b"chunked"]:
                raise UnsupportedTransferCoding("only Transfer-Encoding: chunked is supported")
            self._chunked = _ChunkedDecoder(ProtocolError)
            self._chunked_body = bytearray()
            self._state = _BODY_CHUNKED
        elif content_lengths:
            length = _parse_content_length(content_lengths, ProtocolError)
            if length > self._max_body:
                raise _body_too_large(target, headers)
            self._remaining = length
            self._state = _BODY_LENGTH
        else:
            self._remaining = 0
            self._state = _BODY_LENGTH

    def _parse_request_line(self, line):
        # request-line = method SP request-target SP HTTP-version (RFC 9112 section 3)
        parts = line.split(b" ")
        if len(parts) != 3:
            raise ProtocolError("malformed request line")
        method, target, version = parts
        if not _is_token(method):
            raise ProtocolError("invalid method")
        # A fragment ("#") is the client's own business and never sent (RFC 9110 section 7.1)
        if not target or not all(c in _TARGET_OK for c in target) or b"#" in target:
            raise ProtocolError("invalid request target")
        # RFC 9112 section 3.2: origin-form ("/..."), absolute-form ("http://host/..."), or "*"
        # for OPTIONS; authority-form is CONNECT's, which a gateway does not serve.
        if target[:1] != b"/" and not _ABSOLUTE_FORM.match(target) and not (target == b"*" and method == b"OPTIONS"):
            raise ProtocolError("invalid request target")
        return method, target, _parse_version(version, ProtocolError, UnsupportedVersion)

    def _finish_request(self):
        method, target, version, headers, keep_alive, forwarded, forwarded_skip = self._current
        parts = self._body_parts
        if self._chunked_body is not None:
            body = bytes(self._chunked_body)
            self._chunked_body = None
        else:
            body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._current = None
        self._method = None
        self._body_parts = []
        self._body_size = 0
        self._chunked = None
        self._state = _HEAD
        self._expect_continue = False
        return Request(method, target, version, headers, body, keep_alive, forwarded, forwarded_skip)


# ============================================================================================
# Upstream response parsing
# ============================================================================================


class ResponseHead:
    __slots__ = ("status", "version", "headers", "keep_alive", "content_length", "chunked", "block", "block_skip")

    def __init__(self, status, version, headers, keep_alive, content_length, chunked, block=None, block_skip=None):
        self.status = status
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        # The client-facing header lines, ``encode_headers(headers, block_skip)``, when the parser
        # was given a ``skip`` set, else None. (The compiled twin writes them while it parses and
        # builds ``headers`` only when asked: the relay of a passthrough answer never asks.)
        self.block = block
        self.block_skip = block_skip

    def get(self, name, default=None):
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def __repr__(self):
        return f"<ResponseHead {self.status}>"


_R_HEAD, _R_LENGTH, _R_CHUNKED, _R_UNTIL_CLOSE, _R_DONE = range(5)


class ResponseParser:
    """See ``alloy/_core.pyi``."""

    def __init__(self, head_request=False, max_header_bytes=65536, skip=None):
        self._head_request = head_request
        self._max_header = max_header_bytes
        if skip is not None and type(skip) is not frozenset:
            raise TypeError("skip must be a frozenset of lower-case names")
        self._skip = skip
        self._buffer = bytearray()
        self._state = _R_HEAD
        self._remaining = 0
        self._chunked = None
        self._head = None
        self.done = False

    def feed(self, data):
        if self._state == _R_DONE:
            if data and self._head is not None:
                self._head.keep_alive = False  # stray bytes: never reuse this connection
            return []
        buffer = self._buffer
        buffer += data
        out = []
        pos = 0
        while pos < len(buffer) or self._state == _R_LENGTH and not self._remaining:
            if self._state == _R_HEAD:
                end = buffer.find(b"\r\n\r\n", pos)
                if end < 0:
                    if len(buffer) - pos > self._max_header:
                        raise UpstreamProtocolError("upstream response head too large")
                    _check_bare_line_ends(buffer, pos, UpstreamProtocolError)
                    break
                if end - pos + 4 > self._max_header:
                    raise UpstreamProtocolError("upstream response head too large")
                head = self._parse_head(bytes(buffer[pos:end]))
                pos = end + 4
                if head is not None:
                    out.append(head)
            elif self._state == _R_LENGTH:
                take = min(self._remaining, len(buffer) - pos)
                if take:
                    out.append(bytes(buffer[pos : pos + take]))
                    pos += take
                    self._remaining -= take
                if not self._remaining:
                    self._finish(buffer, pos)
                    return out
                break
            elif self._state == _R_CHUNKED:
                pos, pieces, finished = self._chunked.feed(buffer, pos)
                out.extend(pieces)
                if finished:
                    self._finish(buffer, pos)
                    return out
                break
            else:  # _R_UNTIL_CLOSE
                out.append(bytes(buffer[pos:]))
                pos = len(buffer)
        del buffer[:pos]
        return out

    def feed_eof(self):
        if self._state == _R_UNTIL_CLOSE:
            self._state = _R_DONE
            self.done = True
            return []
        if self._state == _R_DONE:
            return []
        if self._state == _R_HEAD:
            raise UpstreamProtocolError("upstream closed the connection before sending a response")
        raise UpstreamProtocolError("upstream closed the connection before the body was complete")

    def _finish(self, buffer, pos):
        if pos < len(buffer):
            self._head.keep_alive = False
        buffer.clear()
        self._state = _R_DONE
        self.done = True

    def _parse_head(self, head):
        lines = _split_head(head, UpstreamProtocolError)
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or len(parts[1]) != 3 or not all(c in _DIGITS for c in parts[1]) or not b"100" <= parts[1] <= b"599":
            raise UpstreamProtocolError("upstream sent an invalid status line")  # RFC 9110 section 15: 1xx to 5xx
        version = _parse_version(parts[0], UpstreamProtocolError, UpstreamProtocolError)
        status = int(parts[1])
        headers = _parse_header_lines(lines[1:], UpstreamProtocolError)
        if 100 <= status < 200:
            if status == 101:  # it ends HTTP/1.1 on the connection; the gateway never asks for it
                raise UpstreamProtocolError("upstream switched protocols unasked (101)")
            return None  # interim response (100 Continue, 103 Early Hints): wait for the final one

        connection = set()
        content_lengths = []
        transfer_encodings = []
        for name, value in headers:
            if name == b"connection":
                connection |= _connection_tokens(value)
            elif name == b"content-length":
                content_lengths.append(value)
            elif name == b"transfer-encoding":
                transfer_encodings.append(value)
        keep_alive = b"close" not in connection if version == 11 else b"keep-alive" in connection

        # RFC 9112 section 6.3: responses to HEAD and 1xx/204/304 responses have no body.
        if self._head_request or status in (204, 304):
            # A 204 or 304 has no body (RFC 9110 sections 15.3.5, 15.4.5). One that says it has
            # (chunked; a 204 with a length other than 0) may send it anyway, and it would be read
            # as the next request's answer: its connection is not reused. (A 304's length describes
            # the resource: allowed.)
            if not self._head_request and (transfer_encodings or (status == 204 and any(v.strip(b" \t") != b"0" for v in content_lengths))):
                keep_alive = False
            content_length, chunked = 0, False
            self._remaining = 0
            self._state = _R_LENGTH
        elif transfer_encodings:
            codings = _codings(transfer_encodings)
            if codings != [b"chunked"]:  # a coding before it would reach the client undecoded
                raise UpstreamProtocolError("unsupported upstream transfer coding")
            content_length, chunked = -1, True
            if content_lengths:
                keep_alive = False  # RFC 9112 section 6.3: chunked wins, and the connection is not reused
            self._chunked = _ChunkedDecoder(UpstreamProtocolError)
            self._state = _R_CHUNKED
        elif content_lengths:
            content_length, chunked = _parse_content_length(content_lengths, UpstreamProtocolError), False
            if content_length == _CONTENT_LENGTH_HUGE:  # past 18 digits: no real body, and it would be relayed
                raise UpstreamProtocolError("upstream Content-Length too large")
            self._remaining = content_length
            self._state = _R_LENGTH
        else:
            content_length, chunked = -1, False
            keep_alive = False
            self._state = _R_UNTIL_CLOSE
        skip = self._skip
        # A head whose Connection names other fields (RFC 9110 section 7.6.1: hop-by-hop too) gets
        # no block: encode_headers, which leaves them out, writes its lines when they are asked for.
        block = None if skip is None or connection - {b"close", b"keep-alive"} else encode_headers(headers, skip)
        self._head = ResponseHead(status, version, headers, keep_alive, content_length, chunked, block, skip)
        return self._head


# ============================================================================================
# Response framing
# ============================================================================================

LAST_CHUNK = b"0\r\n\r\n"


# Nothing is written into a head unchecked: whatever its source (the client's body, the config,
# the upstream), every header block must be ``field-name ":" field-value CRLF`` lines (RFC 9110
# section 5.1 and 5.5: a token, then visible characters, SP, HTAB or obs-text), and a request
# target visible ASCII (RFC 9112 section 3.2). One CR, LF or NUL in a value would end the line,
# or the head, and let the bytes after it become headers or a second message of their own.
_HEADER_BLOCK = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")


def _check_block(header_block):
    if _HEADER_BLOCK.fullmatch(header_block) is None:
        raise UnsafeHead("refused to write a header holding bytes not allowed in an HTTP head")


def _check_request_line(method, target):
    if not _is_token(method):
        raise UnsafeHead("refused to write an invalid method")
    if not target or not all(c in _TARGET_OK for c in target):
        raise UnsafeHead("refused to write a request target holding bytes outside visible ASCII")


def _status_line(status):
    return b"HTTP/1.1 %d %s\r\n" % (status, STATUS_REASONS.get(status, b""))


def encode_headers(headers, skip=None):
    skip = HOP_BY_HOP if skip is None else skip
    named = set()
    for name, value in headers:
        if name == b"connection":
            named |= _connection_named(value)
    return b"".join(name + b": " + value + _CRLF for name, value in headers if name not in skip and name not in named)


def _members(value):
    """The lower-cased members of a comma-separated list field value (RFC 9110 section 5.6.1)."""
    return [member.strip(b" \t").lower() for member in value.split(b",")]


def encode_forwarded(headers, skip, skip_prefixes=()):
    connection = headers.get(b"connection")
    named = set() if connection is None else _connection_named(connection)
    return b"".join(
        name + b": " + value + _CRLF
        for name, value in headers.items()
        if name not in skip and name not in named and not name.startswith(skip_prefixes)
    )


def frame_response(status, header_block, body, close=False):
    _check_block(header_block)
    connection = b"connection: close\r\n" if close else b""
    return b"%s%scontent-length: %d\r\n%s\r\n%s" % (_status_line(status), header_block, len(body), connection, body)


def frame_head(status, header_block, content_length, close=False):
    _check_block(header_block)
    connection = b"connection: close\r\n" if close else b""
    if content_length < 0:  # 204, 304: no body and no length (RFC 9110 section 8.6)
        return b"%s%s%s\r\n" % (_status_line(status), header_block, connection)
    return b"%s%scontent-length: %d\r\n%s\r\n" % (_status_line(status), header_block, content_length, connection)


def frame_stream_head(status, header_block, close=False):
    _check_block(header_block)
    connection = b"connection: close\r\n" if close else b""
    return _status_line(status) + header_block + b"transfer-encoding: chunked\r\n" + connection + _CRLF


def frame_chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def frame_request(method, target, header_block, body):
    _check_request_line(method, target)
    _check_block(header_block)
    line = method + b" " + target + b" HTTP/1.1\r\n"
    if body or method not in (b"GET", b"HEAD"):
        return b"%s%scontent-length: %d\r\n\r\n%s" % (line, header_block, len(body), body)
    return line + header_block + _CRLF


def frame_request_head(method, target, header_block, content_length):
    _check_request_line(method, target)
    _check_block(header_block)
    if not content_length and method in (b"GET", b"HEAD"):
        return method + b" " + target + b" HTTP/1.1\r\n" + header_block + _CRLF
    return b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n" % (method, target, header_block, content_length)


# ============================================================================================
# Request paths
# ============================================================================================

# Percent-encodings that would let a path mean something else after the next hop decodes it:
# "/" (%2F) and "\" (%5C) split segments, "." (%2E) forms dot segments (RFC 3986 section 6.2.2.2
# says %2E *is* "."), and controls (%00-%1F, %7F) have no place in a path.
_ENCODED_FORBIDDEN = re.compile(rb"%(?:2[eEfF]|5[cC]|[01][0-9a-fA-F]|7[fF])")


def clean_path(path):
    """The path a request is routed and forwarded by: repeated slashes merged and a trailing slash
    dropped; dot segments, backslashes and encoded slashes, dots and controls refused with
    ``InvalidPath`` (a client never needs them, and each next hop may read them differently)."""
    if b"//" not in path and b"/." not in path and b"%" not in path and b"\\" not in path and path[-1:] != b"/":
        return path  # the common case: nothing to normalize
    if b"\\" in path or _ENCODED_FORBIDDEN.search(path) is not None:
        raise InvalidPath("the request path holds a backslash or an encoded slash, dot or control character")
    segments = [segment for segment in path.split(b"/") if segment]
    # "..;x" too: servers that take ";" for path parameters (Tomcat, Jetty, Spring) read it as ".."
    if any(segment.partition(b";")[0] in (b".", b"..") for segment in segments):
        raise InvalidPath("the request path holds a dot segment ('.' or '..')")
    return b"/" + b"/".join(segments)


# ============================================================================================
# Server-Sent Events
# ============================================================================================


_LINE_END = re.compile(rb"[\r\n]")  # an event stream's line ends: CRLF, LF or CR


class SSESplitter:
    """See ``alloy/_core.pyi``. Follows the WHATWG event-stream interpretation rules."""

    def __init__(self, max_event_bytes=16777216):
        self._max = max_event_bytes
        self._buffer = bytearray()  # the line not ended yet
        self._event = None
        self._data = []
        self._event_bytes = 0
        self._pending_cr = False  # a CR ended the last feed: a following LF belongs to it

    def feed(self, data):
        buffer = self._buffer
        if not data:
            return []  # nothing read: a CR pending from the last feed stays pending
        if self._pending_cr and data[:1] == b"\n":
            data = data[1:]
        self._pending_cr = False
        # The held bytes hold no line end (they were searched when they came): only this read's
        # bytes are searched, so a long line arriving in many reads costs its length, not its
        # length squared.
        search = len(buffer)
        buffer += data
        events = []
        pos = 0
        end = len(buffer)
        while (found := _LINE_END.search(buffer, search)) is not None:
            eol = found.start()
            skip = 1
            if buffer[eol] == 0x0D:  # CR, CRLF (a CR that ends a read may be the first half of one)
                if eol + 1 < end:
                    if buffer[eol + 1] == 0x0A:
                        skip = 2
                else:
                    self._pending_cr = True
            self._line(bytes(buffer[pos:eol]), events)
            pos = search = eol + skip
        del buffer[:pos]
        if self._event_bytes + len(buffer) > self._max:
            raise UpstreamProtocolError("server-sent event too large")
        return events

    def flush(self):
        events = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        self._line(b"", events)
        return events

    def _line(self, line, events):
        if not line:
            if self._data:
                events.append((self._event, b"\n".join(self._data)))
            self._event = None
            self._data = []
            self._event_bytes = 0
            return
        self._event_bytes += len(line)
        if self._event_bytes > self._max:
            raise UpstreamProtocolError("server-sent event too large")
        if line[0] == 0x3A:  # ":" starts a comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value


# ============================================================================================
# Request body scanning
# ============================================================================================


class ScanResult:
    __slots__ = ("model", "stream", "body", "_span", "_parsed", "user", "metadata", "max_tokens")

    def __init__(self, model, stream, body, span, parsed, user=None, metadata=None, max_tokens=0):
        self.model = model
        self.stream = stream
        self.body = body
        self._span = span  # (start, end) of the model string's contents, or None
        self._parsed = parsed  # the decoded object when the scan fell back to orjson
        # The raw JSON of the top-level "user" and "metadata" values (attribution), or None:
        # found on the way, so nobody searches the body for them again.
        self.user = user
        self.metadata = metadata
        # The answer's token cap asked for: the top-level ``max_completion_tokens`` when it is a
        # non-negative integer, else ``max_tokens`` when it is, else 0; times ``n`` when that is a
        # count of choices above one (capped at MAX_TOKEN_CAP). Governance reserves it against a
        # tokens-per-minute limit.
        self.max_tokens = max_tokens

    def __repr__(self):
        return f"<ScanResult model={self.model!r} stream={self.stream}>"


class _Undecided(Exception):
    """The scanner cannot answer alone; orjson decides."""


_WHITESPACE = b" \t\r\n"
_LITERAL_CHARS = frozenset(b"0123456789+-.eEtruefalsn")


def _skip_ws(body, pos):
    end = len(body)
    while pos < end and body[pos] in b" \t\r\n":
        pos += 1
    return pos


def _skip_string(body, pos):
    """``body[pos]`` is an opening quote; return the index after the closing one."""
    while True:
        close = body.find(b'"', pos + 1)
        if close < 0:
            raise InvalidRequest("request body is not valid JSON")
        backslashes = 0
        while body[close - 1 - backslashes] == 0x5C:
            backslashes += 1
        if backslashes % 2 == 0:
            return close + 1
        pos = close


def _skip_value(body, pos):
    """Skip one JSON value starting at ``pos``; nested containers are skipped by bracket counting."""
    end = len(body)
    if pos >= end:
        raise InvalidRequest("request body is not valid JSON")
    first = body[pos]
    if first == 0x22:  # '"'
        return _skip_string(body, pos)
    if first in b"{[":
        depth = 0
        while pos < end:
            c = body[pos]
            if c == 0x22:
                pos = _skip_string(body, pos)
                continue
            if c in b"{[":
                depth += 1
            elif c in b"}]":
                depth -= 1
                if depth == 0:
                    return pos + 1
            pos += 1
        raise InvalidRequest("request body is not valid JSON")
    start = pos
    while pos < end and body[pos] in _LITERAL_CHARS:
        pos += 1
    if pos == start:
        raise InvalidRequest("request body is not valid JSON")
    return pos


def _scan(body):
    pos = _skip_ws(body, 0)
    if pos >= len(body) or body[pos] != 0x7B:  # "{"
        raise InvalidRequest("request body must be a JSON object")
    pos = _skip_ws(body, pos + 1)
    model = None
    span = None
    stream = False
    user = metadata = None
    max_tokens = max_completion_tokens = choices = -1
    seen = set()
    deferred = None
    if pos < len(body) and body[pos] == 0x7D:
        pos += 1
    else:
        while True:
            if pos >= len(body) or body[pos] != 0x22:
                raise InvalidRequest("request body is not valid JSON")
            key_end = _skip_string(body, pos)
            key = bytes(body[pos + 1 : key_end - 1])
            if key in seen:
                raise _Undecided  # JSON parsers disagree on duplicates; orjson's choice is final
            seen.add(key)
            pos = _skip_ws(body, key_end)
            if pos >= len(body) or body[pos] != 0x3A:
                raise InvalidRequest("request body is not valid JSON")
            pos = _skip_ws(body, pos + 1)
            value_end = _skip_value(body, pos)
            if key == b"model":
                if body[pos] != 0x22:
                    if body[pos:value_end] == b"null":
                        model = None
                    else:
                        # Raised once the whole object is read: a repeated "model" later on
                        # hands the decision to orjson, whose last-one-wins is what providers see.
                        deferred = InvalidRequest("'model' must be a string", param="model")
                else:
                    raw = body[pos + 1 : value_end - 1]
                    if b"\\" in raw:
                        raise _Undecided
                    model = raw.decode("utf-8")
                    span = (pos + 1, value_end - 1)
            elif key == b"stream":
                literal = body[pos:value_end]
                if literal == b"true":
                    stream = True
                elif literal in (b"false", b"null"):
                    stream = False
                else:
                    deferred = InvalidRequest("'stream' must be a boolean", param="stream")
            elif key == b"user":
                user = body[pos:value_end]
            elif key == b"metadata":
                metadata = body[pos:value_end]
            elif key == b"max_tokens":
                max_tokens = _token_cap(body[pos:value_end])
            elif key == b"max_completion_tokens":
                max_completion_tokens = _token_cap(body[pos:value_end])
            elif key == b"n":  # the choices asked for
                choices = _token_cap(body[pos:value_end])
            elif b"\\" in key:
                raise _Undecided  # an escaped key might spell "model"
            pos = _skip_ws(body, value_end)
            if pos < len(body) and body[pos] == 0x2C:  # ","
                pos = _skip_ws(body, pos + 1)
                continue
            if pos < len(body) and body[pos] == 0x7D:
                pos += 1
                break
            raise InvalidRequest("request body is not valid JSON")
    if _skip_ws(body, pos) != len(body):
        raise InvalidRequest("request body is not valid JSON")
    if deferred is not None:
        raise deferred
    cap = max_completion_tokens if max_completion_tokens >= 0 else max_tokens if max_tokens >= 0 else 0
    return ScanResult(model, stream, body, span, None, user, metadata, _all_choices(cap, choices))


MAX_TOKEN_CAP = 999_999_999  # a token cap read from a body: a reservation, not a count


def _token_cap(literal):
    """A token cap's value: a JSON integer of digits, capped at MAX_TOKEN_CAP; -1 for anything else."""
    if not literal.isdigit():
        return -1
    return min(int(literal.lstrip(b"0")[:10] or b"0"), MAX_TOKEN_CAP)  # ten digits exceed the cap


def _token_cap_of(document):
    choices = document.get("n")
    for name in ("max_completion_tokens", "max_tokens"):
        value = document.get(name)
        if type(value) is int and value >= 0:
            return _all_choices(min(value, MAX_TOKEN_CAP), min(choices, MAX_TOKEN_CAP) if type(choices) is int and choices > 1 else -1)
    return 0


def _all_choices(cap, choices):
    """The cap of every choice together: ``n`` answers of up to ``cap`` tokens each, when ``n`` is
    a count above one (a tokens-per-minute reservation, as OpenAI's own estimate counts them)."""
    if choices > 1 and cap > 0:
        cap *= choices
    return min(cap, MAX_TOKEN_CAP)


def _scan_with_orjson(body):
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise unreadable_json(error) from None
    if not isinstance(document, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = document.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("'model' must be a string", param="model")
    stream = document.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    user = orjson.dumps(document["user"]) if "user" in document else None
    metadata = orjson.dumps(document["metadata"]) if "metadata" in document else None
    return ScanResult(model, bool(stream), orjson.dumps(document), None, document, user, metadata, _token_cap_of(document))


# The model name is echoed in a response header (x-alloy-model) and, for some providers, placed
# in the upstream's URL: it must be printable text of a sane length, whatever JSON allowed. An empty
# name is refused too: it names no model, and a wildcard route would otherwise forward it.
MAX_MODEL_BYTES = 256


def _check_model(model):
    if not model or len(model) > MAX_MODEL_BYTES or not model.isprintable() or len(model.encode()) > MAX_MODEL_BYTES:
        raise InvalidRequest(
            f"'model' must be non-empty printable text without control characters, at most {MAX_MODEL_BYTES} bytes",
            param="model",
        )


def scan_body(body):
    """``body``: bytes, or a memoryview of a read (``Request.body_buffer``), which the result keeps
    to forward (no copy) unless orjson had to decide."""
    text = body if type(body) is bytes else bytes(body)
    try:
        result = _scan(text)
    except _Undecided:
        result = _scan_with_orjson(text)
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    else:
        result.body = body
    if result.model is not None:
        _check_model(result.model)
    return result


def rewrite_model(result, model):
    if result._parsed is not None:
        document = dict(result._parsed)
        document["model"] = model
        return orjson.dumps(document)
    body = result.body if type(result.body) is bytes else bytes(result.body)  # or a view of a read
    if result._span is None:
        # No model key at all: add one at the front of the object.
        brace = body.index(b"{")
        inner_empty = body[brace + 1 :].strip(_WHITESPACE).startswith(b"}")
        separator = b"" if inner_empty else b","
        return body[: brace + 1] + b'"model":' + orjson.dumps(model) + separator + body[brace + 1 :]
    start, end = result._span
    encoded = orjson.dumps(model)[1:-1]
    return body[:start] + encoded + body[end:]


def rewrite_model_parts(result, model):
    if result._parsed is not None or result._span is None:
        return [rewrite_model(result, model)]
    start, end = result._span
    view = memoryview(result.body)
    return [view[:start], orjson.dumps(model)[1:-1], view[end:]]


def find_usage(data):
    """The last ``"usage": {...}`` object in ``data`` (the tail of a JSON answer, or a stream's last
    events), decoded; None when there is none. ``"usage"`` cannot occur inside a JSON string with
    its quotes unescaped, so the last match is the answer's own (OpenAI puts it after the choices,
    and a stream's usage chunk is its last before ``[DONE]``); a ``null`` usage is skipped."""
    pos = data.rfind(b'"usage"')
    while pos >= 0:
        value = _skip_ws(data, pos + 7)
        if value < len(data) and data[value] == 0x3A:  # ":"
            value = _skip_ws(data, value + 1)
            if value < len(data) and data[value] == 0x7B:  # "{"
                try:
                    return orjson.loads(data[value : _skip_value(data, value)])
                except (InvalidRequest, orjson.JSONDecodeError):
                    return None
        pos = data.rfind(b'"usage"', 0, pos)
    return None


# ============================================================================================
# Accounting: a virtual key's live limits, and the access log's line
# ============================================================================================

# A counters slot (``alloy.governance.counters`` owns the table): the scope's id digest, the
# requests-per-minute window's start and count, the tokens-per-minute window's start and count,
# requests in flight, the budget period's number and its spend (nano-USD), "spend loaded".
COUNTER_SLOT = struct.Struct("<16s d q d q q q q q")
LIMIT_WINDOW = 60.0
RATELIMIT_LINES = {  # limit -> (OpenAI's three lines, where its window's start and count are in a slot)
    "rpm": (b"x-ratelimit-limit-requests: %d\r\nx-ratelimit-remaining-requests: %d\r\nx-ratelimit-reset-requests: %s\r\n", 1, 2),
    "tpm": (b"x-ratelimit-limit-tokens: %d\r\nx-ratelimit-remaining-tokens: %d\r\nx-ratelimit-reset-tokens: %s\r\n", 3, 4),
}


class LimitCounters:
    """A keyed request's limits against the counters memory, under ``flock`` on ``fd`` (-1: one
    process, no lock). ``scopes`` describe a key's scopes (its own, its team's), each
    ``(slot offset, rpm, tpm, max_parallel, budget, budget period, period anchor)``, 0 for no limit;
    ``reported`` is ``KeyIdentity.reported``: ((kind, ((scope index, limit), ...)), ...)."""

    def __init__(self, memory, fd=-1):
        self.memory = memory
        self.fd = fd

    def release(self):
        """Let the memory map close (the compiled core holds a buffer of it until then)."""
        self.memory = None

    def take(self, scopes, reported, reserve, now, wall):
        """Check every limit of every scope, then count the request in all of them, or in none.

        Passed: ``(None, windows, lines)``: each scope's token window start (what ``give_back``
        reconciles against) and the ``x-ratelimit-*`` lines. Refused (nothing written):
        ``(what, scope index, figure, tokens, lines)``, ``what`` one of "requests", "tokens",
        "parallel", "budget"; ``figure`` the seconds until the window resets (the spend of the
        period, for a budget); ``tokens`` the scope's tokens this minute."""
        memory = self.memory
        rows = []
        self._lock()
        try:
            for index, (offset, rpm, tpm, parallel, budget, period, anchor) in enumerate(scopes):
                digest, rpm_start, requests, tpm_start, tokens, inflight, number, spend, loaded = COUNTER_SLOT.unpack_from(memory, offset)
                # The windows are anchored at their first request and last a minute.
                if now - rpm_start >= LIMIT_WINDOW:
                    rpm_start, requests = now, 0
                if now - tpm_start >= LIMIT_WINDOW:
                    tpm_start, tokens = now, 0
                current = int((wall - anchor) // period) if period else 0
                if number != current:  # a new budget period: nothing spent yet
                    number, spend = current, 0
                refused = None
                if rpm and requests >= rpm:
                    refused = ("requests", rpm_start + LIMIT_WINDOW - now)
                elif tpm and tokens + reserve > tpm:
                    refused = ("tokens", tpm_start + LIMIT_WINDOW - now)
                elif parallel and inflight >= parallel:
                    refused = ("parallel", 1.0)
                elif budget and spend >= budget:
                    refused = ("budget", spend)
                if refused is not None:
                    stored = [COUNTER_SLOT.unpack_from(memory, scope[0]) for scope in scopes]
                    return (refused[0], index, refused[1], tokens, ratelimit_lines(reported, stored, now))
                rows.append((digest, rpm_start, requests + 1, tpm_start, tokens + reserve, inflight + 1, number, spend, loaded))
            for scope, row in zip(scopes, rows):
                COUNTER_SLOT.pack_into(memory, scope[0], *row)
            return (None, tuple(row[3] for row in rows), ratelimit_lines(reported, rows, now))
        finally:
            self._unlock()

    def give_back(self, scopes, windows, reserved, used, cost, wall):
        """The request ended: its tokens become what it used (when the token window it reserved
        in is still the current one), it leaves the in-flight count, its cost joins the spend."""
        self._settle(scopes, windows, reserved, used, cost, wall)

    def spent(self, scopes, cost, wall):
        """A cost spent where the limits were decided elsewhere (Redis): only the spend, so that
        these counters, should they decide again (Redis unreachable), know what was spent."""
        self._settle(scopes, None, 0, 0, cost, wall)

    def _settle(self, scopes, windows, reserved, used, cost, wall):
        """An ended request's account; ``windows`` None: its cost alone (it was counted elsewhere,
        nothing to reconcile, nothing in flight here). The spend restarts with a new period."""
        memory = self.memory
        self._lock()
        try:
            for (offset, _, _, _, _, period, anchor), window in zip(scopes, (None,) * len(scopes) if windows is None else windows):
                digest, rpm_start, requests, tpm_start, tokens, inflight, number, spend, loaded = COUNTER_SLOT.unpack_from(memory, offset)
                if windows is not None:
                    if tpm_start == window and used != reserved:
                        tokens = max(tokens + used - reserved, 0)
                    inflight = max(inflight - 1, 0)
                current = int((wall - anchor) // period) if period else 0
                if number != current:
                    number, spend = current, 0
                COUNTER_SLOT.pack_into(memory, offset, digest, rpm_start, requests, tpm_start, tokens, inflight, number, spend + cost, loaded)
        finally:
            self._unlock()

    def _lock(self):
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def _unlock(self):
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


MAX_SPEND = 2**62  # nano-USD: what one request may add to a counter (4.6 billion USD)


def usage_cost(usage, price):
    """What an answer cost, in one call: (tokens in, out, cached in) as ``alloy.usage.tokens_of``
    reads them from its ``usage``, the cost in USD at ``price`` (USD per million input, output and
    cached input tokens; None: unpriced, 0) as ``Prices.cost`` computes it, and that cost in whole
    nano-USD (rounded half to even, as the counters keep it). The compiled twin does it in C
    for the common case (a dict, a price of three floats) and in these lines otherwise."""
    from alloy.usage import tokens_of

    tokens_in, tokens_out, tokens_cached = tokens_of(usage)
    if price is None:
        return tokens_in, tokens_out, tokens_cached, 0.0, 0
    uncached = max(tokens_in - tokens_cached, 0)
    cost = (uncached * price[0] + tokens_out * price[1] + tokens_cached * price[2]) / 1_000_000
    # (a count believed up to MAX_TOKENS at an absurd price: held within the counters' int64)
    return tokens_in, tokens_out, tokens_cached, cost, max(min(int(round(cost * 1_000_000_000)), MAX_SPEND), -MAX_SPEND)


def untracked(row):
    """``row``, a tuple a listener keeps until its next flush (a ledger row, an access-log entry).
    The compiled twin takes it out of the cyclic collector's sight when nothing in it can hold a
    reference back (only strings, numbers, bytes, None and such tuples), which the collector would
    otherwise find out for itself at its next pass, reading every field of every such row when they
    are long out of the CPU's caches. Python cannot untrack an object: here it is returned as is."""
    return row


def ledger_stored(batch, columns, metadata_json):
    """The ledger's rows as stored (``alloy.governance.ledger``), converted off the loop by its
    writer thread. An ended call's row comes raw from the finish listener, which only copies
    references: the path and tags as bytes, the latency in seconds, the answer's header lines for
    its request id (``x-request-id: ...`` first), the metadata held as a document, "" for an empty
    text (stored as NULL). ``columns`` says where those five are; ``metadata_json`` turns a held
    document into its stored text. Tags are read as UTF-8 (clients send ``x-alloy-tags: équipe``;
    a byte that is not UTF-8 becomes U+FFFD), at most 256 characters. A row whose path is already text (a refusal group's) is stored
    as it is."""
    path_at, latency_at, tags_at, id_at, metadata_at = columns
    stored = []
    for row in batch:
        path = row[path_at]
        if type(path) is not bytes:
            stored.append(row)
            continue
        fields = list(row)
        fields[path_at] = path.decode("latin-1")
        fields[latency_at] = round(row[latency_at] * 1_000_000) / 1000  # ms, 3 decimals, half to even
        tags = row[tags_at]
        fields[tags_at] = "" if tags is None else tags[:1024].decode("utf-8", "replace")[:256]
        id_line = row[id_at]
        fields[id_at] = id_line[14 : id_line.find(b"\r\n")].decode("latin-1") if id_line else ""
        held = row[metadata_at]
        fields[metadata_at] = "" if held is None else metadata_json(held) or ""
        stored.append(fields)
    return stored


def ratelimit_lines(reported, rows, now):
    """OpenAI's ``x-ratelimit-*`` lines, each trio from the tightest scope (the least remaining;
    the first on a tie). A window that is over has all of its limit left. ``rows``: each scope's
    counters as a slot holds them (index 1 to 4: the requests window's start and count, the tokens
    window's start and count)."""
    lines = b""
    for kind, limits in reported:
        form, start_at, used_at = RATELIMIT_LINES[kind]
        best = None
        for index, limit in limits:
            row = rows[index]
            if now - row[start_at] >= LIMIT_WINDOW:
                remaining, reset = limit, 0.0
            else:
                remaining, reset = max(limit - row[used_at], 0), row[start_at] + LIMIT_WINDOW - now
            if best is None or remaining < best[1]:
                best = (limit, remaining, reset)
        lines += form % (best[0], best[1], ratelimit_reset(best[2]))
    return lines


def ratelimit_reset(seconds):
    """OpenAI's spelling of a reset time: ``250ms``, ``12s``, ``1m0s``."""
    if seconds < 1:
        return b"%dms" % int(seconds * 1000)
    whole = int(seconds + 0.999)  # whole seconds, rounded up: 59.5 s is "1m0s", never "60s"
    if whole < 60:
        return b"%ds" % whole
    return b"%dm%ds" % divmod(whole, 60)


_clock = [-1, ""]  # the last whole second formatted, and its text: most lines of a flush share it


def _access_fields(entry, offset):
    """An access-log entry (``AccessLog.record``'s tuple) as the line's fields in order, those that
    apply; ``offset`` turns its monotonic clock reads into wall-clock time."""
    (ended, id_line, peer, key, method, path, model, stream, served, provider, status, count, bytes_in,
     arrived, sent, head, error, usage, bytes_out, first_event) = entry  # fmt: skip
    when = ended + offset
    second = int(when)
    if second != _clock[0]:
        _clock[0], _clock[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    out = {"time": "%s.%06dZ" % (_clock[1], (when - second) * 1e6)}
    if id_line:
        out["request_id"] = id_line[14 : id_line.find(b"\r\n")].decode("latin-1")  # stages append lines
    if peer:
        out["client"] = "%s:%s" % peer[:2] if type(peer) is tuple else str(peer)
    if key is not None:
        out["key"] = key
    if method is not None:  # (none for bytes the HTTP parser refused)
        out["method"] = method.decode("latin-1")
    if path is not None:
        out["path"] = path.decode("utf-8", "replace")
    if model is not None:
        out["model"] = model
    if served is not None:
        out["served_model"] = served
    if provider is not None:  # also for a passed-through call, which names no model
        out["provider"] = provider
    out["status"] = status
    out["attempts"] = count
    if stream is not None:
        out["stream"] = stream
    out["bytes_in"] = bytes_in
    out["bytes_out"] = bytes_out
    timed = head and head >= sent
    if timed:
        out["ttfb_ms"] = int((head - sent) * 1e6) / 1e3
    if arrived is not None:
        if first_event:
            out["ttft_ms"] = int((first_event - arrived) * 1e6) / 1e3
        out["duration_ms"] = int((ended - arrived) * 1e6) / 1e3
        if timed and count == 1 and error is None:
            out["overhead_us"] = int((sent - arrived if stream else sent - arrived + ended - head) * 1e6)
    if usage is not None:
        prompt, completion = usage
        if prompt is not None:
            out["prompt_tokens"] = prompt
        if completion is not None:
            out["completion_tokens"] = completion
    if error is not None:
        out["error"], out["error_code"] = error
    return out


def access_json_line(entry, offset):
    """The access log's JSON line for ``entry`` (``_access_fields``, one object and a newline)."""
    return orjson.dumps(_access_fields(entry, offset)) + b"\n"



class SlotObserver:
    """Adds one ended call's status, latencies, attempts and retries to a metrics slot: a flat list
    (``alloy.observability.metrics``): counts by status class at ``status // 100 % 10``, then
    histograms (bucket ``i`` counts observations in (bound i-1, bound i], the last one above every
    bound), then sums. ``layout``: the indexes of the total, ttfb, overhead and ttft histograms,
    attempts, retries, the four sums, and the slot's size."""

    def __init__(self, latency_bounds, overhead_bounds, layout):
        self.latency = tuple(latency_bounds)
        self.overhead = tuple(overhead_bounds)
        (self.total, self.ttfb, self.overhead_at, self.ttft, self.attempts, self.retries,
         self.total_sum, self.ttfb_sum, self.overhead_sum, self.ttft_sum, self.size) = layout  # fmt: skip

    def observe(self, slot, call, stream):
        if len(slot) != self.size:
            raise ValueError("a metrics slot of another layout")
        slot[call.status // 100 % 10] += 1
        arrived = call.arrived
        ended = call.ended_at
        elapsed = ended - arrived
        slot[self.total + bisect_left(self.latency, elapsed)] += 1
        slot[self.total_sum] += elapsed
        count = call.count
        slot[self.attempts] += count
        head = call.head_at
        if head:
            sent = call.sent_at
            if head >= sent:  # the upstream's time to first byte, then the gateway's own time
                waited = head - sent
                slot[self.ttfb + bisect_left(self.latency, waited)] += 1
                slot[self.ttfb_sum] += waited
                if count == 1 and call.error is None:
                    own = sent - arrived if stream else sent - arrived + ended - head
                    slot[self.overhead_at + bisect_left(self.overhead, own)] += 1
                    slot[self.overhead_sum] += own
        first_event = call.first_event_at
        if first_event:  # a stream: the time to its first event (first token) at the client
            waited = first_event - arrived
            slot[self.ttft + bisect_left(self.latency, waited)] += 1
            slot[self.ttft_sum] += waited
        if count > 1:
            # A resend after the keep-alive race is not a retry (alloy.attempts): the upstream
            # closed an idle connection under the request, which it never saw.
            attempts = call.attempts
            slot[self.retries] += count - 1 - (attempts is not None and attempts.resent)

# ============================================================================================
# Routing table
# ============================================================================================


def _glob_match(pattern_parts, name):
    """``pattern_parts`` is the pattern split on "*"; True when ``name`` matches."""
    first, *middle, last = pattern_parts
    if not name.startswith(first) or not name.endswith(last) or len(name) < len(first) + len(last):
        return False
    pos = len(first)
    limit = len(name) - len(last)
    for part in middle:
        found = name.find(part, pos, limit)
        if found < 0:
            return False
        pos = found + len(part)
    return True


class RouteTable:
    """See ``alloy/_core.pyi``."""

    def __init__(self):
        self._exact = {}
        self._prefixes = {}
        self._wildcards = []  # (literal length, insertion order, parts, target), best first

    def add_exact(self, name, target):
        self._exact[name] = target

    def add_prefix(self, prefix, target):
        self._prefixes[prefix] = target

    def add_wildcard(self, pattern, target):
        parts = pattern.split("*")
        literal = len(pattern) - (len(parts) - 1)
        self._wildcards.append((-literal, len(self._wildcards), parts, target))
        self._wildcards.sort(key=lambda entry: entry[:2])

    def lookup(self, model):
        target = self._exact.get(model)
        if target is not None:
            return target, model
        prefix, slash, rest = model.partition("/")
        if slash and rest:
            target = self._prefixes.get(prefix)
            if target is not None:
                return target, rest
        for _, _, parts, target in self._wildcards:
            if len(parts) == 1:
                if parts[0] == model:
                    return target, model
            elif _glob_match(parts, model):
                return target, model
        return None



# ============================================================================================
# The process: the C library's allocator, the open-file limit
# ============================================================================================

# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _glibc():
    """The C library's symbols as this process has them, or None where they are not glibc's.
    ``ctypes.util.find_library`` would import shutil, tempfile and random to look for a file."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError, TypeError):  # no dlopen(NULL)
        return None


def tune_allocator(heap_up_to, trim_above):
    """See ``alloy/_core.pyi``."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, heap_up_to)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_above))


def trim_heap():
    """See ``alloy/_core.pyi``."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def raise_open_file_limit():
    """See ``alloy/_core.pyi``."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return True
    except (ImportError, ValueError, OSError):
        return False
