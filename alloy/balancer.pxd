# Declarations that compile alloy/balancer.py as alloy.balancer (setup.py).
cimport cython


@cython.final
cdef class Deployment:
    cdef public object provider
    cdef public object upstream_model
    cdef public object weight
    cdef public long max_inflight
    cdef public object timeouts
    cdef public object breaker
    cdef public object served_once
    cdef public dict served_once_as
    cdef public long inflight
    cdef public object state
    cdef public double cooling_until
    cdef public object failures
    cdef public object latency
    cdef public long rpm
    cdef public long tpm
    cdef public double window
    cdef public long requests
    cdef public long tokens
    cdef public object shared_quota

    cpdef served_by(self, requested, long attempt)
    cpdef begin(self)
    cpdef succeeded(self)
    cpdef failed(self)
    cpdef abandoned(self)
    cpdef first_byte_after(self, double seconds)


@cython.final
cdef class ModelGroup:
    cdef public object name
    cdef public tuple deployments
    cdef public object strategy
    cdef public object _pick
    cdef public Deployment single
    cdef public object total_weight
    cdef public bint measures_latency
    cdef public object max_retries
    cdef public tuple fallbacks
    cdef public tuple context_window_fallbacks
    cdef public tuple content_policy_fallbacks
    cdef public long turn
    cdef public object affinity
    cdef public object cache_policy
    cdef public object route
    cdef public object ring_owners
    cdef public object ring_after
