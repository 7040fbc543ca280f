# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# Upstream response parsing
# ============================================================================================

from cpython.mem cimport PyMem_Free, PyMem_Malloc

cdef class ResponseHead:  # its fields: alloy/_core.pxd
    @property
    def headers(self):
        if self._headers is None:
            self._headers = _field_list(self._fields)
        return self._headers

    def get(self, bytes name, default=None):
        cdef tuple item
        if self._headers is None:
            return _field_get(self._fields, name, default)
        for item in self._headers:
            if item[0] == name:
                return item[1]
        return default

    def __repr__(self):
        return f"<ResponseHead {self.status}>"


cdef list _field_list(bytes fields):
    """The (name, value) list of field lines the parser already checked."""
    cdef const char *p = PyBytes_AS_STRING(fields)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(fields), pos = 0, line_end
    cdef list headers = []
    while pos < n:
        line_end = _find_crlf(p, pos, n)
        if line_end < 0:
            line_end = n
        if line_end > pos:
            headers.append(_parse_field_line(p + pos, line_end - pos, _UpstreamProtocolError))
        pos = line_end + 2
    return headers


cdef object _field_get(bytes fields, bytes name, object default):
    """The value of the first field line named ``name`` (lower-case), without building the list.
    The lines were checked when the head was parsed: only the colon is looked for here."""
    cdef const char *p = PyBytes_AS_STRING(fields)
    cdef const char *colon
    cdef Py_ssize_t n = PyBytes_GET_SIZE(fields), pos = 0, line_end, vs, ve
    cdef Py_ssize_t wanted = PyBytes_GET_SIZE(name)
    while pos < n:
        line_end = _find_crlf(p, pos, n)
        if line_end < 0:
            line_end = n
        if line_end - pos > wanted and p[pos + wanted] == 58 and _ieq(p + pos, wanted, PyBytes_AS_STRING(name), wanted):
            colon = p + pos + wanted
            vs = colon - p + 1
            ve = line_end
            while vs < ve and (p[vs] == 32 or p[vs] == 9):
                vs += 1
            while ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
                ve -= 1
            return PyBytes_FromStringAndSize(p + vs, ve - vs)
        pos = line_end + 2
    return default


cdef enum:
    R_HEAD = 0
    R_LENGTH = 1
    R_CHUNKED = 2
    R_UNTIL_CLOSE = 3
    R_DONE = 4


