# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

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


cdef int _check_block(bytes block) except -1:
    """Every line of ``block`` is ``token ":" field-value CRLF`` (see the twin): nothing is written
    into a head unchecked, whatever the value's source. One pass, a table lookup per byte."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(block)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(block), i = 0, start
    while i < n:
        start = i
        while i < n and TCHAR[p[i]]:
            i += 1
        if i == start or i >= n or p[i] != 58:
            raise _UnsafeHead("refused to write a header holding bytes not allowed in an HTTP head")
        i += 1
        while i < n and not VALUE_BAD[p[i]]:
            i += 1
        if i + 1 >= n or p[i] != 13 or p[i + 1] != 10:
            raise _UnsafeHead("refused to write a header holding bytes not allowed in an HTTP head")
        i += 2
    return 0


cdef int _check_request_line(bytes method, bytes target) except -1:
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(target)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(target)
    if not _is_token(PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method)):
        raise _UnsafeHead("refused to write an invalid method")
    if n == 0:
        raise _UnsafeHead("refused to write a request target holding bytes outside visible ASCII")
    for i in range(n):
        if not TARGET_OK[p[i]]:
            raise _UnsafeHead("refused to write a request target holding bytes outside visible ASCII")
    return 0


cdef inline char *_put(char *o, const char *s, Py_ssize_t n):
    memcpy(o, s, n)
    return o + n


cdef inline int _decimal(char *digits, unsigned long long value) noexcept:
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


def encode_headers(list headers, skip=None):
    cdef list names = [], values = []
    cdef Py_ssize_t size = 0
    cdef tuple item
    cdef object named = None, found
    if skip is None:
        skip = _HOP_BY_HOP
    for item in headers:
        if item[0] == H_CONNECTION:  # RFC 9110 section 7.6.1: fields it names are hop-by-hop too
            found = _connection_named(<bytes>item[1])
            if found is not None:
                named = found if named is None else named | found
    for item in headers:
        if item[0] not in skip and (named is None or item[0] not in named):
            names.append(item[0])
            values.append(item[1])
            size += PyBytes_GET_SIZE(<bytes>item[0]) + PyBytes_GET_SIZE(<bytes>item[1]) + 4
    return _join_fields(names, values, size)


cdef inline bint _has_prefix(bytes name, tuple prefixes):
    cdef bytes prefix
    for prefix in prefixes:
        if PyBytes_GET_SIZE(name) >= PyBytes_GET_SIZE(prefix) and memcmp(
            PyBytes_AS_STRING(name), PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix)
        ) == 0:
            return True
    return False


def encode_forwarded(dict headers, skip, tuple skip_prefixes=()):
    cdef list names = [], values = []
    cdef Py_ssize_t size = 0
    cdef object connection = headers.get(H_CONNECTION)
    cdef object named = None
    if connection is not None:
        named = _connection_named(<bytes>connection)
    for name, value in headers.items():
        if name in skip or (named is not None and name in named):
            continue
        if skip_prefixes and _has_prefix(<bytes>name, skip_prefixes):
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
    _check_block(header_block)
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
    _check_block(header_block)
    cdef bytes line = _status_line(status)
    cdef char digits[20]
    cdef int nd
    cdef Py_ssize_t total
    if content_length < 0:  # 204, 304: no body and no length (RFC 9110 section 8.6)
        return line + header_block + (b"connection: close\r\n" if close else EMPTY) + CRLF
    nd = _decimal(digits, content_length)
    total = (
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
    _check_block(header_block)
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
    _check_request_line(method, target)
    _check_block(header_block)
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
    _check_request_line(method, target)
    _check_block(header_block)
    if not content_length and (method == b"GET" or method == b"HEAD"):
        return method + b" " + target + b" HTTP/1.1\r\n" + header_block + CRLF
    return b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n" % (method, target, header_block, content_length)
