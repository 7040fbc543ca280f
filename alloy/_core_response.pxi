# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# Upstream response parsing
# ============================================================================================

cdef class ResponseHead:
    cdef readonly int status
    cdef readonly int version
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
        cdef bint has_close = False, has_keep_alive = False, keep_alive, chunked
        cdef long long content_length
        cdef tuple field
        cdef bytes name
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
        head.headers = headers
        head.keep_alive = keep_alive
        head.content_length = content_length
        head.chunked = chunked
        self._head = head
        return head
