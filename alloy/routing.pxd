# Declarations that compile alloy/routing.py as alloy.routing (setup.py).
cimport cython

from alloy._core cimport RouteTable as CoreRouteTable
from alloy._core cimport ScanResult as CoreScanResult


@cython.final
cdef class Routes:
    cdef public object default
    cdef public object default_group
    cdef public CoreRouteTable table
    cdef public list listed
    cdef public list configured
    cdef public dict aliases
    cdef public object counts_tokens
    cdef public object listing

    cpdef tuple for_model(self, CoreScanResult scan)
