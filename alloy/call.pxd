# Cython declarations for alloy/call.py (compiled from that source; see alloy/_compiled.py).

cdef class Call:
    cdef public object request, connection, path, query, suffix, endpoint, scan, model_name, id_line
    cdef public object key
    cdef public object pipeline, group, deployment, relay, attempts
    cdef public int count
    cdef public bint over, ended
    cdef public double arrived, sent_at, head_at, ended_at
    cdef public int status
    cdef public Py_ssize_t bytes_out
    cdef public object error, tail, _usage

    cpdef start(self)
    cpdef begin(self, deployment)
    cpdef bint holds(self, int status)
    cpdef head_arrived(self, int status)
    cpdef succeeded(self, tail=*)
    cpdef broke_off(self)
    cpdef relaying_failure(self)
    cpdef failed_for_good(self, error)
    cpdef failed_with_answer(self, relay)
    cpdef failed_with_error(self, error)
    cdef _retrying(self)
    cpdef cancel(self)
    cpdef pause(self)
    cpdef resume(self)
    cpdef answer(self, failure)
    cpdef finish(self)