cdef class ResponseParser:  # its fields and cdef methods: alloy/_core.pxd
    def __init__(self, bint head_request=False, Py_ssize_t max_header_bytes=65536, skip=None):
        self._head_request = head_request
        self._max_header = max_header_bytes
        if skip is not None and type(skip) is not frozenset:
            raise TypeError("skip must be a frozenset of lower-case names")
        self._skip = skip
        self._buf = EMPTY
        self._state = R_HEAD
        self._remaining = 0
        self._chunked = None
        self._head = None
        self.done = False

    cpdef list feed(self, bytes data):
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
                    hit = _find_head_end(p, pos, n)
                if hit == NULL:
                    if n - pos > self._max_header:
                        raise _UpstreamProtocolError("upstream response head too large")
                    _check_bare_line_ends(p, pos, n, _UpstreamProtocolError)
                    break
                end = hit - p
                if end - pos + 4 > self._max_header:
                    raise _UpstreamProtocolError("upstream response head too large")
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
        cdef bint has_close = False, has_keep_alive = False
        cdef tuple field
        cdef bytes name

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
        if not 100 <= status <= 599:  # RFC 9110 section 15: three digits, 1xx to 5xx
            raise _UpstreamProtocolError("upstream sent an invalid status line")
        version = _parse_version(p, sp1, _UpstreamProtocolError, _UpstreamProtocolError)

        pos = line_end + 2
        if self._skip is not None:
            return self._parse_fields_to_block(p, pos, n, status, version)
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
            _check_interim(status)
            return None  # interim response: wait for the final one
        return self._framed(status, version, headers, None, None, has_close, has_keep_alive, content_lengths, transfer_encodings)

    cdef ResponseHead _parse_fields_to_block(self, const char *p, Py_ssize_t pos, Py_ssize_t n, int status, int version):
        """The field lines checked one by one as ``_parse_field_line`` does, written straight
        into the client-facing block (lower-cased names, trimmed values, ``self._skip`` left out)
        without a (name, value) pair each; only the framing fields' values become objects."""
        cdef Py_ssize_t line_end, name_len, vs, ve, size = 0, start = pos
        cdef list content_lengths = None
        cdef list transfer_encodings = None
        cdef bint has_close = False, has_keep_alive = False, names_fields = False
        cdef bytes name, value
        cdef char *out
        cdef frozenset skip = self._skip
        # Each kept line grows by at most ": " against its received form ("name:value").
        out = <char *>PyMem_Malloc(2 * (n - pos) + 2 if n > pos else 2)  # no field line: pos is n + 2
        if out == NULL:
            raise MemoryError()
        try:
            while pos < n:
                line_end = _find_crlf(p, pos, n)
                if line_end < 0:
                    line_end = n
                if line_end > pos:
                    name_len = _field_bounds(p + pos, line_end - pos, _UpstreamProtocolError, &vs, &ve)
                    name = _header_name(p + pos, name_len)
                    if name == H_CONNECTION or name == H_CONTENT_LENGTH or name == H_TRANSFER_ENCODING:
                        value = PyBytes_FromStringAndSize(p + pos + vs, ve - vs)
                        if name == H_CONNECTION:
                            _connection_flags(value, &has_close, &has_keep_alive)
                            if _connection_named(value) is not None:
                                names_fields = True
                        elif name == H_CONTENT_LENGTH:
                            if content_lengths is None:
                                content_lengths = []
                            content_lengths.append(value)
                        else:
                            if transfer_encodings is None:
                                transfer_encodings = []
                            transfer_encodings.append(value)
                    if name not in skip:
                        memcpy(out + size, PyBytes_AS_STRING(name), name_len)
                        size += name_len
                        out[size] = 58  # ":"
                        out[size + 1] = 32
                        size += 2
                        memcpy(out + size, p + pos + vs, ve - vs)
                        size += ve - vs
                        out[size] = 13
                        out[size + 1] = 10
                        size += 2
                pos = line_end + 2
            if 100 <= status < 200:
                _check_interim(status)
                return None  # interim response: wait for the final one
            # Fields named in Connection are hop-by-hop too (RFC 9110 section 7.6.1), and may come
            # before it: no block then; encode_headers leaves them out when the lines are asked for.
            block = None if names_fields else PyBytes_FromStringAndSize(out, size)
        finally:
            PyMem_Free(out)
        return self._framed(status, version, None, PyBytes_FromStringAndSize(p + start, n - start) if n > start else EMPTY, block,
                            has_close, has_keep_alive, content_lengths, transfer_encodings)

    cdef ResponseHead _framed(self, int status, int version, list headers, bytes fields, bytes block, bint has_close,
                              bint has_keep_alive, list content_lengths, list transfer_encodings):
        """The head's framing (RFC 9112 section 6.3), and the parser's state for the body."""
        cdef bint keep_alive, chunked
        cdef long long content_length
        cdef ResponseHead head

        keep_alive = not has_close if version == 11 else has_keep_alive
        if self._head_request or status == 204 or status == 304:
            if not self._head_request and _announces_body(status, content_lengths, transfer_encodings):
                keep_alive = False  # a body it may still send would be read as the next answer
            content_length = 0
            chunked = False
            self._remaining = 0
            self._state = R_LENGTH
        elif transfer_encodings is not None:
            # Only chunked: a coding before it (gzip, chunked) would reach the client undecoded,
            # with nothing to say so (Transfer-Encoding is not relayed).
            if not _only_chunked(transfer_encodings):
                raise _UpstreamProtocolError("unsupported upstream transfer coding")
            content_length = -1
            chunked = True
            if content_lengths is not None:
                keep_alive = False  # RFC 9112 section 6.3: chunked wins, and the connection is not reused
            self._chunked = _ChunkedDecoder(_UpstreamProtocolError)
            self._state = R_CHUNKED
        elif content_lengths is not None:
            content_length = _parse_content_length(content_lengths, _UpstreamProtocolError)
            if content_length == CONTENT_LENGTH_HUGE:  # past 18 digits: no real body, and it would be relayed
                raise _UpstreamProtocolError("upstream Content-Length too large")
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
        head._headers = headers
        head._fields = fields
        head.block = block
        head.block_skip = self._skip if block is not None else None
        head.keep_alive = keep_alive
        head.content_length = content_length
        head.chunked = chunked
        self._head = head
        return head


cdef inline void _check_interim(int status) except *:
    """101 Switching Protocols ends HTTP/1.1 on the connection; the gateway never asks for it."""
    if status == 101:
        raise _UpstreamProtocolError("upstream switched protocols unasked (101)")


cdef bint _announces_body(int status, list content_lengths, list transfer_encodings):
    """Does a 204 or 304 say it has a body (chunked; a 204 with a length other than 0)? It has none
    (RFC 9110 sections 15.3.5 and 15.4.5), so its connection is not reused: a body sent anyway would
    be read as the next request's answer. (A 304's length describes the resource: allowed.)"""
    if transfer_encodings is not None:
        return True
    if status == 204 and content_lengths is not None:
        for value in content_lengths:
            if (<bytes>value).strip(b" \t") != b"0":
                return True
    return False
