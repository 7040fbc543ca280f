# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Alloy's compiled core: HTTP/1.1 request parsing, upstream response parsing, response framing,
SSE splitting, JSON body scanning and the routing table.

``alloy/_core.pyi`` is the contract and ``alloy/_pycore.py`` the readable twin that states each rule
with its RFC section; this file implements the same rules over raw ``char*`` scans. Sections are in
the same order as the twin's. The parsers never call back into Python per header: one ``feed`` call
returns complete results.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memchr, memcmp, memcpy

import orjson

from alloy.errors import (
    BodyTooLarge,
    HeadersTooLarge,
    InvalidRequest,
    ProtocolError,
    UnsupportedTransferCoding,
    UnsupportedVersion,
    UpstreamProtocolError,
)
from alloy.headers import HOP_BY_HOP, STATUS_REASONS


cdef extern from "string.h":
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen) nogil


# ============================================================================================
# Shared character classes (RFC 9110 section 5.6.2 and 5.5); see the twin for the reasoning
# ============================================================================================

cdef unsigned char TCHAR[256]
cdef unsigned char VALUE_BAD[256]
cdef unsigned char TARGET_OK[256]
cdef signed char HEXVAL[256]
cdef unsigned char LITERAL[256]
cdef unsigned char LOWER[256]


cdef void _init_tables():
    cdef int c
    for c in range(256):
        TCHAR[c] = 0
        VALUE_BAD[c] = 1 if (c < 0x20 and c != 0x09) or c == 0x7F else 0
        TARGET_OK[c] = 1 if (0x21 <= c < 0x7F) or c >= 0x80 else 0
        HEXVAL[c] = -1
        LITERAL[c] = 0
        LOWER[c] = c + 32 if 0x41 <= c <= 0x5A else c
    for c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        TCHAR[c] = 1
    for c in range(10):
        HEXVAL[0x30 + c] = c
    for c in range(6):
        HEXVAL[0x61 + c] = 10 + c
        HEXVAL[0x41 + c] = 10 + c
    for c in b"0123456789+-.eEtruefalsn":
        LITERAL[c] = 1


_init_tables()

cdef bytes CRLF = b"\r\n"
cdef const char *HEXDIGITS = b"0123456789abcdef"
cdef bytes EMPTY = b""
cdef bytes B_CHUNKED = b"chunked"
cdef bytes B_CLOSE = b"close"
cdef bytes B_KEEP_ALIVE = b"keep-alive"
cdef bytes H_CONTENT_LENGTH = b"content-length"
cdef bytes H_TRANSFER_ENCODING = b"transfer-encoding"
cdef bytes H_HOST = b"host"
cdef bytes H_CONNECTION = b"connection"
cdef bytes H_EXPECT = b"expect"
cdef bytes COMMA_SP = b", "
for _name in (H_CONTENT_LENGTH, H_TRANSFER_ENCODING, H_HOST, H_CONNECTION, H_EXPECT):
    _header_name(_name, len(_name))
cdef object _HOP_BY_HOP = HOP_BY_HOP
cdef object _ProtocolError = ProtocolError
cdef object _UpstreamProtocolError = UpstreamProtocolError
cdef object _BodyTooLarge = BodyTooLarge
cdef object _InvalidRequest = InvalidRequest


cdef inline bint _is_token(const char *p, Py_ssize_t n):
    cdef Py_ssize_t i
    if n == 0:
        return False
    for i in range(n):
        if not TCHAR[<unsigned char>p[i]]:
            return False
    return True


cdef inline bint _ieq(const char *p, Py_ssize_t n, const char *word, Py_ssize_t wn):
    """Case-insensitive comparison of ``p[:n]`` with the lower-case ``word``."""
    cdef Py_ssize_t i
    if n != wn:
        return False
    for i in range(n):
        if LOWER[<unsigned char>p[i]] != <unsigned char>word[i]:
            return False
    return True


