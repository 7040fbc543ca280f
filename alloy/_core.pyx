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
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH
from libc.string cimport memchr, memcmp, memcpy

import orjson

from alloy.errors import (
    BodyTooLarge,
    HeadersTooLarge,
    InvalidPath,
    InvalidRequest,
    ProtocolError,
    UnsafeHead,
    UnsupportedTransferCoding,
    UnsupportedVersion,
    UpstreamProtocolError,
    URITooLong,
    unreadable_json,
)
from alloy.headers import HOP_BY_HOP, STATUS_REASONS


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)


# ============================================================================================
# Shared character classes (RFC 9110 section 5.6.2 and 5.5); see the twin for the reasoning
# ============================================================================================

cdef unsigned char TCHAR[256]
cdef unsigned char VALUE_BAD[256]
cdef enum:
    # RFC 9112 section 2.2: a few empty lines before a request line are ignored; more are refused
    # (a client trickling CRLFs would otherwise hold a connection open forever).
    MAX_EMPTY_LINES = 4
    # Model names are echoed in a header and may be placed in an upstream URL: bounded.
    MAX_MODEL_BYTES = 256
    # A token cap read from a body (ScanResult.max_tokens) is at most this: a reservation, not a count.
    MAX_TOKEN_CAP = 999999999
cdef long long CONTENT_LENGTH_HUGE = 1000000000000000000
cdef unsigned char TARGET_OK[256]
cdef signed char HEXVAL[256]
cdef unsigned char LITERAL[256]
cdef unsigned char LOWER[256]


cdef void _init_tables():
    cdef int c
    for c in range(256):
        TCHAR[c] = 0
        VALUE_BAD[c] = 1 if (c < 0x20 and c != 0x09) or c == 0x7F else 0
        TARGET_OK[c] = 1 if 0x21 <= c < 0x7F else 0  # URI characters are ASCII (RFC 3986)
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
cdef object _InvalidPath = InvalidPath
cdef object _UnsafeHead = UnsafeHead


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


cdef inline const char *_find_head_end(const char *p, Py_ssize_t start, Py_ssize_t end):
    """The first ``\r\n\r\n`` in ``p[start:end]``, or NULL: memchr from one LF to the next (a
    head has a few dozen) rather than memmem's general search."""
    cdef const char *hit
    cdef Py_ssize_t at = start + 3
    while at < end:
        hit = <const char *>memchr(p + at, 10, end - at)
        if hit == NULL:
            return NULL
        if hit[-1] == 13 and hit[-2] == 10 and hit[-3] == 13:
            return hit - 3
        at = hit - p + 1
    return NULL


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
    # The slot: a multiply-xor hash of the name eight bytes at a time, each byte ORed with 0x20 so
    # that both cases of a letter hash alike (a byte pair that differs only there, "^" and "~",
    # merely shares a slot: the hit is checked in full below). A byte at a time, the hash's
    # multiply chain was a fifth of parsing a head of OpenAI's 19 headers.
    cdef unsigned long long h = <unsigned long long>n, word
    cdef Py_ssize_t i = 0
    cdef PyObject *cached
    cdef bytes name
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        h = (h ^ (word | 0x2020202020202020ULL)) * 0x9E3779B97F4A7C15ULL
        i += 8
    if i < n:
        word = 0
        memcpy(&word, p + i, n - i)
        h = (h ^ (word | 0x2020202020202020ULL)) * 0x9E3779B97F4A7C15ULL
    h = (h ^ (h >> 29)) & 511
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
            if e == s:
                raise error("invalid Content-Length")
            number = 0
            for i in range(s, e):
                if not (48 <= p[i] <= 57):
                    raise error("invalid Content-Length")
                # Past 18 digits the number saturates: it is over any body limit (413), never wraps.
                number = CONTENT_LENGTH_HUGE if number >= CONTENT_LENGTH_HUGE // 10 else number * 10 + (p[i] - 48)
            if length != -1 and number != length:
                raise error("conflicting Content-Length values")
            length = number
            start = end + 1
    return length


cdef bint _only_chunked(list values):
    """Transfer-Encoding check, for requests and answers alike: the joined codings are exactly
    ``chunked`` (the only coding decoded). Empty list elements (``,chunked``) are skipped, as RFC
    9110 section 5.6.1.2 asks of a recipient."""
    cdef bytes joined = b",".join(values)
    cdef list codings = [c for c in [c.strip(b" \t").lower() for c in joined.split(b",")] if c]
    return codings == [B_CHUNKED]


# --- chunked decoding (RFC 9112 section 7.1), shared by both parsers -------------------------

cdef enum:
    CH_SIZE = 0
    CH_DATA = 1
    CH_DATA_CRLF = 2
    CH_TRAILER = 3
    MAX_CHUNK_LINE = 4096
    MAX_TRAILER_BYTES = 65536


