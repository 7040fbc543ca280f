# Cython declarations for alloy/upstream/connection.py (compiled from that source; see alloy/_compiled.py).

from alloy.upstream.pool cimport CorePool


cdef class UpstreamConnection:
    cdef public CorePool pool
    cdef public object loop, transport
    cdef public bint closed, forgotten, reused
    cdef public double idle_since
    cdef public object _request, _sink, _parser, _head
    cdef public bint _received, reading_paused
    cdef public int quiet_ticks, age_ticks

    cpdef send(self, request, sink, bint head_request)
    cpdef cancel(self)
    cpdef pause_reading(self)
    cpdef resume_reading(self)
    cpdef close(self)
    cdef _finish(self)
    cdef _fail(self, error)
