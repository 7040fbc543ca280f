# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# Request body scanning
# ============================================================================================

from cpython.buffer cimport PyBuffer_IsContiguous
from cpython.bytes cimport PyBytes_CheckExact
from cpython.memoryview cimport PyMemoryView_Check, PyMemoryView_GET_BUFFER

cdef class ScanResult:  # its fields: alloy/_core.pxd
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


cdef inline const char *_body_data(object body, Py_ssize_t *size) except NULL:
    """The bytes of a body: ``bytes``, or a memoryview of a read (``Request.body_buffer``)."""
    cdef Py_buffer *view
    if PyBytes_CheckExact(body):
        size[0] = PyBytes_GET_SIZE(body)
        return PyBytes_AS_STRING(body)
    if not PyMemoryView_Check(body):
        raise TypeError(f"a body is bytes or a memoryview, not {type(body).__name__}")
    view = PyMemoryView_GET_BUFFER(body)
    if not PyBuffer_IsContiguous(view, b'C') or view.itemsize != 1:
        raise TypeError("a body's memoryview must be contiguous bytes")
    size[0] = view.len
    return <const char *>view.buf


cdef ScanResult _scan(object body):
    cdef Py_ssize_t end
    cdef const char *p = _body_data(body, &end)
    cdef Py_ssize_t pos, key_end, value_end, ks, kn
    cdef object model = None
    cdef Py_ssize_t span_start = -1, span_end = -1
    cdef Py_ssize_t user_start = -1, user_end = -1, metadata_start = -1, metadata_end = -1
    cdef bint stream = False
    cdef long max_tokens = -1, max_completion_tokens = -1, choices = -1
    cdef set seen = set()
    cdef bytes key
    cdef ScanResult result
    cdef object deferred = None

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
                        # Raised once the whole object is read: a repeated "model" later on
                        # hands the decision to orjson, whose last-one-wins is what providers see.
                        deferred = _InvalidRequest("'model' must be a string", param="model")
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
                    deferred = _InvalidRequest("'stream' must be a boolean", param="stream")
            elif kn == 4 and memcmp(p + ks, b"user", 4) == 0:
                user_start, user_end = pos, value_end
            elif kn == 8 and memcmp(p + ks, b"metadata", 8) == 0:
                metadata_start, metadata_end = pos, value_end
            elif kn == 10 and memcmp(p + ks, b"max_tokens", 10) == 0:
                max_tokens = _token_cap(p, pos, value_end)
            elif kn == 21 and memcmp(p + ks, b"max_completion_tokens", 21) == 0:
                max_completion_tokens = _token_cap(p, pos, value_end)
            elif kn == 1 and p[ks] == 110:  # "n", the choices asked for
                choices = _token_cap(p, pos, value_end)
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
    if deferred is not None:
        raise deferred
    result = ScanResult.__new__(ScanResult)
    result.model = model
    result.stream = stream
    result.body = body
    result._span_start = span_start
    result._span_end = span_end
    result._parsed = None
    result.user = PyBytes_FromStringAndSize(p + user_start, user_end - user_start) if user_start >= 0 else None
    result.metadata = PyBytes_FromStringAndSize(p + metadata_start, metadata_end - metadata_start) if metadata_start >= 0 else None
    result.max_tokens = _all_choices(max_completion_tokens if max_completion_tokens >= 0 else max_tokens if max_tokens >= 0 else 0, choices)
    return result


cdef long _all_choices(long cap, long choices):
    """The cap of every choice together (``n`` of them, when a count above one); both are at most
    MAX_TOKEN_CAP, so their product fits a C long."""
    if choices > 1 and cap > 0:
        cap *= choices
    return cap if cap < MAX_TOKEN_CAP else MAX_TOKEN_CAP


