# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# HTTP/1.1 request parsing (RFC 9112)
# ============================================================================================

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.bytes cimport PyBytes_CheckExact
from cpython.memoryview cimport PyMemoryView_FromObject


# A body larger than this that arrives whole in the read carrying its head is forwarded as a view
# of that read instead of a copy (``Request.body_buffer``): the upstream connection writes a body
# up to this size in one piece with its head anyway (one copy there), a larger one as it is.
cdef enum:
    _VIEW_BODY_ABOVE = 65536
VIEW_BODY_ABOVE = _VIEW_BODY_ABOVE


cdef class Request:  # its fields: alloy/_core.pxd
    @property
    def body(self):
        if self._body is None:
            self._body = bytes(self.body_buffer)
        return self._body

    def __repr__(self):
        return f"<Request {self.method.decode()} {self.target.decode(errors='replace')}>"


cdef enum:
    S_HEAD = 0
    S_BODY_LENGTH = 1
    S_BODY_CHUNKED = 2
    S_DEAD = 3


cdef class RequestParser:  # its fields and cdef methods: alloy/_core.pxd
    def __init__(self, Py_ssize_t max_header_bytes=65536, long long max_body_bytes=33554432,
                 frozenset forward_skip=None, tuple forward_prefixes=()):
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._forward_skip = forward_skip
        self._forward_prefixes = forward_prefixes
        self._buf = EMPTY
        self._state = S_HEAD
        self._scan_from = 0
        self._current = None
        self._body_parts = []
        self._body_size = 0
        self._chunked = None
        self._chunked_body = None
        self.expect_continue = False
        self.error = None
        self._empty_lines = 0
        self._method = None

    @property
    def in_progress(self):
        return PyBytes_GET_SIZE(self._buf) > 0 or self._state != S_HEAD or self._empty_lines > 0

    @property
    def reading_body(self):
        """The head of the request being read is whole: its body is arriving."""
        return self._state == S_BODY_LENGTH or self._state == S_BODY_CHUNKED

    @property
    def arriving_method(self):
        return self._method

    @property
    def arriving_headers(self):
        if self._state != S_BODY_LENGTH and self._state != S_BODY_CHUNKED:
            return None
        return (<Request>self._current).headers

    @property
    def waiting_head(self):
        if not self.expect_continue:
            return None
        cdef Request current = self._current
        cdef Request head = Request.__new__(Request)
        head.method = current.method
        head.target = current.target
        head.version = current.version
        head.headers = current.headers
        head.body_buffer = head._body = EMPTY
        head.keep_alive = current.keep_alive
        head.forwarded = current.forwarded
        head.forwarded_skip = current.forwarded_skip
        return head

    @property
    def buffered(self):
        return PyBytes_GET_SIZE(self._buf) + self._body_size

    cpdef list feed(self, bytes data):
        cdef list done = []
        if self._state == S_DEAD:
            raise _ProtocolError("connection is no longer readable after an error")
        try:
            self._feed(data, done)
        except ProtocolError as error:
            self._state = S_DEAD
            if not done:
                raise
            self.error = error  # the requests before it are answered first
        return done

    cdef int _feed(self, bytes data, list done) except -1:
        cdef bytes buf
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
                    self._empty_lines += 1
                    if self._empty_lines > MAX_EMPTY_LINES:
                        raise _ProtocolError("too many empty lines before the request line")
                search = self._scan_from - 3
                if search < pos:
                    search = pos
                hit = NULL
                if n - search >= 4:
                    hit = _find_head_end(p, search, n)
                if hit == NULL:
                    self._check_incomplete_head(p, pos, n)
                    break
                end = hit - p
                if end - pos + 4 > self._max_header:
                    _head_too_large(p, pos, self._max_header)
                self._start_request(p + pos, end - pos)
                pos = end + 4
                self._scan_from = 0
                self._empty_lines = 0
            elif self._state == S_BODY_LENGTH:
                take = n - pos
                if take > self._remaining:
                    take = <Py_ssize_t>self._remaining
                if take:
                    if take == n and pos == 0:  # all of this read is body: kept as it came
                        self._body_parts.append(buf)
                    elif take > _VIEW_BODY_ABOVE and take == self._remaining and not self._body_parts:
                        # a large body whole in the read that carried its head: a view, no copy
                        self._body_parts.append(PyMemoryView_FromObject(buf)[pos:pos + take])
                    else:
                        self._body_parts.append(PyBytes_FromStringAndSize(p + pos, take))
                    pos += take
                    self._body_size += take
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
        return 0

    cdef Py_ssize_t _feed_chunked(self, const char *p, Py_ssize_t pos, Py_ssize_t n) except -1:
        cdef list pieces = []
        cdef bytes piece
        cdef bytearray body = self._chunked_body
        pos = self._chunked.feed(p, pos, n, pieces)
        for piece in pieces:
            self._body_size += PyBytes_GET_SIZE(piece)
            if self._body_size > self._max_body:
                raise _body_too_large(self._current.target, self._current.headers)
            body += piece
        if self._chunked.remaining > self._max_body - self._body_size:  # (a sum could overflow)
            raise _body_too_large(self._current.target, self._current.headers)  # a chunk announced beyond the limit: now
        return pos

    cdef int _check_incomplete_head(self, const char *p, Py_ssize_t pos, Py_ssize_t n) except -1:
        if n - pos > self._max_header:
            _head_too_large(p, pos, self._max_header)
        # Only what this read added (and the CR the last one ended with): a head trickled in small
        # pieces must not be checked whole again at each one (see the twin).
        cdef Py_ssize_t checked = self._scan_from
        _check_bare_line_ends(p, pos, n, _ProtocolError, checked - 1)
        if n - pos == 1 and p[pos] == 13:
            return 0  # the first half of an empty line between two requests
        # Bytes that cannot begin a method token (TLS, binary noise) are refused at once; those
        # before the first space that an earlier read brought were checked then.
        cdef const char *space = <const char *>memchr(p + pos, 32, n - pos)
        cdef Py_ssize_t i, stop = n if space == NULL else space - p
        for i in range(pos if pos > checked else checked, stop):
            if not TCHAR[<unsigned char>p[i]]:
                raise _ProtocolError("invalid method")
        return 0

    cdef int _start_request(self, const char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t line_end, sp1, sp2, i, pos, name_len, vs = 0, ve = 0, count
        cdef int version
        cdef bytes method, target, name, value, expects
        cdef object previous
        cdef dict headers = {}
        cdef dict joined = None  # a repeated name -> its values, joined once at the end
        cdef list parts
        cdef list content_lengths = None
        cdef list transfer_encodings = None
        cdef int hosts = 0
        cdef bint has_close = False, has_keep_alive = False, keep_alive
        cdef tuple field
        cdef Request request
        cdef frozenset skip
        cdef char *out = NULL
        cdef Py_ssize_t size = 0
        cdef bint repeated = False
        cdef object connection
        cdef bytes forwarded = None

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
            # A fragment ("#") is the client's own business and never sent (RFC 9110 section 7.1)
            if not TARGET_OK[<unsigned char>p[i]] or p[i] == 35:
                raise _ProtocolError("invalid request target")
        if p[sp1 + 1] != 47 and not _absolute_or_asterisk_form(p, sp1, sp2):  # RFC 9112 section 3.2
            raise _ProtocolError("invalid request target")
        version = _parse_version(p + sp2 + 1, line_end - sp2 - 1, _ProtocolError, UnsupportedVersion)
        method = PyBytes_FromStringAndSize(p, sp1)
        target = PyBytes_FromStringAndSize(p + sp1 + 1, sp2 - sp1 - 1)
        self._method = method

        pos = line_end + 2
        # With forwarding sets, the fields a provider may receive are written as they are read
        # (lower-cased name, trimmed value): encode_forwarded's lines, without a pass over the
        # dict. A repeated name (joined in the dict) is taken from the dict instead, below.
        skip = self._forward_skip
        if skip is not None:
            out = <char *>PyMem_Malloc(2 * (n - pos) + 2 if n > pos else 2)
            if out == NULL:
                raise MemoryError()
        try:
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
                        _check_host(p + pos + vs, ve - vs)
                    count = len(headers)
                    previous = headers.setdefault(name, value)
                    if len(headers) == count:  # the name was already there: join (RFC 9110 5.3)
                        # once, after the loop: joining at each repeat copied the value so far
                        # again, and a head of one name repeated cost its square
                        if joined is None:
                            joined = {}
                        parts = joined.get(name)
                        if parts is None:
                            joined[name] = [previous, value]
                        else:
                            parts.append(value)
                        repeated = True
                    elif out != NULL and name not in skip and not (
                        self._forward_prefixes and _has_prefix(name, self._forward_prefixes)
                    ):
                        size = _put(out + size, PyBytes_AS_STRING(name), name_len) - out
                        size = _put(out + size, b": ", 2) - out
                        size = _put(out + size, PyBytes_AS_STRING(value), ve - vs) - out
                        size = _put(out + size, b"\r\n", 2) - out
                pos = line_end + 2
            if joined is not None:
                for name, parts in joined.items():
                    headers[name] = COMMA_SP.join(parts)
            if out != NULL:
                connection = headers.get(H_CONNECTION)
                if repeated or (connection is not None and _connection_named(<bytes>connection) is not None):
                    forwarded = encode_forwarded(headers, skip, self._forward_prefixes)
                else:
                    forwarded = PyBytes_FromStringAndSize(out, size)
        finally:
            PyMem_Free(out)

        # RFC 9112 section 3.2: never more than one Host; exactly one in an HTTP/1.1 request.
        if hosts > 1 or (version == 11 and hosts == 0):
            raise _ProtocolError("a request needs exactly one Host header")

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
        request.forwarded = forwarded
        request.forwarded_skip = skip if forwarded is not None else None
        self._current = request
        self._body_parts = []
        self._body_size = 0
        previous = headers.get(H_EXPECT)
        self.expect_continue = (
            previous is not None and version == 11
            and (_ieq(PyBytes_AS_STRING(previous), PyBytes_GET_SIZE(previous), b"100-continue", 12)
                 or _lists_continue(previous))  # a list, as when sent twice (see the twin)
        )

        if transfer_encodings is not None:
            # RFC 9112 section 6.1: CL with TE is refused (smuggling), see the twin.
            if content_lengths is not None:
                raise _ProtocolError("both Content-Length and Transfer-Encoding")
            if version == 10:
                raise _ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if not _only_chunked(transfer_encodings):
                raise UnsupportedTransferCoding("only Transfer-Encoding: chunked is supported")
            self._chunked = _ChunkedDecoder(_ProtocolError)
            self._chunked_body = bytearray()
            self._state = S_BODY_CHUNKED
        elif content_lengths is not None:
            self._remaining = _parse_content_length(content_lengths, _ProtocolError)
            if self._remaining > self._max_body:
                raise _body_too_large(target, headers)
            self._state = S_BODY_LENGTH
        else:
            self._remaining = 0
            self._state = S_BODY_LENGTH
        return 0

    cdef Request _finish_request(self):
        cdef Request request = self._current
        cdef list parts = self._body_parts
        if self._chunked_body is not None:
            request.body_buffer = request._body = bytes(self._chunked_body)
            self._chunked_body = None
        elif len(parts) == 1:
            request.body_buffer = parts[0]
            if PyBytes_CheckExact(request.body_buffer):
                request._body = request.body_buffer  # else made on first use (the property)
        elif not parts:
            request.body_buffer = request._body = EMPTY
        else:
            request.body_buffer = request._body = EMPTY.join(parts)
        self._current = None
        self._method = None
        self._body_parts = []
        self._body_size = 0
        self._chunked = None
        self._state = S_HEAD
        self.expect_continue = False
        return request


cdef int _check_bare_line_ends(const char *p, Py_ssize_t pos, Py_ssize_t n, object error, Py_ssize_t start=-1) except -1:
    """An incomplete head (request or response) with a bare LF, or a CR not followed by LF, would
    wait for a CRLF CRLF that may never come (RFC 9112 section 2.2): ``error`` at once. The head
    begins at ``pos``; ``start``: where its bytes not checked yet begin (see the twin)."""
    if start < pos:
        start = pos
    cdef const char *hit = p + start
    cdef const char *end = p + n
    while True:
        hit = <const char *>memchr(hit, 10, end - hit)
        if hit == NULL:
            break
        if hit == p + pos or (hit - 1)[0] != 13:
            raise error("bare CR or LF in message head")
        hit += 1
    hit = p + start
    while True:
        hit = <const char *>memchr(hit, 13, end - hit)
        if hit == NULL or hit + 1 >= end:
            break
        if hit[1] != 10:
            raise error("bare CR or LF in message head")
        hit += 1
    return 0


cdef int _check_host(const char *p, Py_ssize_t n) except -1:
    """RFC 9112 section 3.2: a Host whose value is not ``host [":" port]`` (RFC 3986: letters,
    digits, ``-._~``, percent-escapes, sub-delims, ``:`` and an IPv6 literal's brackets) is a 400."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = <unsigned char>p[i]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in b"-._~%!$&'()*+,;=:[]"):
            raise _ProtocolError("invalid Host header")
    return 0


cdef bint _absolute_or_asterisk_form(const char *p, Py_ssize_t method_end, Py_ssize_t target_end):
    """A request target not in origin-form ("/...") may be absolute-form (scheme "://" ...), or
    "*" for OPTIONS; authority-form is CONNECT's, which a gateway does not serve (see the twin)."""
    cdef Py_ssize_t i = method_end + 1
    cdef unsigned char c
    if target_end - i == 1 and p[i] == 42:
        return method_end == 7 and memcmp(p, b"OPTIONS", 7) == 0
    c = <unsigned char>p[i]
    if not (65 <= c <= 90 or 97 <= c <= 122):
        return False
    i += 1
    while i < target_end:
        c = <unsigned char>p[i]
        if c == 58:  # ":" ends the scheme
            return i + 2 < target_end and p[i + 1] == 47 and p[i + 2] == 47
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 43 or c == 45 or c == 46):
            return False
        i += 1
    return False


cdef bint _lists_continue(bytes value):
    """An Expect list naming 100-continue among others (RFC 9110 section 5.6.1): the rare case."""
    return b"100-continue" in [member.strip(b" \t").lower() for member in value.split(b",")]


cdef object _body_too_large(bytes target, dict headers):
    """413 for the request to ``target``, which the error keeps with its ``headers`` (see the twin)."""
    error = _BodyTooLarge("request body too large")
    error.target = target
    error.headers = headers
    return error


cdef int _head_too_large(const char *p, Py_ssize_t pos, Py_ssize_t limit) except -1:
    """431, or 414 when the request line alone does not end within the head's limit (RFC 9112
    section 3: a target longer than the server parses is answered 414)."""
    if memchr(p + pos, 10, limit) == NULL:
        raise URITooLong("request target too long")
    raise HeadersTooLarge("request header section too large")
