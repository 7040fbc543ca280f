# Cython declarations for alloy/client_connection.py (compiled from that source; see alloy/_compiled.py).

cdef class ClientConnection:
    cdef public object gateway, transport, parser, queue
    cdef public Py_ssize_t queued_bytes
    cdef public object current
    cdef public bint closing, continue_sent
    cdef public int read_seconds, idle_seconds, write_paused_seconds
    cdef public bint writing_paused, reading_paused, refused

    cpdef handle(self, request)
    cpdef answer_finished(self, bint keep_alive)
    cpdef send_error(self, error, bint close=*, bytes extra_headers=*, bint head=*)
    cpdef close(self)