cdef long _token_cap(const char *p, Py_ssize_t pos, Py_ssize_t end):
    """A token cap's value: a JSON integer of digits, capped at MAX_TOKEN_CAP; -1 for anything else."""
    cdef long value = 0
    if pos >= end:
        return -1
    while pos < end:
        if p[pos] < 48 or p[pos] > 57:
            return -1
        if value < MAX_TOKEN_CAP:
            value = value * 10 + (p[pos] - 48)
        pos += 1
    return value if value < MAX_TOKEN_CAP else MAX_TOKEN_CAP


cdef ScanResult _scan_with_orjson(object body):
    cdef ScanResult result
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise unreadable_json(error) from None
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
    result.user = orjson.dumps(document["user"]) if "user" in document else None
    result.metadata = orjson.dumps(document["metadata"]) if "metadata" in document else None
    result.max_tokens = _token_cap_of(document)
    return result


cdef long _token_cap_of(dict document):
    choices = document.get("n")
    for name in ("max_completion_tokens", "max_tokens"):
        value = document.get(name)
        if type(value) is int and value >= 0:
            return _all_choices(value if value < MAX_TOKEN_CAP else MAX_TOKEN_CAP,
                                min(choices, MAX_TOKEN_CAP) if type(choices) is int and choices > 1 else -1)
    return 0


cdef int _check_model(str model) except -1:
    """Non-empty printable text of at most MAX_MODEL_BYTES (see the twin); ASCII, the common
    case, is checked byte by byte without a method call."""
    cdef Py_ssize_t i, n
    cdef const unsigned char *data
    if PyUnicode_IS_ASCII(model):
        n = PyUnicode_GET_LENGTH(model)
        data = <const unsigned char *>PyUnicode_1BYTE_DATA(model)
        if 0 < n <= MAX_MODEL_BYTES:
            for i in range(n):
                if data[i] < 0x20 or data[i] == 0x7F:
                    break
            else:
                return 0
    elif 0 < len(model) <= MAX_MODEL_BYTES and model.isprintable() and len(model.encode()) <= MAX_MODEL_BYTES:
        return 0
    raise _InvalidRequest(
        f"'model' must be non-empty printable text without control characters, at most {MAX_MODEL_BYTES} bytes",
        param="model",
    )


def scan_body(object body):
    cdef ScanResult result
    try:
        result = _scan(body)
    except _Undecided:
        result = _scan_with_orjson(body)
    except UnicodeDecodeError:
        raise _InvalidRequest("request body is not valid UTF-8") from None
    if result.model is not None:
        _check_model(result.model)
    return result


def rewrite_model(ScanResult result, str model):
    cdef bytes body
    cdef bytes encoded
    cdef Py_ssize_t brace
    if result._parsed is not None:
        document = dict(result._parsed)
        document["model"] = model
        return orjson.dumps(document)
    body = result.body if PyBytes_CheckExact(result.body) else bytes(result.body)  # or a view of a read
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


cdef object _json_loads = orjson.loads  # looked up once: find_usage runs once per answer


cdef inline Py_ssize_t _rfind_usage(const char *p, Py_ssize_t before) noexcept:
    """Where the last ``"usage"`` starting before ``before`` is, or -1 (a C loop: usage is near the
    end of an answer, and a bytes method call costs more than the search)."""
    cdef Py_ssize_t i = before - 7
    while i >= 0:
        if p[i] == 34 and memcmp(p + i, b'"usage"', 7) == 0:
            return i
        i -= 1
    return -1


def find_usage(bytes data):
    cdef const char *p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t pos = _rfind_usage(p, end), value, close
    while pos >= 0:
        value = _skip_ws(p, pos + 7, end)
        if value < end and p[value] == 58:
            value = _skip_ws(p, value + 1, end)
            if value < end and p[value] == 123:
                try:
                    close = _skip_value(p, value, end)
                    return _json_loads(PyBytes_FromStringAndSize(p + value, close - value))
                except (InvalidRequest, orjson.JSONDecodeError):
                    return None
        pos = _rfind_usage(p, pos)  # data.rfind(b'"usage"', 0, pos)
    return None