cdef inline bytes _lower_bytes(const char *p, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef char *o = PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = <char>LOWER[<unsigned char>p[i]]
    return out


cdef int _check_line_endings(const char *p, Py_ssize_t n, object error) except -1:
    """Every CR must start a CRLF and every LF end one (RFC 9112 section 2.2: no bare CR/LF).
    Jumps from hit to hit with memchr: a head of a few hundred bytes has a dozen line ends."""
    cdef const char *hit = p
    cdef const char *end = p + n
    while True:
        hit = <const char *>memchr(hit, 13, end - hit)
        if hit == NULL:
            break
        if hit + 1 >= end or hit[1] != 10:
            raise error("bare CR or LF in message head")
        hit += 2
    hit = p
    while True:
        hit = <const char *>memchr(hit, 10, end - hit)
        if hit == NULL:
            break
        if hit == p or (hit - 1)[0] != 13:
            raise error("bare CR or LF in message head")
        hit += 1
    return 0


cdef inline Py_ssize_t _find_crlf(const char *p, Py_ssize_t start, Py_ssize_t end):
    """Index of the next CRLF in ``p[start:end]``, or -1 (memchr is far cheaper than memmem)."""
    cdef const char *hit
    while start < end:
        hit = <const char *>memchr(p + start, 10, end - start)
        if hit == NULL:
            return -1
        if hit > p + start and (hit - 1)[0] == 13:
            return hit - p - 1
        start = hit - p + 1
    return -1


# Header names seen recently, lower-cased, so a repeated name costs no allocation and its hash is
# already cached for the dict insert. Direct-mapped on a hash of the name; a miss just replaces.
cdef PyObject *NAME_CACHE[512]


cdef bytes _header_name(const char *p, Py_ssize_t n):
    cdef unsigned int h = <unsigned int>n
    cdef Py_ssize_t i
    cdef PyObject *cached
    cdef bytes name
    for i in range(n):
        h = h * 33 + LOWER[<unsigned char>p[i]]
    h &= 511
    cached = NAME_CACHE[h]
    if cached != NULL and PyBytes_GET_SIZE(<bytes>cached) == n and _ieq(p, n, PyBytes_AS_STRING(<bytes>cached), n):
        return <bytes>cached
    name = _lower_bytes(p, n)
    if n <= 64:
        Py_INCREF(name)
        Py_XDECREF(NAME_CACHE[h])
        NAME_CACHE[h] = <PyObject *>name
    return name


cdef Py_ssize_t _field_bounds(const char *p, Py_ssize_t n, object error, Py_ssize_t *vs_out, Py_ssize_t *ve_out) except -1:
    """Validate one ``name: value`` line; return the name's length and set the value's bounds
    (surrounding whitespace excluded). See the twin for the RFC rules."""
    cdef const char *colon
    cdef Py_ssize_t name_len, vs, ve, i
    if p[0] == 32 or p[0] == 9:
        raise error("obsolete line folding in header field")
    colon = <const char *>memchr(p, 58, n)
    if colon == NULL:
        raise error("header line without a colon")
    name_len = colon - p
    if not _is_token(p, name_len):
        raise error("invalid header field name")
    vs = name_len + 1
    ve = n
    while vs < ve and (p[vs] == 32 or p[vs] == 9):
        vs += 1
    while ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
        ve -= 1
    for i in range(vs, ve):
        if VALUE_BAD[<unsigned char>p[i]]:
            raise error("control character in header field value")
    vs_out[0] = vs
    ve_out[0] = ve
    return name_len


cdef tuple _parse_field_line(const char *p, Py_ssize_t n, object error):
    """One ``name: value`` line -> (lower-cased name, trimmed value)."""
    cdef Py_ssize_t vs, ve
    cdef Py_ssize_t name_len = _field_bounds(p, n, error, &vs, &ve)
    return (_header_name(p, name_len), PyBytes_FromStringAndSize(p + vs, ve - vs))


cdef int _parse_version(const char *p, Py_ssize_t n, object error, object unsupported) except -1:
    if n == 8 and memcmp(p, b"HTTP/1.", 7) == 0:
        if p[7] == 49:
            return 11
        if p[7] == 48:
            return 10
    if n == 8 and memcmp(p, b"HTTP/", 5) == 0 and 48 <= p[5] <= 57 and p[6] == 46 and 48 <= p[7] <= 57:
        raise unsupported("HTTP version not supported")
    raise error("invalid HTTP version")


cdef void _connection_flags(bytes value, bint *has_close, bint *has_keep_alive):
    """Scan a Connection field value for the ``close`` and ``keep-alive`` tokens."""
    cdef const char *p = PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    cdef Py_ssize_t start = 0, end, s, e
    while start <= n:
        end = start
        while end < n and p[end] != 44:
            end += 1
        s = start
        e = end
        while s < e and p[s] in b" \t":
            s += 1
        while e > s and p[e - 1] in b" \t":
            e -= 1
        if _ieq(p + s, e - s, b"close", 5):
            has_close[0] = True
        elif _ieq(p + s, e - s, b"keep-alive", 10):
            has_keep_alive[0] = True
        start = end + 1


cdef long long _parse_content_length(list values, object error) except -2:
    cdef long long length = -1, number
    cdef bytes raw
    cdef const char *p
    cdef Py_ssize_t n, start, end, s, e, i
    for raw in values:
        p = PyBytes_AS_STRING(raw)
        n = PyBytes_GET_SIZE(raw)
        start = 0
        while start <= n:
            end = start
            while end < n and p[end] != 44:
                end += 1
            s = start
            e = end
            while s < e and (p[s] == 32 or p[s] == 9):
                s += 1
            while e > s and (p[e - 1] == 32 or p[e - 1] == 9):
                e -= 1
            if e == s or e - s > 18:
                raise error("invalid Content-Length")
            number = 0
            for i in range(s, e):
                if not (48 <= p[i] <= 57):
                    raise error("invalid Content-Length")
                number = number * 10 + (p[i] - 48)
            if length != -1 and number != length:
                raise error("conflicting Content-Length values")
            length = number
            start = end + 1
    return length


cdef bint _codings_are(list values, bint only_chunked):
    """Transfer-Encoding check: the joined codings are exactly ``chunked`` (requests) or end in
    ``chunked`` (responses)."""
    cdef bytes joined = b",".join(values)
    cdef list codings = [c.strip(b" \t").lower() for c in joined.split(b",")]
    if only_chunked:
        return codings == [B_CHUNKED]
    return codings[len(codings) - 1] == B_CHUNKED


# --- chunked decoding (RFC 9112 section 7.1), shared by both parsers -------------------------

cdef enum:
    CH_SIZE = 0
    CH_DATA = 1
    CH_DATA_CRLF = 2
    CH_TRAILER = 3
    MAX_CHUNK_LINE = 4096


cdef class _ChunkedDecoder:
    cdef int state
    cdef long long remaining
    cdef object error
    cdef bint finished

    def __cinit__(self, error):
        self.error = error
        self.state = CH_SIZE
        self.remaining = 0
        self.finished = False

    cdef Py_ssize_t feed(self, const char *p, Py_ssize_t pos, Py_ssize_t end, list pieces) except -1:
        """Consume from ``p[pos:end]``; append body pieces; set ``finished`` at the end of the body."""
        cdef Py_ssize_t eol, take, s, e, i
        cdef long long size
        while pos < end:
            if self.state == CH_SIZE:
                eol = _find_crlf(p, pos, end)
                if eol < 0:
                    if end - pos > MAX_CHUNK_LINE:
                        raise self.error("chunk size line too long")
                    break
                e = pos
                while e < eol and p[e] != 59:
                    e += 1
                while e > pos and (p[e - 1] == 32 or p[e - 1] == 9):
                    e -= 1
                if e == pos or e - pos > 16:
                    raise self.error("invalid chunk size")
                size = 0
                for i in range(pos, e):
                    if HEXVAL[<unsigned char>p[i]] < 0:
                        raise self.error("invalid chunk size")
                    size = (size << 4) | HEXVAL[<unsigned char>p[i]]
                if size < 0:
                    raise self.error("invalid chunk size")
                self.remaining = size
                pos = eol + 2
                self.state = CH_DATA if size else CH_TRAILER
            elif self.state == CH_DATA:
                take = end - pos
                if take > self.remaining:
                    take = <Py_ssize_t>self.remaining
                PyList_Append(pieces, PyBytes_FromStringAndSize(p + pos, take))
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = CH_DATA_CRLF
            elif self.state == CH_DATA_CRLF:
                if end - pos < 2:
                    break
                if p[pos] != 13 or p[pos + 1] != 10:
                    raise self.error("chunk data not followed by CRLF")
                pos += 2
                self.state = CH_SIZE
            else:
                eol = _find_crlf(p, pos, end)
                if eol < 0:
                    if end - pos > MAX_CHUNK_LINE:
                        raise self.error("trailer line too long")
                    break
                s = pos
                pos = eol + 2
                if eol == s:
                    self.finished = True
                    return pos
                for i in range(s, eol):
                    if p[i] == 13 or p[i] == 10:
                        raise self.error("bare CR or LF in trailer")
                _parse_field_line(p + s, eol - s, self.error)
        return pos


# ============================================================================================
# HTTP/1.1 request parsing (RFC 9112)
# ============================================================================================

cdef class Request:
    cdef readonly bytes method
    cdef readonly bytes target
    cdef readonly int version
    cdef readonly dict headers
    cdef readonly bytes body
    cdef readonly bint keep_alive

    def __repr__(self):
        return f"<Request {self.method.decode()} {self.target.decode(errors='replace')}>"


cdef enum:
    S_HEAD = 0
    S_BODY_LENGTH = 1
    S_BODY_CHUNKED = 2
    S_DEAD = 3


cdef class RequestParser:
    cdef Py_ssize_t _max_header
    cdef long long _max_body
    cdef bytes _buf
    cdef int _state
    cdef Py_ssize_t _scan_from
    cdef Request _current
    cdef long long _remaining
    cdef list _body_parts
    cdef long long _body_size
    cdef _ChunkedDecoder _chunked
    cdef bint _expect_continue

    def __init__(self, Py_ssize_t max_header_bytes=65536, long long max_body_bytes=33554432):
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._buf = EMPTY
        self._state = S_HEAD
        self._scan_from = 0
        self._current = None
        self._body_parts = []
        self._body_size = 0
        self._chunked = None
        self._expect_continue = False

    @property
    def expect_continue(self):
        return self._expect_continue

    @property
    def in_progress(self):
        return PyBytes_GET_SIZE(self._buf) > 0 or self._state != S_HEAD

    def feed(self, bytes data):
        if self._state == S_DEAD:
            raise _ProtocolError("connection is no longer readable after an error")
        try:
            return self._feed(data)
        except ProtocolError:
            self._state = S_DEAD
            raise

    cdef list _feed(self, bytes data):
        cdef bytes buf
        cdef list done = []
        cdef const char *p
        cdef const char *hit
        cdef Py_ssize_t n, pos = 0, end, search, take
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + data
            self._buf = EMPTY
        else:
            buf = data
        p = PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
        while True:
            if self._state == S_HEAD:
                while n - pos >= 2 and p[pos] == 13 and p[pos + 1] == 10:
                    pos += 2
                search = self._scan_from - 3
                if search < pos:
                    search = pos
                hit = NULL
                if n - search >= 4:
                    hit = <const char *>memmem(p + search, n - search, b"\r\n\r\n", 4)
                if hit == NULL:
                    self._check_incomplete_head(p, pos, n)
                    break
                end = hit - p
                if end - pos + 4 > self._max_header:
                    raise HeadersTooLarge("request header section too large")
                self._start_request(p + pos, end - pos)
                pos = end + 4
                self._scan_from = 0
            elif self._state == S_BODY_LENGTH:
                take = n - pos
                if take > self._remaining:
                    take = <Py_ssize_t>self._remaining
                if take:
                    if take == n and pos == 0 and not self._body_parts:
                        self._body_parts.append(buf)
                    else:
                        self._body_parts.append(PyBytes_FromStringAndSize(p + pos, take))
                    pos += take
                    self._remaining -= take
                if self._remaining:
                    break
                done.append(self._finish_request())
            else:
                pos = self._feed_chunked(p, pos, n)
                if not self._chunked.finished:
                    break
                done.append(self._finish_request())
            if pos >= n and self._state == S_HEAD:
                break
        if pos < n:
            self._buf = PyBytes_FromStringAndSize(p + pos, n - pos) if pos else buf
        if self._state == S_HEAD:
            self._scan_from = n - pos
        return done

    cdef Py_ssize_t _feed_chunked(self, const char *p, Py_ssize_t pos, Py_ssize_t n) except -1:
        cdef list pieces = []
        cdef bytes piece
        pos = self._chunked.feed(p, pos, n, pieces)
        for piece in pieces:
            self._body_size += PyBytes_GET_SIZE(piece)
            if self._body_size > self._max_body:
                raise _BodyTooLarge("request body too large")
            self._body_parts.append(piece)
        return pos

    cdef int _check_incomplete_head(self, const char *p, Py_ssize_t pos, Py_ssize_t n) except -1:
        if n - pos > self._max_header:
            raise HeadersTooLarge("request header section too large")
        if n - pos >= 2 and (memmem(p + pos, n - pos, b"\n\n", 2) != NULL or memmem(p + pos, n - pos, b"\r\r", 2) != NULL):
            raise _ProtocolError("bare CR or LF in message head")
        return 0

    cdef int _start_request(self, const char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t line_end, sp1, sp2, i, pos, name_len, vs = 0, ve = 0, count
        cdef int version
        cdef bytes method, target, name, value, expects
        cdef object previous
        cdef dict headers = {}
        cdef list content_lengths = None
        cdef list transfer_encodings = None
        cdef int hosts = 0
        cdef bint has_close = False, has_keep_alive = False, keep_alive
        cdef tuple field
        cdef Request request

        _check_line_endings(p, n, _ProtocolError)

        # request-line = method SP request-target SP HTTP-version (RFC 9112 section 3)
        line_end = _find_crlf(p, 0, n)
        if line_end < 0:
            line_end = n
        sp1 = -1
        sp2 = -1
        for i in range(line_end):
            if p[i] == 32:
                if sp1 < 0:
                    sp1 = i
                elif sp2 < 0:
                    sp2 = i
                else:
                    raise _ProtocolError("malformed request line")
        if sp2 < 0:
            raise _ProtocolError("malformed request line")
        if not _is_token(p, sp1):
            raise _ProtocolError("invalid method")
        if sp2 == sp1 + 1:
            raise _ProtocolError("invalid request target")
        for i in range(sp1 + 1, sp2):
            if not TARGET_OK[<unsigned char>p[i]]:
                raise _ProtocolError("invalid request target")
        version = _parse_version(p + sp2 + 1, line_end - sp2 - 1, _ProtocolError, UnsupportedVersion)
        method = PyBytes_FromStringAndSize(p, sp1)
        target = PyBytes_FromStringAndSize(p + sp1 + 1, sp2 - sp1 - 1)

        pos = line_end + 2
        while pos < n:
            line_end = _find_crlf(p, pos, n)
            if line_end < 0:
                line_end = n
            if line_end > pos:
                name_len = _field_bounds(p + pos, line_end - pos, _ProtocolError, &vs, &ve)
                name = _header_name(p + pos, name_len)
                value = PyBytes_FromStringAndSize(p + pos + vs, ve - vs)
                if name is H_CONTENT_LENGTH or name == H_CONTENT_LENGTH:
                    if content_lengths is None:
                        content_lengths = []
                    content_lengths.append(value)
                elif name is H_TRANSFER_ENCODING or name == H_TRANSFER_ENCODING:
                    if transfer_encodings is None:
                        transfer_encodings = []
                    transfer_encodings.append(value)
                elif name is H_HOST or name == H_HOST:
                    hosts += 1
                count = len(headers)
                previous = headers.setdefault(name, value)
                if len(headers) == count:  # the name was already there: join (RFC 9110 5.3)
                    headers[name] = <bytes>previous + COMMA_SP + value
            pos = line_end + 2

        # RFC 9112 section 3.2: exactly one Host in an HTTP/1.1 request.
        if version == 11 and hosts != 1:
            raise _ProtocolError("HTTP/1.1 request needs exactly one Host header")

        previous = headers.get(H_CONNECTION)
        if previous is not None:
            _connection_flags(<bytes>previous, &has_close, &has_keep_alive)
        if version == 11:
            keep_alive = not has_close
        else:
            keep_alive = has_keep_alive and not has_close

        request = Request.__new__(Request)
        request.method = method
        request.target = target
        request.version = version
        request.headers = headers
        request.keep_alive = keep_alive
        self._current = request
        self._body_parts = []
        self._body_size = 0
        previous = headers.get(H_EXPECT)
        self._expect_continue = (
            previous is not None and version == 11
            and _ieq(PyBytes_AS_STRING(previous), PyBytes_GET_SIZE(previous), b"100-continue", 12)
        )

        if transfer_encodings is not None:
            # RFC 9112 section 6.1: CL with TE is refused (smuggling), see the twin.
            if content_lengths is not None:
                raise _ProtocolError("both Content-Length and Transfer-Encoding")
            if version == 10:
                raise _ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if not _codings_are(transfer_encodings, True):
                raise UnsupportedTransferCoding("only Transfer-Encoding: chunked is supported")
            self._chunked = _ChunkedDecoder(_ProtocolError)
            self._state = S_BODY_CHUNKED
        elif content_lengths is not None:
            self._remaining = _parse_content_length(content_lengths, _ProtocolError)
            if self._remaining > self._max_body:
                raise _BodyTooLarge("request body too large")
            self._state = S_BODY_LENGTH
        else:
            self._remaining = 0
            self._state = S_BODY_LENGTH
        return 0

    cdef Request _finish_request(self):
        cdef Request request = self._current
        cdef list parts = self._body_parts
        if len(parts) == 1:
            request.body = parts[0]
        elif not parts:
            request.body = EMPTY
        else:
            request.body = EMPTY.join(parts)
        self._current = None
        self._body_parts = []
        self._chunked = None
        self._state = S_HEAD
        self._expect_continue = False
        return request


# ============================================================================================
# Upstream response parsing
# ============================================================================================

cdef class ResponseHead:
    cdef readonly int status
    cdef readonly int version
    cdef readonly bytes reason
    cdef readonly list headers
    cdef public bint keep_alive
    cdef readonly long long content_length
    cdef readonly bint chunked

    def get(self, bytes name, default=None):
        cdef tuple item
        for item in self.headers:
            if item[0] == name:
                return item[1]
        return default

    def __repr__(self):
        return f"<ResponseHead {self.status}>"


cdef enum:
    R_HEAD = 0
    R_LENGTH = 1
    R_CHUNKED = 2
    R_UNTIL_CLOSE = 3
    R_DONE = 4


cdef class ResponseParser:
    cdef bint _head_request
    cdef Py_ssize_t _max_header
    cdef bytes _buf
    cdef int _state
    cdef long long _remaining
    cdef _ChunkedDecoder _chunked
    cdef ResponseHead _head
    cdef public bint done

    def __init__(self, bint head_request=False, Py_ssize_t max_header_bytes=65536):
        self._head_request = head_request
        self._max_header = max_header_bytes
        self._buf = EMPTY
        self._state = R_HEAD
        self._remaining = 0
        self._chunked = None
        self._head = None
        self.done = False

    def feed(self, bytes data):
        cdef bytes buf
        cdef list out = []
        cdef const char *p
        cdef const char *hit
        cdef Py_ssize_t n, pos = 0, end, take
        cdef ResponseHead head
        if self._state == R_DONE:
            if PyBytes_GET_SIZE(data) and self._head is not None:
                self._head.keep_alive = False
            return out
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + data
            self._buf = EMPTY
        else:
            buf = data
        p = PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
        while pos < n or (self._state == R_LENGTH and self._remaining == 0):
            if self._state == R_HEAD:
                hit = NULL
                if n - pos >= 4:
                    hit = <const char *>memmem(p + pos, n - pos, b"\r\n\r\n", 4)
                if hit == NULL:
                    if n - pos > self._max_header:
                        raise _UpstreamProtocolError("upstream response head too large")
                    break
                end = hit - p
                head = self._parse_head(p + pos, end - pos)
                pos = end + 4
                if head is not None:
                    out.append(head)
            elif self._state == R_LENGTH:
                take = n - pos
                if take > self._remaining:
                    take = <Py_ssize_t>self._remaining
                if take:
                    if take == n:
                        out.append(buf)
                    else:
                        out.append(PyBytes_FromStringAndSize(p + pos, take))
                    pos += take
                    self._remaining -= take
                if self._remaining == 0:
                    self._finish(pos, n)
                    return out
                break
            elif self._state == R_CHUNKED:
                pos = self._chunked.feed(p, pos, n, out)
                if self._chunked.finished:
                    self._finish(pos, n)
                    return out
                break
            else:
                out.append(buf if pos == 0 else PyBytes_FromStringAndSize(p + pos, n - pos))
                pos = n
        if pos < n:
            self._buf = PyBytes_FromStringAndSize(p + pos, n - pos) if pos else buf
        return out

    def feed_eof(self):
        if self._state == R_UNTIL_CLOSE:
            self._state = R_DONE
            self.done = True
            return []
        if self._state == R_DONE:
            return []
        if self._state == R_HEAD:
            raise _UpstreamProtocolError("upstream closed the connection before sending a response")
        raise _UpstreamProtocolError("upstream closed the connection before the body was complete")

    cdef void _finish(self, Py_ssize_t pos, Py_ssize_t n):
        if pos < n:
            self._head.keep_alive = False
        self._buf = EMPTY
        self._state = R_DONE
        self.done = True

    cdef ResponseHead _parse_head(self, const char *p, Py_ssize_t n):
        cdef Py_ssize_t line_end, sp1, sp2, pos, i
        cdef int version, status
        cdef list headers = []
        cdef list content_lengths = None
        cdef list transfer_encodings = None
        cdef bint has_close = False, has_keep_alive = False, keep_alive, chunked
        cdef long long content_length
        cdef tuple field
        cdef bytes name, reason
        cdef ResponseHead head

        _check_line_endings(p, n, _UpstreamProtocolError)
        line_end = _find_crlf(p, 0, n)
        if line_end < 0:
            line_end = n
        sp1 = -1
        for i in range(line_end):
            if p[i] == 32:
                sp1 = i
                break
        if sp1 < 0:
            raise _UpstreamProtocolError("upstream sent an invalid status line")
        sp2 = sp1 + 4
        if sp2 > line_end or (sp2 < line_end and p[sp2] != 32):
            raise _UpstreamProtocolError("upstream sent an invalid status line")
        status = 0
        for i in range(sp1 + 1, sp2):
            if not (48 <= p[i] <= 57):
                raise _UpstreamProtocolError("upstream sent an invalid status line")
            status = status * 10 + (p[i] - 48)
        version = _parse_version(p, sp1, _UpstreamProtocolError, _UpstreamProtocolError)
        reason = PyBytes_FromStringAndSize(p + sp2 + 1, line_end - sp2 - 1) if sp2 < line_end else EMPTY

        pos = line_end + 2
        while pos < n:
            line_end = _find_crlf(p, pos, n)
            if line_end < 0:
                line_end = n
            if line_end > pos:
                field = _parse_field_line(p + pos, line_end - pos, _UpstreamProtocolError)
                headers.append(field)
                name = <bytes>field[0]
                if name == H_CONNECTION:
                    _connection_flags(<bytes>field[1], &has_close, &has_keep_alive)
                elif name == H_CONTENT_LENGTH:
                    if content_lengths is None:
                        content_lengths = []
                    content_lengths.append(field[1])
                elif name == H_TRANSFER_ENCODING:
                    if transfer_encodings is None:
                        transfer_encodings = []
                    transfer_encodings.append(field[1])
            pos = line_end + 2
        if 100 <= status < 200:
            return None  # interim response: wait for the final one

        keep_alive = not has_close if version == 11 else has_keep_alive
        if self._head_request or status == 204 or status == 304:
            content_length = 0
            chunked = False
            self._remaining = 0
            self._state = R_LENGTH
        elif transfer_encodings is not None:
            if not _codings_are(transfer_encodings, False):
                raise _UpstreamProtocolError("unsupported upstream transfer coding")
            content_length = -1
            chunked = True
            self._chunked = _ChunkedDecoder(_UpstreamProtocolError)
            self._state = R_CHUNKED
        elif content_lengths is not None:
            content_length = _parse_content_length(content_lengths, _UpstreamProtocolError)
            chunked = False
            self._remaining = content_length
            self._state = R_LENGTH
        else:
            content_length = -1
            chunked = False
            keep_alive = False
            self._state = R_UNTIL_CLOSE

        head = ResponseHead.__new__(ResponseHead)
        head.status = status
        head.version = version
        head.reason = reason
        head.headers = headers
        head.keep_alive = keep_alive
        head.content_length = content_length
        head.chunked = chunked
        self._head = head
        return head


# ============================================================================================
# Response framing
# ============================================================================================

LAST_CHUNK = b"0\r\n\r\n"

cdef dict _STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, reason) for status, reason in STATUS_REASONS.items()
}


