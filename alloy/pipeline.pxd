# Declarations that compile alloy/pipeline.py as alloy.pipeline (setup.py).
cimport cython

from alloy._core cimport Request as CoreRequest
from alloy._core cimport ScanResult as CoreScanResult
from alloy.auth cimport MasterKey
from alloy.call cimport Call
from alloy.routing cimport Routes


@cython.final
cdef class Pipeline:
    cdef public object loop
    cdef public object router
    cdef public MasterKey keys
    cdef public object messages
    cdef public Routes routes
    cdef public object responses
    cdef public object passthrough_allowed
    cdef public RequestIds request_ids
    cdef public object overhead_header
    cdef public object cors
    cdef public list listeners
    cdef public object needs_stream_usage
    cdef public list refusal_listeners
    cdef public dict admin_routes
    cdef public object tracing
    cdef public object governance
    cdef public object governance_watch
    cdef public object cache

    @cython.locals(arrived=double)
    cpdef handle(self, CoreRequest request, path, query, connection)
    cpdef proceed(self, Call call, key, double arrived)
    cpdef admitted(self, Call call)
    cpdef authenticate(self, CoreRequest request)
    @cython.locals(scan=CoreScanResult)
    cpdef Call route_model(self, CoreRequest request, path, query, connection)
    cpdef Call _call_for_model(self, CoreRequest request, path, query, connection, CoreScanResult scan, bint passthrough_only=*)


@cython.final
cdef class RequestIds:
    cdef public object prefix
    cdef public long counter
    cdef public object own_line


