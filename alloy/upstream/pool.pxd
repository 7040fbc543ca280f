# Declarations that compile alloy/upstream/pool.py as alloy.upstream.pool (setup.py).
cimport cython

from alloy.upstream.connection cimport UpstreamConnection


@cython.final
cdef class CorePool:
    cdef public object origin
    cdef public object loop
    cdef public object max_connections
    cdef public object max_queued
    cdef public double idle_timeout
    cdef public list _idle
    cdef public object wheel
    cdef public long _open
    cdef public dict _waiting
    cdef public bint _closing
    cdef public object named
    cdef public object reports

    @cython.locals(connection=UpstreamConnection)
    cpdef start(self, request, sink, bint head_request=*)
    cpdef release(self, UpstreamConnection connection)
    cpdef forget(self, UpstreamConnection connection)
    @cython.locals(now=double, connection=UpstreamConnection)
    cpdef UpstreamConnection _take_idle(self)
