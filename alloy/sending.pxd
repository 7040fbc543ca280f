# Declarations that compile alloy/sending.py as alloy.sending (setup.py). TranslatedProvider stays
# a Python class.
cimport cython

from alloy._core cimport ScanResult as CoreScanResult
from alloy.balancer cimport Deployment
from alloy.call cimport Call
from alloy.relay cimport PassthroughRelay


@cython.final
cdef class ForwardingPolicy:
    cdef public frozenset chosen
    cdef public frozenset skip
    cdef public object prefixes
    cdef public tuple readd
    cdef public bytes configured_lines

    cpdef request_lines(self, request)
    cpdef lines(self, headers, skip=*)


@cython.final
cdef class PassthroughProvider:
    cdef public object name
    cdef public bytes name_bytes
    cdef public object upstream
    cdef public object api
    cdef public object api_version
    cdef public bytes base_path
    cdef public bint plain_paths
    cdef public ForwardingPolicy forwarding
    cdef public frozenset response_skip
    cdef public bytes header_block
    cdef public object secret

    @cython.locals(relay=PassthroughRelay, scan=CoreScanResult, size=Py_ssize_t)
    cpdef send(self, Call call, Deployment deployment, served_by, long total_ticks)