cdef bytes _status_line(int status):
    cdef object line = _STATUS_LINES.get(status)
    if line is None:
        return b"HTTP/1.1 %d \r\n" % status
    return <bytes>line


cdef inline char *_put(char *o, const char *s, Py_ssize_t n):
    memcpy(o, s, n)
    return o + n


cdef inline int _decimal(char *digits, long long value):
    """Write ``value`` in decimal backwards into ``digits[0:20]``; return the digit count."""
    cdef int count = 0
    if value == 0:
        digits[19] = 48
        return 1
    while value:
        digits[19 - count] = <char>(48 + value % 10)
        value //= 10
        count += 1
    return count


cdef bytes _join_fields(list names, list values, Py_ssize_t size):
    """``name: value\r\n`` for each pair, in one allocation."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef char *o = PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    cdef bytes name, value
    for i in range(len(names)):
        name = <bytes>names[i]
        value = <bytes>values[i]
        o = _put(o, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))
        o = _put(o, b": ", 2)
        o = _put(o, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
        o = _put(o, b"\r\n", 2)
    return out


def encode_headers(list headers):
    cdef list names = [], values = []
    cdef Py_ssize_t size = 0
    cdef tuple item
    for item in headers:
        if item[0] not in _HOP_BY_HOP:
            names.append(item[0])
            values.append(item[1])
            size += PyBytes_GET_SIZE(<bytes>item[0]) + PyBytes_GET_SIZE(<bytes>item[1]) + 4
    return _join_fields(names, values, size)


def encode_forwarded(dict headers, skip):
    cdef list names = [], values = []
    cdef Py_ssize_t size = 0
    cdef object connection = headers.get(H_CONNECTION)
    cdef object named = None
    if connection is not None:
        named = _connection_named(<bytes>connection)
    for name, value in headers.items():
        if name in skip or (named is not None and name in named):
            continue
        names.append(name)
        values.append(value)
        size += PyBytes_GET_SIZE(<bytes>name) + PyBytes_GET_SIZE(<bytes>value) + 4
    return _join_fields(names, values, size)


cdef object _connection_named(bytes value):
    """Field names listed in Connection, other than the close/keep-alive options (usually none)."""
    cdef set named = {token.strip(b" \t").lower() for token in value.split(b",")}
    named.discard(B_CLOSE)
    named.discard(B_KEEP_ALIVE)
    return named or None


def frame_response(int status, bytes header_block, bytes body, bint close=False):
    cdef bytes line = _status_line(status)
    cdef char digits[20]
    cdef int nd = _decimal(digits, PyBytes_GET_SIZE(body))
    cdef Py_ssize_t total = (
        PyBytes_GET_SIZE(line) + PyBytes_GET_SIZE(header_block) + 16 + nd + 2
        + (19 if close else 0) + 2 + PyBytes_GET_SIZE(body)
    )
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *o = PyBytes_AS_STRING(out)
    o = _put(o, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
    o = _put(o, PyBytes_AS_STRING(header_block), PyBytes_GET_SIZE(header_block))
    o = _put(o, b"content-length: ", 16)
    o = _put(o, digits + 20 - nd, nd)
    o = _put(o, b"\r\n", 2)
    if close:
        o = _put(o, b"connection: close\r\n", 19)
    o = _put(o, b"\r\n", 2)
    _put(o, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
    return out


def frame_head(int status, bytes header_block, long long content_length, bint close=False):
    cdef bytes line = _status_line(status)
    cdef char digits[20]
    cdef int nd = _decimal(digits, content_length)
    cdef Py_ssize_t total = (
        PyBytes_GET_SIZE(line) + PyBytes_GET_SIZE(header_block) + 16 + nd + 2 + (19 if close else 0) + 2
    )
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *o = PyBytes_AS_STRING(out)
    o = _put(o, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
    o = _put(o, PyBytes_AS_STRING(header_block), PyBytes_GET_SIZE(header_block))
    o = _put(o, b"content-length: ", 16)
    o = _put(o, digits + 20 - nd, nd)
    o = _put(o, b"\r\n", 2)
    if close:
        o = _put(o, b"connection: close\r\n", 19)
    _put(o, b"\r\n", 2)
    return out


def frame_stream_head(int status, bytes header_block, bint close=False):
    cdef bytes connection = b"connection: close\r\n" if close else EMPTY
    return _status_line(status) + header_block + b"transfer-encoding: chunked\r\n" + connection + CRLF


def frame_chunk(bytes data):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef char digits[20]
    cdef int nd = 0
    cdef Py_ssize_t value = n
    cdef bytes out
    cdef char *o
    while True:
        digits[19 - nd] = HEXDIGITS[value & 15]
        nd += 1
        value >>= 4
        if not value:
            break
    out = PyBytes_FromStringAndSize(NULL, nd + 2 + n + 2)
    o = PyBytes_AS_STRING(out)
    o = _put(o, digits + 20 - nd, nd)
    o = _put(o, b"\r\n", 2)
    o = _put(o, PyBytes_AS_STRING(data), n)
    _put(o, b"\r\n", 2)
    return out


def frame_request(bytes method, bytes target, bytes header_block, bytes body):
    cdef char digits[20]
    cdef int nd
    cdef Py_ssize_t total
    cdef bytes out
    cdef char *o
    if not body and (method == b"GET" or method == b"HEAD"):
        return method + b" " + target + b" HTTP/1.1\r\n" + header_block + CRLF
    nd = _decimal(digits, PyBytes_GET_SIZE(body))
    total = (
        PyBytes_GET_SIZE(method) + 1 + PyBytes_GET_SIZE(target) + 11 + PyBytes_GET_SIZE(header_block)
        + 16 + nd + 4 + PyBytes_GET_SIZE(body)
    )
    out = PyBytes_FromStringAndSize(NULL, total)
    o = PyBytes_AS_STRING(out)
    o = _put(o, PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method))
    o = _put(o, b" ", 1)
    o = _put(o, PyBytes_AS_STRING(target), PyBytes_GET_SIZE(target))
    o = _put(o, b" HTTP/1.1\r\n", 11)
    o = _put(o, PyBytes_AS_STRING(header_block), PyBytes_GET_SIZE(header_block))
    o = _put(o, b"content-length: ", 16)
    o = _put(o, digits + 20 - nd, nd)
    o = _put(o, b"\r\n\r\n", 4)
    _put(o, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
    return out


def frame_request_head(bytes method, bytes target, bytes header_block, long long content_length):
    return b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n" % (method, target, header_block, content_length)


# ============================================================================================
# Server-Sent Events
# ============================================================================================

cdef class SSESplitter:
    cdef Py_ssize_t _max
    cdef bytes _buf
    cdef object _event
    cdef list _data
    cdef Py_ssize_t _event_bytes
    cdef bint _pending_cr

    def __init__(self, Py_ssize_t max_event_bytes=16777216):
        self._max = max_event_bytes
        self._buf = EMPTY
        self._event = None
        self._data = []
        self._event_bytes = 0
        self._pending_cr = False

    def feed(self, bytes data):
        cdef list events = []
        cdef bytes buf
        cdef const char *p
        cdef Py_ssize_t n, pos = 0, i, skip
        if self._pending_cr and PyBytes_GET_SIZE(data) and PyBytes_AS_STRING(data)[0] == 10:
            data = data[1:]
        self._pending_cr = False
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + data
            self._buf = EMPTY
        else:
            buf = data
        p = PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
        i = 0
        while i < n:
            if p[i] == 10 or p[i] == 13:
                skip = 1
                if p[i] == 13:
                    if i + 1 < n:
                        if p[i + 1] == 10:
                            skip = 2
                    else:
                        self._pending_cr = True
                self._line(p + pos, i - pos, events)
                i += skip
                pos = i
            else:
                i += 1
        if pos < n:
            self._buf = PyBytes_FromStringAndSize(p + pos, n - pos) if pos else buf
        if self._event_bytes + (n - pos) > self._max:
            raise _UpstreamProtocolError("server-sent event too large")
        return events

    def flush(self):
        cdef list events = []
        cdef bytes buf = self._buf
        if PyBytes_GET_SIZE(buf):
            self._line(PyBytes_AS_STRING(buf), PyBytes_GET_SIZE(buf), events)
            self._buf = EMPTY
        self._line(NULL, 0, events)
        return events

    cdef int _line(self, const char *p, Py_ssize_t n, list events) except -1:
        cdef const char *colon
        cdef Py_ssize_t name_len, vs
        if n == 0:
            if self._data:
                events.append((self._event, b"\n".join(self._data)))
            self._event = None
            self._data = []
            self._event_bytes = 0
            return 0
        self._event_bytes += n
        if self._event_bytes > self._max:
            raise _UpstreamProtocolError("server-sent event too large")
        if p[0] == 58:
            return 0
        colon = <const char *>memchr(p, 58, n)
        if colon == NULL:
            name_len = n
            vs = n
        else:
            name_len = colon - p
            vs = name_len + 1
            if vs < n and p[vs] == 32:
                vs += 1
        if name_len == 4 and memcmp(p, b"data", 4) == 0:
            self._data.append(PyBytes_FromStringAndSize(p + vs, n - vs))
        elif name_len == 5 and memcmp(p, b"event", 5) == 0:
            self._event = PyBytes_FromStringAndSize(p + vs, n - vs)
        return 0


# ============================================================================================
# Request body scanning
# ============================================================================================

cdef class ScanResult:
    cdef readonly object model
    cdef readonly bint stream
    cdef readonly bytes body
    cdef Py_ssize_t _span_start
    cdef Py_ssize_t _span_end
    cdef object _parsed

    def __repr__(self):
        return f"<ScanResult model={self.model!r} stream={self.stream}>"


class _Undecided(Exception):
    """The scanner cannot answer alone; orjson decides."""


cdef inline Py_ssize_t _skip_ws(const char *p, Py_ssize_t pos, Py_ssize_t end):
    while pos < end and (p[pos] == 32 or p[pos] == 9 or p[pos] == 10 or p[pos] == 13):
        pos += 1
    return pos


cdef Py_ssize_t _skip_string(const char *p, Py_ssize_t pos, Py_ssize_t end) except -1:
    cdef const char *hit
    cdef Py_ssize_t close, backslashes
    while True:
        hit = <const char *>memchr(p + pos + 1, 34, end - pos - 1) if end - pos - 1 > 0 else NULL
        if hit == NULL:
            raise _InvalidRequest("request body is not valid JSON")
        close = hit - p
        backslashes = 0
        while p[close - 1 - backslashes] == 92:
            backslashes += 1
        if backslashes % 2 == 0:
            return close + 1
        pos = close


cdef Py_ssize_t _skip_value(const char *p, Py_ssize_t pos, Py_ssize_t end) except -1:
    cdef char c
    cdef Py_ssize_t depth, start
    if pos >= end:
        raise _InvalidRequest("request body is not valid JSON")
    c = p[pos]
    if c == 34:
        return _skip_string(p, pos, end)
    if c == 123 or c == 91:
        depth = 0
        while pos < end:
            c = p[pos]
            if c == 34:
                pos = _skip_string(p, pos, end)
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return pos + 1
            pos += 1
        raise _InvalidRequest("request body is not valid JSON")
    start = pos
    while pos < end and LITERAL[<unsigned char>p[pos]]:
        pos += 1
    if pos == start:
        raise _InvalidRequest("request body is not valid JSON")
    return pos


cdef ScanResult _scan(bytes body):
    cdef const char *p = PyBytes_AS_STRING(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t pos, key_end, value_end, ks, kn
    cdef object model = None
    cdef Py_ssize_t span_start = -1, span_end = -1
    cdef bint stream = False
    cdef set seen = set()
    cdef bytes key
    cdef ScanResult result

    pos = _skip_ws(p, 0, end)
    if pos >= end or p[pos] != 123:
        raise _InvalidRequest("request body must be a JSON object")
    pos = _skip_ws(p, pos + 1, end)
    if pos < end and p[pos] == 125:
        pos += 1
    else:
        while True:
            if pos >= end or p[pos] != 34:
                raise _InvalidRequest("request body is not valid JSON")
            key_end = _skip_string(p, pos, end)
            ks = pos + 1
            kn = key_end - 1 - ks
            key = PyBytes_FromStringAndSize(p + ks, kn)
            if key in seen:
                raise _Undecided
            seen.add(key)
            pos = _skip_ws(p, key_end, end)
            if pos >= end or p[pos] != 58:
                raise _InvalidRequest("request body is not valid JSON")
            pos = _skip_ws(p, pos + 1, end)
            value_end = _skip_value(p, pos, end)
            if kn == 5 and memcmp(p + ks, b"model", 5) == 0:
                if p[pos] != 34:
                    if value_end - pos == 4 and memcmp(p + pos, b"null", 4) == 0:
                        model = None
                        span_start = -1
                    else:
                        raise _InvalidRequest("'model' must be a string", param="model")
                else:
                    if memchr(p + pos + 1, 92, value_end - pos - 2) != NULL:
                        raise _Undecided
                    model = PyUnicode_DecodeUTF8(p + pos + 1, value_end - pos - 2, NULL)
                    span_start = pos + 1
                    span_end = value_end - 1
            elif kn == 6 and memcmp(p + ks, b"stream", 6) == 0:
                if value_end - pos == 4 and memcmp(p + pos, b"true", 4) == 0:
                    stream = True
                elif (value_end - pos == 5 and memcmp(p + pos, b"false", 5) == 0) or (
                    value_end - pos == 4 and memcmp(p + pos, b"null", 4) == 0
                ):
                    stream = False
                else:
                    raise _InvalidRequest("'stream' must be a boolean", param="stream")
            elif kn and memchr(p + ks, 92, kn) != NULL:
                raise _Undecided
            pos = _skip_ws(p, value_end, end)
            if pos < end and p[pos] == 44:
                pos = _skip_ws(p, pos + 1, end)
                continue
            if pos < end and p[pos] == 125:
                pos += 1
                break
            raise _InvalidRequest("request body is not valid JSON")
    if _skip_ws(p, pos, end) != end:
        raise _InvalidRequest("request body is not valid JSON")
    result = ScanResult.__new__(ScanResult)
    result.model = model
    result.stream = stream
    result.body = body
    result._span_start = span_start
    result._span_end = span_end
    result._parsed = None
    return result


cdef ScanResult _scan_with_orjson(bytes body):
    cdef ScanResult result
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _InvalidRequest("request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _InvalidRequest("request body must be a JSON object")
    model = document.get("model")
    if model is not None and not isinstance(model, str):
        raise _InvalidRequest("'model' must be a string", param="model")
    stream = document.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _InvalidRequest("'stream' must be a boolean", param="stream")
    result = ScanResult.__new__(ScanResult)
    result.model = model
    result.stream = bool(stream)
    result.body = orjson.dumps(document)
    result._span_start = -1
    result._span_end = -1
    result._parsed = document
    return result


def scan_body(bytes body):
    try:
        return _scan(body)
    except _Undecided:
        return _scan_with_orjson(body)
    except UnicodeDecodeError:
        raise _InvalidRequest("request body is not valid UTF-8") from None


def rewrite_model(ScanResult result, str model):
    cdef bytes body = result.body
    cdef bytes encoded
    cdef Py_ssize_t brace
    if result._parsed is not None:
        document = dict(result._parsed)
        document["model"] = model
        return orjson.dumps(document)
    if result._span_start < 0:
        brace = body.index(b"{")
        inner_empty = body[brace + 1:].strip(b" \t\r\n").startswith(b"}")
        separator = EMPTY if inner_empty else b","
        return body[:brace + 1] + b'"model":' + orjson.dumps(model) + separator + body[brace + 1:]
    encoded = orjson.dumps(model)
    encoded = encoded[1:PyBytes_GET_SIZE(encoded) - 1]
    return body[:result._span_start] + encoded + body[result._span_end:]


def rewrite_model_parts(ScanResult result, str model):
    cdef bytes encoded
    if result._parsed is not None or result._span_start < 0:
        return [rewrite_model(result, model)]
    view = memoryview(result.body)
    encoded = orjson.dumps(model)
    return [view[:result._span_start], encoded[1:PyBytes_GET_SIZE(encoded) - 1], view[result._span_end:]]


# ============================================================================================
# Routing table
# ============================================================================================

cdef bint _glob_match(list parts, str name):
    cdef str first = parts[0]
    cdef str last = parts[len(parts) - 1]
    cdef Py_ssize_t pos, limit, found, i
    cdef str part
    if not name.startswith(first) or not name.endswith(last) or len(name) < len(first) + len(last):
        return False
    pos = len(first)
    limit = len(name) - len(last)
    for i in range(1, len(parts) - 1):
        part = parts[i]
        found = name.find(part, pos, limit)
        if found < 0:
            return False
        pos = found + len(part)
    return True


cdef class RouteTable:
    cdef dict _exact
    cdef dict _prefixes
    cdef list _wildcards

    def __init__(self):
        self._exact = {}
        self._prefixes = {}
        self._wildcards = []

    def add_exact(self, str name, target):
        self._exact[name] = target

    def add_prefix(self, str prefix, target):
        self._prefixes[prefix] = target

    def add_wildcard(self, str pattern, target):
        parts = pattern.split("*")
        literal = len(pattern) - (len(parts) - 1)
        self._wildcards.append((-literal, len(self._wildcards), parts, target))
        self._wildcards.sort(key=lambda entry: entry[:2])

    def lookup(self, str model):
        cdef object target = self._exact.get(model)
        cdef Py_ssize_t slash
        cdef tuple entry
        cdef list parts
        if target is not None:
            return (target, model)
        slash = model.find("/")
        if 0 <= slash < len(model) - 1:
            target = self._prefixes.get(model[:slash])
            if target is not None:
                return (target, model[slash + 1:])
        for entry in self._wildcards:
            parts = <list>entry[2]
            if len(parts) == 1:
                if parts[0] == model:
                    return (entry[3], model)
            elif _glob_match(parts, model):
                return (entry[3], model)
        return None

    def exact_names(self):
        return list(self._exact)
