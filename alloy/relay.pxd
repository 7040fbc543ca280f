# Cython declarations for alloy/relay.py (compiled from that source; see alloy/_compiled.py).

from alloy.call cimport Call

cdef class Relay:
    cdef public Call call
    cdef public object connection, transport
    cdef public bint keep_alive
    cdef public bytes extra_headers
    cdef public object handle
    cdef public bint finished
    cdef public object held
    cdef public Py_ssize_t held_bytes
    cdef public object before_last, last

    cpdef cancel(self)
    cpdef pause(self)
    cpdef resume(self)
    cdef bint _hold(self, list events) except -1
    cdef bint _closing(self)
    cdef _end(self, out=*)

cdef class PassthroughRelay(Relay):
    cdef public object response_skip
    cdef public bint head_sent, chunked, event_stream

    cdef _write(self, list events)
    cdef bytes _head(self, head)

cdef class TranslatedRelay(Relay):
    cdef public object translator, model, endpoint
    cdef public bint stream, include_usage
    cdef public Py_ssize_t max_buffered
    cdef public int status
    cdef public object pieces
    cdef public Py_ssize_t buffered
    cdef public object splitter, events
    cdef public bytes kept_headers

    cdef bytes _translated(self)
    cdef _overflow(self, limit, what)
    cdef _head(self, head, list out)