cdef inline bint _has_bare_cr_or_lf(const char *p, Py_ssize_t pos, Py_ssize_t end):
    """In a line with no CRLF yet: an LF anywhere, or a CR that is not the last byte received."""
    cdef Py_ssize_t i
    for i in range(pos, end):
        if p[i] == 10 or (p[i] == 13 and i + 1 < end):
            return True
    return False


cdef inline Py_ssize_t _skip_bws(const char *p, Py_ssize_t i, Py_ssize_t end):
    while i < end and (p[i] == 32 or p[i] == 9):
        i += 1
    return i


cdef inline Py_ssize_t _skip_token(const char *p, Py_ssize_t i, Py_ssize_t end):
    while i < end and TCHAR[<unsigned char>p[i]]:
        i += 1
    return i


cdef int _check_chunk_ext(const char *p, Py_ssize_t i, Py_ssize_t end, error) except -1:
    """What follows a chunk size up to its CRLF: nothing, or chunk extensions (RFC 9112 section
    7.1.1: ``*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )``). They are ignored,
    but checked: a control byte, or whitespace with no ";" after it, is framing a reader may take
    differently, so it is refused."""
    cdef Py_ssize_t s
    cdef unsigned char c
    while i < end:
        i = _skip_bws(p, i, end)
        if i == end or p[i] != 59:
            raise error("invalid chunk extension")
        i = _skip_bws(p, i + 1, end)
        s = i
        i = _skip_token(p, i, end)
        if i == s:
            raise error("invalid chunk extension")
        s = _skip_bws(p, i, end)
        if s == end or p[s] != 61:
            continue
        i = _skip_bws(p, s + 1, end)
        if i < end and p[i] == 34:  # quoted-string: qdtext and quoted-pairs up to the closing quote
            i += 1
            while True:
                if i >= end:
                    raise error("invalid chunk extension")
                c = <unsigned char>p[i]
                if c == 34:
                    i += 1
                    break
                if c == 92:
                    if i + 1 >= end or VALUE_BAD[<unsigned char>p[i + 1]]:
                        raise error("invalid chunk extension")
                    i += 2
                elif VALUE_BAD[c]:
                    raise error("invalid chunk extension")
                else:
                    i += 1
        else:
            s = i
            i = _skip_token(p, i, end)
            if i == s:
                raise error("invalid chunk extension")
    return 0


cdef class _ChunkedDecoder:  # its fields and cdef method: alloy/_core.pxd
    def __cinit__(self, error):
        self.error = error
        self.state = CH_SIZE
        self.remaining = 0
        self.finished = False
        self.trailer_bytes = 0

    cdef Py_ssize_t feed(self, const char *p, Py_ssize_t pos, Py_ssize_t end, list pieces) except -1:
        """Consume from ``p[pos:end]``; append body pieces; set ``finished`` at the end of the body."""
        cdef Py_ssize_t eol, take, s, e, i
        cdef long long size
        while pos < end:
            if self.state == CH_SIZE:
                eol = _find_crlf(p, pos, end)
                if (eol if eol >= 0 else end) - pos > MAX_CHUNK_LINE:  # whether or not its CRLF came
                    raise self.error("chunk size line too long")
                if eol < 0:
                    if _has_bare_cr_or_lf(p, pos, end):  # no CRLF can end this line any more
                        raise self.error("bare CR or LF in chunk size line")
                    break
                if _has_bare_cr_or_lf(p, pos, eol + 1):  # hidden in a chunk extension
                    raise self.error("bare CR or LF in chunk size line")
                e = pos
                while e < eol and HEXVAL[<unsigned char>p[e]] >= 0:
                    e += 1
                if e == pos or e - pos > 16:
                    raise self.error("invalid chunk size")
                size = 0
                for i in range(pos, e):
                    size = (size << 4) | HEXVAL[<unsigned char>p[i]]
                if size < 0:
                    raise self.error("invalid chunk size")
                _check_chunk_ext(p, e, eol, self.error)
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
                    if p[pos] != 13:
                        raise self.error("chunk data not followed by CRLF")
                    break
                if p[pos] != 13 or p[pos + 1] != 10:
                    raise self.error("chunk data not followed by CRLF")
                pos += 2
                self.state = CH_SIZE
            else:
                eol = _find_crlf(p, pos, end)
                if (eol if eol >= 0 else end) - pos > MAX_CHUNK_LINE:
                    raise self.error("trailer line too long")
                if eol < 0:
                    if _has_bare_cr_or_lf(p, pos, end):
                        raise self.error("bare CR or LF in trailer")
                    break
                self.trailer_bytes += eol + 2 - pos
                if self.trailer_bytes > MAX_TRAILER_BYTES:  # bounded as a head is (see the twin)
                    raise self.error("trailer section too large")
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
# The pieces, in dependency order (uvloop layout: one extension, one concept per file)
# ============================================================================================

include "_core_request.pxi"
include "_core_response.pxi"
include "_core_framing.pxi"
include "_core_paths.pxi"
include "_core_sse.pxi"
include "_core_jsonscan.pxi"
include "_core_account.pxi"
include "_core_routes.pxi"
include "_core_process.pxi"
