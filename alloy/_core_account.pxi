# ============================================================================================
# Accounting: a virtual key's live limits, and the access log's line (see the twin for the rules)
# ============================================================================================

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.string cimport strlen

import time as _time


cdef extern from "sys/file.h" nogil:
    int flock(int fd, int operation)
    int LOCK_EX
    int LOCK_UN


cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object value, int *overflow) except? -1
    bint PyLong_CheckExact(object value)
    bint PyFloat_CheckExact(object value)
    bint PyDict_Check(object value)
    double PyFloat_AS_DOUBLE(object value)
    bint PyObject_GC_IsTracked(object value)
    void PyObject_GC_UnTrack(void *value)


cdef extern from "math.h" nogil:
    double rint(double value)


# The layout of ``alloy.governance.counters.SLOT`` ("<16s d q d q q q q q", 80 bytes, no padding).
ctypedef struct CounterSlot:
    char digest[16]
    double rpm_start
    long long requests
    double tpm_start
    long long tokens
    long long inflight
    long long period
    long long spend
    long long loaded

# --- decimal numbers, written by hand: snprintf's format parsing costs more than the digits ------

cdef inline int _digits(char *out, unsigned long long value) noexcept:
    """``value`` in decimal at ``out`` (at most 20 characters); returns how many were written."""
    cdef char backwards[20]
    cdef int count = _decimal(backwards, value)  # the framing's writer, right-aligned in 20
    memcpy(out, backwards + 20 - count, count)
    return count


cdef inline int _signed_digits(char *out, long long value) noexcept:
    """As ``"%lld"`` writes ``value`` (at most 20 characters)."""
    if value < 0:
        out[0] = 45  # "-"
        return 1 + _digits(out + 1, <unsigned long long>(-(value + 1)) + 1)
    return _digits(out, <unsigned long long>value)


cdef inline int _padded_digits(char *out, unsigned long long value, int width) noexcept:
    """As ``"%0<width>llu"`` writes ``value``, for a value of at most ``width`` digits."""
    cdef int index
    for index in range(width - 1, -1, -1):
        out[index] = <char>(48 + value % 10)
        value //= 10
    return width


cdef inline int _put_text(char *out, const char *text) noexcept:
    cdef size_t size = strlen(text)
    memcpy(out, text, size)
    return <int>size


cdef double LIMIT_WINDOW = 60.0
cdef enum:
    MAX_SCOPES = 8  # a key's scopes: its own and its team's


