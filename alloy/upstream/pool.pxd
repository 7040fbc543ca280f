# Cython declarations for alloy/upstream/pool.py (compiled from that source; see alloy/_compiled.py).

cdef class CorePool:
    cdef public object origin, loop
    cdef public int max_connections, max_queued
    cdef public list _idle
    cdef public set busy
    cdef public int _open
    cdef public dict _waiting
    cdef public long _ticks
    cdef public bint _closing

    cpdef start(self, request, sink, bint head_request=*)
    cpdef release(self, connection)
    cpdef forget(self, connection)
    cdef _take_idle(self)


cdef class PendingExchange:
    cdef public CorePool pool
    cdef public long deadline
    cdef public bint cancelled
    cdef public object _exchange
    cdef public bint _paused
