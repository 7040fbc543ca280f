# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# Server-Sent Events
# ============================================================================================

cdef class SSESplitter:
    cdef Py_ssize_t _max
    cdef list _held  # the pieces of a line not ended yet, in order (see the twin)
    cdef Py_ssize_t _held_bytes
    cdef object _event
    cdef list _data
    cdef Py_ssize_t _event_bytes
    cdef bint _pending_cr

    def __init__(self, Py_ssize_t max_event_bytes=16777216):
        self._max = max_event_bytes
        self._held = []
        self._held_bytes = 0
        self._event = None
        self._data = []
        self._event_bytes = 0
        self._pending_cr = False

    def feed(self, bytes data):
        cdef list events = []
        cdef bytes line
        cdef const char *p
        cdef Py_ssize_t n, pos = 0, i = 0, skip
        if not PyBytes_GET_SIZE(data):
            return events  # nothing read: a CR pending from the last feed stays pending
        if self._pending_cr and PyBytes_AS_STRING(data)[0] == 10:
            data = data[1:]
        self._pending_cr = False
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        # Only the bytes of this read are scanned: a long line arriving in many reads is held as
        # its pieces and joined once, at its end (a copy and a rescan per read were quadratic).
        while i < n:
            if p[i] == 10 or p[i] == 13:
                skip = 1
                if p[i] == 13:
                    if i + 1 < n:
                        if p[i + 1] == 10:
                            skip = 2
                    else:
                        self._pending_cr = True
                if self._held_bytes:
                    self._held.append(PyBytes_FromStringAndSize(p + pos, i - pos))
                    line = EMPTY.join(self._held)
                    self._held = []
                    self._held_bytes = 0
                    self._line(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), events)
                else:
                    self._line(p + pos, i - pos, events)
                i += skip
                pos = i
            else:
                i += 1
        if pos < n:
            self._held.append(PyBytes_FromStringAndSize(p + pos, n - pos) if pos else data)
            self._held_bytes += n - pos
        if self._event_bytes + self._held_bytes > self._max:
            raise _UpstreamProtocolError("server-sent event too large")
        return events

    def flush(self):
        cdef list events = []
        cdef bytes line
        if self._held_bytes:
            line = EMPTY.join(self._held)
            self._held = []
            self._held_bytes = 0
            self._line(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), events)
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