cdef class LimitCounters:
    """A keyed request's limits against the counters memory (see the twin)."""

    cdef Py_buffer _view
    cdef bint _held
    cdef char *_base
    cdef Py_ssize_t _size
    cdef readonly int fd

    def __cinit__(self, memory, int fd=-1):
        if sizeof(CounterSlot) != 80:
            raise SystemError("CounterSlot does not match the counters table's 80-byte slot")
        PyObject_GetBuffer(memory, &self._view, PyBUF_WRITABLE)
        self._held = True
        self._base = <char*>self._view.buf
        self._size = self._view.len
        self.fd = fd

    def __dealloc__(self):
        if self._held:
            PyBuffer_Release(&self._view)

    def release(self):
        if self._held:
            self._held = False
            self._base = NULL
            self._size = 0
            PyBuffer_Release(&self._view)

    cdef CounterSlot *_slot(self, object offset) except NULL:
        cdef Py_ssize_t at = offset
        if at < 0 or at + <Py_ssize_t>sizeof(CounterSlot) > self._size:
            raise ValueError("a counters slot outside the table (or the table was released)")
        return <CounterSlot*>(self._base + at)

    def take(self, tuple scopes, tuple reported, long long reserve, double now, double wall):
        cdef Py_ssize_t count = len(scopes), index
        cdef CounterSlot rows[MAX_SCOPES]
        cdef CounterSlot *slots[MAX_SCOPES]
        cdef CounterSlot *row
        cdef long long rpm, tpm, parallel, budget, current
        cdef tuple scope
        if count > MAX_SCOPES:
            raise ValueError("too many scopes for one key")
        for index in range(count):
            slots[index] = self._slot((<tuple>scopes[index])[0])
        if self.fd >= 0:
            flock(self.fd, LOCK_EX)
        try:
            for index in range(count):
                scope = <tuple>scopes[index]
                rpm = scope[1]
                tpm = scope[2]
                parallel = scope[3]
                budget = scope[4]
                rows[index] = slots[index][0]
                row = &rows[index]
                if now - row.rpm_start >= LIMIT_WINDOW:
                    row.rpm_start = now
                    row.requests = 0
                if now - row.tpm_start >= LIMIT_WINDOW:
                    row.tpm_start = now
                    row.tokens = 0
                current = int((wall - scope[6]) // scope[5]) if scope[5] else 0
                if row.period != current:
                    row.period = current
                    row.spend = 0
                what = None
                if rpm and row.requests >= rpm:
                    what, figure = "requests", row.rpm_start + LIMIT_WINDOW - now
                elif tpm and row.tokens + reserve > tpm:
                    what, figure = "tokens", row.tpm_start + LIMIT_WINDOW - now
                elif parallel and row.inflight >= parallel:
                    what, figure = "parallel", 1.0
                elif budget and row.spend >= budget:
                    what, figure = "budget", row.spend
                if what is not None:
                    tokens = row.tokens
                    for index2 in range(count):
                        rows[index2] = slots[index2][0]
                    return (what, index, figure, tokens, _ratelimit_lines(reported, rows, count, now))
                row.requests += 1
                row.tokens += reserve
                row.inflight += 1
            for index in range(count):
                slots[index][0] = rows[index]
            windows = tuple([rows[index].tpm_start for index in range(count)])
            return (None, windows, _ratelimit_lines(reported, rows, count, now))
        finally:
            if self.fd >= 0:
                flock(self.fd, LOCK_UN)

    def give_back(self, tuple scopes, tuple windows, long long reserved, long long used, long long cost, double wall):
        if len(scopes) > MAX_SCOPES or len(windows) < len(scopes):
            raise ValueError("the windows do not match the scopes")
        self._settle(scopes, windows, reserved, used, cost, wall)

    def spent(self, tuple scopes, long long cost, double wall):
        if len(scopes) > MAX_SCOPES:
            raise ValueError("too many scopes")
        self._settle(scopes, None, 0, 0, cost, wall)

    cdef int _settle(self, tuple scopes, tuple windows, long long reserved, long long used, long long cost, double wall) except -1:
        """An ended request's account (see the twin): ``windows`` None, the cost alone."""
        cdef Py_ssize_t count = len(scopes), index
        cdef CounterSlot *slots[MAX_SCOPES]
        cdef CounterSlot *row
        cdef long long current
        cdef tuple scope
        for index in range(count):
            slots[index] = self._slot((<tuple>scopes[index])[0])
        if self.fd >= 0:
            flock(self.fd, LOCK_EX)
        try:
            for index in range(count):
                scope = <tuple>scopes[index]
                row = slots[index]
                if windows is not None:
                    if row.tpm_start == <double>windows[index] and used != reserved:
                        row.tokens = row.tokens + used - reserved
                        if row.tokens < 0:
                            row.tokens = 0
                    if row.inflight > 0:
                        row.inflight -= 1
                    else:
                        row.inflight = 0
                current = int((wall - scope[6]) // scope[5]) if scope[5] else 0
                if row.period != current:
                    row.period = current
                    row.spend = 0
                row.spend += cost
        finally:
            if self.fd >= 0:
                flock(self.fd, LOCK_UN)
        return 0


cdef bytes _ratelimit_lines(tuple reported, CounterSlot *rows, Py_ssize_t count, double now):
    # Each trio is at most ~200 bytes (three names, two 20-digit numbers, a reset): two trios fit.
    cdef char lines[640]
    cdef int at, used_bytes = 0
    cdef bint requests, found
    cdef long long limit, remaining, used, best_limit = 0, best_remaining = 0
    cdef double start, left, best_reset = 0.0
    cdef Py_ssize_t index
    cdef const char *name
    if len(reported) > 2:
        raise ValueError("at most two x-ratelimit trios (requests, tokens)")
    for entry in reported:
        requests = (<tuple>entry)[0] == "rpm"
        found = False
        for item in <tuple>((<tuple>entry)[1]):
            index = (<tuple>item)[0]
            limit = (<tuple>item)[1]
            if index < 0 or index >= count:
                raise ValueError("a reported limit names no scope")
            start = rows[index].rpm_start if requests else rows[index].tpm_start
            used = rows[index].requests if requests else rows[index].tokens
            if now - start >= LIMIT_WINDOW:
                remaining, left = limit, 0.0
            else:
                remaining = limit - used if limit > used else 0
                left = start + LIMIT_WINDOW - now
            if not found or remaining < best_remaining:
                found = True
                best_limit, best_remaining, best_reset = limit, remaining, left
        if not found:
            continue
        name = "requests" if requests else "tokens"
        at = used_bytes
        at += _put_text(lines + at, "x-ratelimit-limit-")
        at += _put_text(lines + at, name)
        at += _put_text(lines + at, ": ")
        at += _signed_digits(lines + at, best_limit)
        at += _put_text(lines + at, "\r\nx-ratelimit-remaining-")
        at += _put_text(lines + at, name)
        at += _put_text(lines + at, ": ")
        at += _signed_digits(lines + at, best_remaining)
        at += _put_text(lines + at, "\r\nx-ratelimit-reset-")
        at += _put_text(lines + at, name)
        at += _put_text(lines + at, ": ")
        at += _format_reset(lines + at, best_reset)
        at += _put_text(lines + at, "\r\n")
        used_bytes = at
    return PyBytes_FromStringAndSize(lines, used_bytes)


def ratelimit_lines(tuple reported, rows, double now):
    cdef CounterSlot slots[MAX_SCOPES]
    cdef Py_ssize_t count = len(rows), index
    if count > MAX_SCOPES:
        raise ValueError("too many scopes for one key")
    for index in range(count):
        row = rows[index]
        slots[index].rpm_start = row[1]
        slots[index].requests = row[2]
        slots[index].tpm_start = row[3]
        slots[index].tokens = row[4]
    return _ratelimit_lines(reported, slots, count, now)


cdef int _format_reset(char *out, double seconds) noexcept:
    """OpenAI's spelling of a reset (``120ms``, ``7s``, ``1m5s``) at ``out`` (at most 44
    characters); returns how many were written."""
    cdef long long whole
    cdef int at
    if seconds < 1:
        at = _signed_digits(out, <long long>(seconds * 1000))
        return at + _put_text(out + at, "ms")
    whole = <long long>(seconds + 0.999)  # whole seconds, rounded up: 59.5 s is "1m0s", never "60s"
    if whole < 60:
        at = _signed_digits(out, whole)
        return at + _put_text(out + at, "s")
    at = _signed_digits(out, whole // 60)
    out[at] = 109  # "m"
    at += 1
    at += _signed_digits(out + at, whole % 60)
    return at + _put_text(out + at, "s")


def ratelimit_reset(double seconds):
    cdef char out[48]
    return PyBytes_FromStringAndSize(out, _format_reset(out, seconds))


# --- the access log's JSON line ------------------------------------------------------------------

cdef struct LineBuffer:
    char *data
    Py_ssize_t size
    Py_ssize_t capacity
    bint heap  # data was allocated (else it is the caller's stack buffer)


cdef int _line_put(LineBuffer *out, const char *text, Py_ssize_t length) except -1:
    cdef Py_ssize_t wanted = out.size + length
    cdef char *grown
    if wanted > out.capacity:
        while out.capacity < wanted:
            out.capacity *= 2
        if out.heap:
            grown = <char*>PyMem_Realloc(out.data, out.capacity)
        else:  # past the stack buffer: the line moves to the heap
            grown = <char*>PyMem_Malloc(out.capacity)
            if grown != NULL:
                memcpy(grown, out.data, out.size)
        if grown == NULL:
            raise MemoryError()
        out.data = grown
        out.heap = True
    memcpy(out.data + out.size, text, length)
    out.size = wanted
    return 0


cdef inline bint _line_plain(const unsigned char *text, Py_ssize_t length):
    """Nothing JSON escapes, all ASCII: copied as it is."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(length):
        c = text[i]
        if c < 0x20 or c >= 0x80 or c == 0x22 or c == 0x5C:
            return False
    return True


cdef int _line_put_quoted(LineBuffer *out, const char *text, Py_ssize_t length) except -1:
    _line_put(out, '"', 1)
    _line_put(out, text, length)
    _line_put(out, '"', 1)
    return 0


cdef int _line_put_str(LineBuffer *out, object value) except -1:
    """A JSON string (or whatever orjson makes of a value that is not a plain str)."""
    if type(value) is str and PyUnicode_IS_ASCII(value):
        text = <const char*>PyUnicode_1BYTE_DATA(value)
        if _line_plain(<const unsigned char*>text, PyUnicode_GET_LENGTH(value)):
            return _line_put_quoted(out, text, PyUnicode_GET_LENGTH(value))
    encoded = orjson.dumps(value)
    return _line_put(out, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))


cdef int _line_put_bytes_text(LineBuffer *out, bytes value, str encoding) except -1:
    """Bytes as the JSON string of their text (latin-1 or utf-8 with replacements)."""
    cdef const char *text = PyBytes_AS_STRING(value)
    if _line_plain(<const unsigned char*>text, PyBytes_GET_SIZE(value)):
        return _line_put_quoted(out, text, PyBytes_GET_SIZE(value))
    return _line_put_str(out, value.decode(encoding, "replace"))


cdef int _line_put_int(LineBuffer *out, object value) except -1:
    cdef char number[32]
    cdef int overflow = 0
    cdef long long whole
    if type(value) is int:
        whole = PyLong_AsLongLongAndOverflow(value, &overflow)
        if not overflow:
            return _line_put(out, number, _signed_digits(number, whole))
    encoded = orjson.dumps(value)
    return _line_put(out, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))


cdef int _line_put_millis(LineBuffer *out, long long micros) except -1:
    """``micros / 1e3`` as Python's repr writes it: the exact decimal of a whole number of
    microseconds in milliseconds, trailing zeros dropped but one (``0.051``, ``12.0``)."""
    cdef char number[40]
    cdef unsigned long long whole = <unsigned long long>(-micros if micros < 0 else micros)
    cdef unsigned long long fraction = whole % 1000
    cdef int written = 0
    if micros < 0:
        number[0] = 45  # "-"
        written = 1
    written += _digits(number + written, whole // 1000)
    number[written] = 46  # "."
    written += 1
    if fraction == 0:
        number[written] = 48
        written += 1
    elif fraction % 100 == 0:
        written += _padded_digits(number + written, fraction // 100, 1)
    elif fraction % 10 == 0:
        written += _padded_digits(number + written, fraction // 10, 2)
    else:
        written += _padded_digits(number + written, fraction, 3)
    return _line_put(out, number, written)


cdef inline int _line_put_name(LineBuffer *out, const char *name) except -1:
    return _line_put(out, name, strlen(name))


cdef long long _clock_second = -1
cdef char _clock_text[32]


def access_json_line(tuple entry, double offset):
    global _clock_second
    cdef LineBuffer out
    cdef double ended, when, arrived, sent, head, first_event
    cdef long long second, count
    cdef Py_ssize_t end
    cdef bint timed
    cdef int written
    cdef char number[64]
    cdef char stack[1024]
    if len(entry) != 20:
        raise ValueError("an access-log entry has 20 fields")
    (ended_value, id_line, peer, key, method, path, model, stream, served, provider, status, count_value,
     bytes_in, arrived_value, sent_value, head_value, error, usage, bytes_out, first_event_value) = entry
    ended = ended_value
    when = ended + offset
    second = <long long>when
    if second != _clock_second:
        text = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second)).encode("ascii")
        if len(text) >= sizeof(_clock_text):
            raise ValueError("a date that does not fit the access log's clock")
        memcpy(_clock_text, PyBytes_AS_STRING(text), len(text) + 1)
        _clock_second = second
    out.data = stack
    out.capacity = sizeof(stack)
    out.size = 0
    out.heap = False
    try:
        _line_put_name(&out, '{"time":"')
        _line_put_name(&out, _clock_text)
        number[0] = 46  # ".%06lldZ\""
        _padded_digits(number + 1, <unsigned long long>((when - second) * 1e6) % 1000000, 6)
        number[7], number[8] = 90, 34
        _line_put(&out, number, 9)
        if id_line:
            end = (<bytes>id_line).find(b"\r\n")
            if end < 0:  # as Python's slice [14:-1] would
                end += len(id_line)
            _line_put_name(&out, ',"request_id":')
            _line_put_bytes_text(&out, (<bytes>id_line)[14:end], "latin-1")
        if peer:
            _line_put_name(&out, ',"client":')
            if type(peer) is tuple and len(peer) >= 2 and type(peer[0]) is str and type(peer[1]) is int:
                host = peer[0]
                if PyUnicode_IS_ASCII(host) and _line_plain(<const unsigned char*>PyUnicode_1BYTE_DATA(host), PyUnicode_GET_LENGTH(host)):
                    _line_put(&out, '"', 1)
                    _line_put(&out, <const char*>PyUnicode_1BYTE_DATA(host), PyUnicode_GET_LENGTH(host))
                    number[0] = 58  # ":%lld\""
                    written = 1 + _signed_digits(number + 1, <long long>peer[1])
                    number[written] = 34
                    _line_put(&out, number, written + 1)
                else:
                    _line_put_str(&out, "%s:%s" % peer[:2])
            else:
                _line_put_str(&out, "%s:%s" % peer[:2] if type(peer) is tuple else str(peer))
        if key is not None:
            _line_put_name(&out, ',"key":')
            _line_put_str(&out, key)
        if method is not None:  # (none for bytes the HTTP parser refused)
            _line_put_name(&out, ',"method":')
            _line_put_bytes_text(&out, method, "latin-1")
        if path is not None:
            _line_put_name(&out, ',"path":')
            _line_put_bytes_text(&out, path, "utf-8")
        if model is not None:
            _line_put_name(&out, ',"model":')
            _line_put_str(&out, model)
        if served is not None:
            _line_put_name(&out, ',"served_model":')
            _line_put_str(&out, served)
        if provider is not None:  # also for a passed-through call, which names no model
            _line_put_name(&out, ',"provider":')
            _line_put_str(&out, provider)
        _line_put_name(&out, ',"status":')
        _line_put_int(&out, status)
        _line_put_name(&out, ',"attempts":')
        _line_put_int(&out, count_value)
        if stream is not None:
            _line_put_name(&out, ',"stream":')
            if stream is True:
                _line_put_name(&out, "true")
            elif stream is False:
                _line_put_name(&out, "false")
            else:
                encoded = orjson.dumps(stream)
                _line_put(&out, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))
        _line_put_name(&out, ',"bytes_in":')
        _line_put_int(&out, bytes_in)
        _line_put_name(&out, ',"bytes_out":')
        _line_put_int(&out, bytes_out)
        sent = sent_value
        head = head_value if head_value else 0.0
        timed = head != 0.0 and head >= sent
        if timed:
            _line_put_name(&out, ',"ttfb_ms":')
            _line_put_millis(&out, <long long>((head - sent) * 1e6))
        if arrived_value is not None:
            arrived = arrived_value
            if first_event_value:
                first_event = first_event_value
                _line_put_name(&out, ',"ttft_ms":')
                _line_put_millis(&out, <long long>((first_event - arrived) * 1e6))
            _line_put_name(&out, ',"duration_ms":')
            _line_put_millis(&out, <long long>((ended - arrived) * 1e6))
            if timed and count_value == 1 and error is None:
                _line_put_name(&out, ',"overhead_us":')
                _line_put(&out, number, _signed_digits(number,
                     <long long>(((sent - arrived) if stream else (sent - arrived + ended - head)) * 1e6)))
        if usage is not None:
            prompt, completion = usage
            if prompt is not None:
                _line_put_name(&out, ',"prompt_tokens":')
                _line_put_int(&out, prompt)
            if completion is not None:
                _line_put_name(&out, ',"completion_tokens":')
                _line_put_int(&out, completion)
        if error is not None:
            kind, code = error
            _line_put_name(&out, ',"error":')
            _line_put_str(&out, kind)
            _line_put_name(&out, ',"error_code":')
            if code is None:
                _line_put_name(&out, "null")
            else:
                _line_put_str(&out, code)
        _line_put_name(&out, "}\n")
        return PyBytes_FromStringAndSize(out.data, out.size)
    finally:
        if out.heap:
            PyMem_Free(out.data)


# --- the metrics slot of a call ------------------------------------------------------------------

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_SET_ITEM


cdef inline Py_ssize_t _bucket(double *bounds, Py_ssize_t count, double value):
    """bisect_left: the first bound not below ``value`` (``count``: above every bound)."""
    cdef Py_ssize_t low = 0, high = count, middle
    while low < high:
        middle = (low + high) >> 1
        if bounds[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


cdef inline void _add(list slot, Py_ssize_t at, object amount):
    cdef object value = <object>PyList_GET_ITEM(slot, at)
    value = value + amount
    Py_INCREF(value)
    Py_XDECREF(PyList_GET_ITEM(slot, at))
    PyList_SET_ITEM(slot, at, value)


cdef class SlotObserver:
    """Adds one ended call's status, latencies, attempts and retries to a metrics slot (see the
    twin and ``alloy.observability.metrics`` for the slot's layout)."""

    cdef double latency[64]
    cdef double overhead[64]
    cdef Py_ssize_t latency_count, overhead_count
    cdef Py_ssize_t total, ttfb, overhead_at, ttft, attempts, retries
    cdef Py_ssize_t total_sum, ttfb_sum, overhead_sum, ttft_sum, size

    def __init__(self, tuple latency_bounds, tuple overhead_bounds, tuple layout):
        cdef Py_ssize_t i
        if len(latency_bounds) > 64 or len(overhead_bounds) > 64:
            raise ValueError("at most 64 histogram bounds")
        self.latency_count = len(latency_bounds)
        self.overhead_count = len(overhead_bounds)
        for i in range(self.latency_count):
            self.latency[i] = latency_bounds[i]
        for i in range(self.overhead_count):
            self.overhead[i] = overhead_bounds[i]
        (self.total, self.ttfb, self.overhead_at, self.ttft, self.attempts, self.retries,
         self.total_sum, self.ttfb_sum, self.overhead_sum, self.ttft_sum, self.size) = layout

    def observe(self, list slot, call, bint stream):
        cdef double arrived, ended, head, sent, waited, own, first_event
        cdef long count
        if PyList_GET_SIZE(slot) != self.size:
            raise ValueError("a metrics slot of another layout")
        _add(slot, (call.status // 100) % 10, 1)
        arrived = call.arrived
        ended = call.ended_at
        waited = ended - arrived
        _add(slot, self.total + _bucket(self.latency, self.latency_count, waited), 1)
        _add(slot, self.total_sum, waited)
        count = call.count
        _add(slot, self.attempts, count)
        head = call.head_at
        if head:
            sent = call.sent_at
            if head >= sent:
                waited = head - sent
                _add(slot, self.ttfb + _bucket(self.latency, self.latency_count, waited), 1)
                _add(slot, self.ttfb_sum, waited)
                if count == 1 and call.error is None:
                    own = sent - arrived if stream else sent - arrived + ended - head
                    _add(slot, self.overhead_at + _bucket(self.overhead, self.overhead_count, own), 1)
                    _add(slot, self.overhead_sum, own)
        first_event = call.first_event_at
        if first_event:
            waited = first_event - arrived
            _add(slot, self.ttft + _bucket(self.latency, self.latency_count, waited), 1)
            _add(slot, self.ttft_sum, waited)
        if count > 1:
            # A resend after the keep-alive race is not a retry (alloy.attempts): the upstream
            # closed an idle connection under the request, which it never saw.
            attempts = call.attempts
            count -= 1
            if attempts is not None and attempts.resent:
                count -= 1
            if count:
                _add(slot, self.retries, count)


# --- what an answer cost -------------------------------------------------------------------------

# alloy.usage.MAX_TOKENS: a larger count is believed only up to it, so every count (and their sum)
# converts to a double exactly (a typed constant: an enum this large would be unsigned, and a
# negative count compared with it would pass for a huge one)
cdef long long MAX_TOKENS = 1000000000000


cdef long long _token_count(object value):
    """``alloy.usage._int``: a positive int, else 0; at most ``MAX_TOKENS``."""
    cdef int overflow = 0
    cdef long long whole
    if not PyLong_CheckExact(value):
        return 0
    whole = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow > 0 or whole > MAX_TOKENS:
        return MAX_TOKENS
    return whole if whole > 0 and overflow == 0 else 0


def usage_cost(usage, price):
    cdef long long tokens_in = 0, tokens_out = 0, tokens_cached = 0, read, written, uncached
    cdef double cost, nanos
    if usage:
        if not PyDict_Check(usage):
            return _usage_cost_in_python(usage, price)
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            details = usage.get("prompt_tokens_details") or {}
            tokens_in = _token_count(usage.get("prompt_tokens"))
            tokens_out = _token_count(usage.get("completion_tokens"))
            tokens_cached = _token_count(details.get("cached_tokens")) if PyDict_Check(details) else 0
        elif "input_tokens_details" in usage or "total_tokens" in usage:  # the Responses API (see the twin)
            details = usage.get("input_tokens_details") or {}
            tokens_in = _token_count(usage.get("input_tokens"))
            tokens_out = _token_count(usage.get("output_tokens"))
            tokens_cached = _token_count(details.get("cached_tokens")) if PyDict_Check(details) else 0
        else:  # Anthropic: input_tokens excludes the cache reads and writes; all count as input
            read = _token_count(usage.get("cache_read_input_tokens"))
            written = _token_count(usage.get("cache_creation_input_tokens"))
            tokens_in = _token_count(usage.get("input_tokens"))
            tokens_out = _token_count(usage.get("output_tokens"))
            tokens_in += read + written
            tokens_cached = read
    if price is None:
        return tokens_in, tokens_out, tokens_cached, 0.0, 0
    if not (type(price) is tuple and len(price) == 3 and PyFloat_CheckExact(price[0])
            and PyFloat_CheckExact(price[1]) and PyFloat_CheckExact(price[2])):
        return _usage_cost_in_python(usage, price)
    uncached = tokens_in - tokens_cached if tokens_in > tokens_cached else 0
    # The twin's expression, operation by operation (no fused multiply-add at -O3 on x86-64).
    cost = (<double>uncached * PyFloat_AS_DOUBLE(price[0]) + <double>tokens_out * PyFloat_AS_DOUBLE(price[1])
            + <double>tokens_cached * PyFloat_AS_DOUBLE(price[2])) / 1000000.0
    nanos = rint(cost * 1000000000.0)  # nano-USD (alloy.governance.prices.SPEND_UNIT)
    if not (-9.0e18 < nanos < 9.0e18):
        return _usage_cost_in_python(usage, price)
    if nanos > 4611686018427387904.0:  # the twin's MAX_SPEND, 2**62
        nanos = 4611686018427387904.0
    elif nanos < -4611686018427387904.0:
        nanos = -4611686018427387904.0
    return tokens_in, tokens_out, tokens_cached, cost, <long long>nanos


def _usage_cost_in_python(usage, price):
    """usage_cost for what the C way leaves out (counts from 2**53, a price that is not three
    floats, a usage that is not a dict): the twin's lines, which define the result."""
    from alloy._pycore import usage_cost as in_python

    return in_python(usage, price)


# --- records kept until a flush, out of the collector's sight ----------------------------------------


cdef bint _untrack(tuple row):
    """Untrack ``row`` when nothing in it is tracked (after the same for a tuple inside it)."""
    for item in row:
        if PyObject_GC_IsTracked(item):
            if type(item) is not tuple or not _untrack(<tuple>item):
                return False
    PyObject_GC_UnTrack(<void *>row)
    return True


def untracked(tuple row):
    _untrack(row)
    return row


# --- the ledger's rows, as stored (its writer thread, once per flush) ---------------------------------


def ledger_stored(list batch, tuple columns, metadata_json):
    cdef Py_ssize_t path_at = columns[0], latency_at = columns[1], tags_at = columns[2]
    cdef Py_ssize_t id_at = columns[3], metadata_at = columns[4], end
    cdef list stored = [], fields
    cdef bytes id_line
    for row in batch:
        path = row[path_at]
        if type(path) is not bytes:
            stored.append(row)
            continue
        fields = list(row)
        fields[path_at] = (<bytes>path).decode("latin-1")
        fields[latency_at] = rint(<double>row[latency_at] * 1000000.0) / 1000.0
        tags = row[tags_at]
        fields[tags_at] = "" if tags is None else (<bytes>tags)[:1024].decode("utf-8", "replace")[:256]
        id_line = row[id_at]
        if id_line:
            end = id_line.find(b"\r\n")
            fields[id_at] = id_line[14:end].decode("latin-1")
        else:
            fields[id_at] = ""
        held = row[metadata_at]
        fields[metadata_at] = "" if held is None else metadata_json(held) or ""
        stored.append(fields)
    return stored
