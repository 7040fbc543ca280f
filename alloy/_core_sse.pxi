# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

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
        if not PyBytes_GET_SIZE(data):
            return events  # nothing read: a CR pending from the last feed stays pending
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
