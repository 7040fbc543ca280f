# Declarations that compile alloy/upstream/connection.py as alloy.upstream.connection (setup.py).
cimport cython

from alloy._core cimport ResponseHead as CoreResponseHead
from alloy._core cimport ResponseParser as CoreResponseParser
from alloy.relay cimport Relay
from alloy.upstream.pool cimport CorePool


@cython.final
cdef class UpstreamRequest:
    cdef public bytes method
    cdef public bytes target
    cdef public bytes header_block
    cdef public object body
    cdef public Py_ssize_t body_length
    cdef public object timeouts
    cdef public long total_ticks
    cdef public object response_skip
    cdef public bytes head

    cpdef long deadline(self, long sent, long last_read, bint received)
    cpdef expired(self, long age_ticks, long quiet_ticks, bint received, bint partial=*)


@cython.final
cdef class UpstreamConnection:
    cdef public CorePool pool
    cdef public object wheel
    cdef public object loop
    cdef public object transport
    cdef public bint closed
    cdef public bint forgotten
    cdef public bint reused
    cdef public double idle_since
    cdef public UpstreamRequest _request
    cdef public Relay _sink
    cdef public CoreResponseParser _parser
    cdef public CoreResponseHead _head
    cdef public bint _received
    cdef public bint reading_paused
    cdef public long due
    cdef public long sent_at
    cdef public long read_at

    @cython.locals(sink=Relay, done=bint)
    cpdef data_received(self, data)
    cpdef send(self, UpstreamRequest request, Relay sink, bint head_request)
    cpdef cancel(self)
    cpdef pause_reading(self)
    cpdef resume_reading(self)
    cpdef close(self)
    @cython.locals(sink=Relay, keep=bint)
    cpdef _finish(self)
    @cython.locals(sink=Relay)
    cpdef _fail(self, error)
