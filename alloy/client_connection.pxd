# Declarations that compile alloy/client_connection.py as alloy.client_connection (setup.py).
cimport cython

from alloy._core cimport RequestParser as CoreRequestParser
from alloy.call cimport Call


@cython.final
cdef class ClientConnection:
    cdef public object gateway
    cdef public object transport
    cdef public CoreRequestParser parser
    cdef public object queue
    cdef public Py_ssize_t queued_bytes
    cdef public object current  # a Call, or what stands for one (alloy.cache Clearing)
    cdef public bint closing
    cdef public bint continue_sent
    cdef public object wheel
    cdef public long due
    cdef public long quiet_since
    cdef public long read_since
    cdef public long write_paused_since
    cdef public bint writing_paused
    cdef public bint reading_paused
    cdef public bint refused
    cdef public object peer
    cdef public object linger
    cdef public object write_pending
    cdef public long body_mark
    cdef public bint feeding

    @cython.locals(parser=CoreRequestParser, requests=list)
    cpdef data_received(self, data)
    cpdef handle(self, request)
    cpdef answer_finished(self, bint keep_alive)
    cpdef send_error(self, error, close=*, extra_headers=*, head=*, request=*)
    cpdef bint closes_for_drain(self)
    cpdef close(self)
    cpdef start_read_clock(self)
