# Declarations that compile alloy/call.py as alloy.call (setup.py).
cimport cython

from alloy.balancer cimport Deployment, ModelGroup

from alloy.relay cimport Relay


@cython.final
cdef class Call:
    cdef public object request
    cdef public object connection
    cdef public object path
    cdef public object query
    cdef public object suffix
    cdef public object endpoint
    cdef public object scan  # not typed: the listeners' micro-benchmarks make a Call around the twin's ScanResult
    cdef public object model_name
    cdef public object id_line
    cdef public object request_id_line
    cdef public object key
    cdef public object pipeline  # not typed: a cimport of alloy.pipeline here would import it (and its imports) whenever alloy.call is
    cdef public ModelGroup group
    cdef public Deployment deployment
    cdef public long count
    cdef public Relay relay
    cdef public object attempts
    cdef public bint over
    cdef public bint ended
    cdef public double arrived
    cdef public double sent_at
    cdef public double head_at
    cdef public double ended_at
    cdef public double first_event_at
    cdef public long status
    cdef public object error
    cdef public object tail
    cdef public object _usage
    cdef public Py_ssize_t bytes_out
    cdef public bint failing
    cdef public bint cut
    cdef public object recording
    cdef public object trace

    @cython.locals(group=ModelGroup, deployment=Deployment)
    cpdef start(self)
    cpdef begin(self, Deployment deployment)
    cpdef retries_spent(self, status)
    cpdef head_arrived(self, long status)
    cpdef succeeded(self, tail=*)
    cpdef broke_off(self, error)
    cpdef last_failure_relayed(self, status)
    cpdef failed_with_error(self, error)
    cpdef cancel(self)
    cpdef finish(self)
    cpdef usage_known(self, usage)
