# Declarations that compile alloy/relay.py as alloy.relay (setup.py). TranslatedRelay stays a
# Python class (a subclass of the cdef class Relay).
cimport cython

from alloy.call cimport Call


cdef class Relay:
    cdef public Call call
    cdef public object connection
    cdef public object transport
    cdef public bint keep_alive
    cdef public object extra_headers
    cdef public object handle
    cdef public bint finished
    cdef public object held
    cdef public Py_ssize_t held_bytes
    cdef public double held_at
    cdef public object before_last
    cdef public object last
    cdef public bint chunked
    cdef public object draining
    cdef object __weakref__

    cpdef upstream_events(self, events, last=*)
    cpdef upstream_done(self)
    cpdef upstream_failed(self, error)
    cpdef cancel(self)
    cpdef report_so_far(self, call)
    cpdef answer_started(self)
    cpdef pause(self)
    cpdef resume(self)
    cpdef bint _closing(self)
    cpdef _stream_head(self, status, block)
    cpdef _piece(self, data)
    cpdef _end(self, out=*)


@cython.final
cdef class PassthroughRelay(Relay):
    cdef public object response_skip
    cdef public bint head_sent
    cdef public bint event_stream
    cdef public bint closed_chunks
    cdef public object hidden_usage
    cdef public object whole
    cdef public object scrub
    cdef public object scrub_rest
    cdef public bint until_close

    @cython.locals(call=Call, sent=Py_ssize_t)
    cpdef _write(self, events, bint last=*)
    cpdef _left_over(self)
    @cython.locals(call=Call, status=long)
    cpdef _head(self, head)
