# Declarations that compile alloy/observability/access_log.py as alloy.observability.access_log (setup.py).
cimport cython

from alloy.call cimport Call


@cython.final
cdef class AccessLog:
    cdef public object loop
    cdef public double sample
    cdef public bint text
    cdef public object writer
    cdef public list entries

    cpdef record(self, Call call)


@cython.final
cdef class LogWriter:
    cdef public object target
    cdef public object fd
    cdef public object inode
    cdef public bint regular
    cdef public bint failing
    cdef public object handoff
    cdef public object submit
    cdef public object drop
    cdef public object close
