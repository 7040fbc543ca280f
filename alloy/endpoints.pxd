# Declarations that compile alloy/endpoints.py as alloy.endpoints (setup.py).
cimport cython

from alloy._core cimport Request as CoreRequest
from alloy.pipeline cimport Pipeline


@cython.final
cdef class Endpoints:
    cdef public Pipeline pipeline
    cdef public object health
    cdef public object health_head
    cdef public object metrics

    cpdef dispatch(self, CoreRequest request, connection)

