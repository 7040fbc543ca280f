# Declarations that compile alloy/routing.py as alloy.routing (setup.py).
cimport cython


@cython.final
cdef class Routes:
    cdef public object default
    cdef public object default_group
    cdef public object table
    cdef public list listed
    cdef public list configured
    cdef public dict aliases
    cdef public object counts_tokens
    cdef public object listing

    cpdef tuple for_model(self, scan)
