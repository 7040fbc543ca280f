# Declarations that compile alloy/observability/metrics.py as alloy.observability.metrics (setup.py).
cimport cython

from alloy.call cimport Call


@cython.final
cdef class Metrics:
    cdef public object gateway
    cdef public object settings
    cdef public dict slots
    cdef public dict seen
    cdef public dict errors
    cdef public dict fallbacks
    cdef public dict model_labels
    cdef public object allowed_rules
    cdef public object allowed
    cdef public dict passthrough_labels
    cdef public object access_log
    cdef public object workers_dir
    cdef public object pid
    cdef public object observer

    cpdef record(self, Call call)
