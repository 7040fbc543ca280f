# Declarations that compile alloy/auth.py as alloy.auth (setup.py).
cimport cython


@cython.final
cdef class MasterKey:
    cdef public object expected

    cpdef check(self, headers)
