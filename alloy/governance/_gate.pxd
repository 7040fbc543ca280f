# The compiled gate: ``alloy/governance/gate.py`` built by Cython as ``alloy.governance._gate`` with
# these declarations (setup.py). The .py file is its own pure twin (ALLOY_PURE=1, or no compiler):
# one source, two builds, the same tests. What is declared here is what a keyed request runs on
# every call: the gate's fields as C slots, and its per-request steps called in C from each other.
# The call is always the shell's compiled Call, its deployment a Deployment and its scan the core's
# ScanResult (or None), so their fields are read in C too (alloy/_core.pxd's rules).
cimport cython

from alloy._core cimport ScanResult as CoreScanResult
from alloy.balancer cimport Deployment
from alloy.call cimport Call
from alloy.governance.identity cimport KeyIdentity

cdef class Governance:
    cdef public object settings
    cdef public object pipeline
    cdef public object master
    cdef public object store
    cdef public object table
    cdef public object keyring
    cdef public object prices
    cdef public object ledger
    cdef public object shared
    cdef public object key_sharing
    cdef public dict held
    cdef public double wall_offset
    cdef public bint sync_failed
    cdef public list timers

    @cython.locals(identity=KeyIdentity)
    cpdef authenticate(self, request)
    cpdef check_model(self, KeyIdentity key, model)
    @cython.locals(scan=CoreScanResult, key=KeyIdentity)
    cpdef admit(self, Call call)
    cpdef _carry_on(self, Call call, reserve, windows, lines, shared)
    cpdef _take(self, KeyIdentity key, reserve, double now)
    @cython.locals(scan=CoreScanResult, deployment=Deployment, key=KeyIdentity)
    cpdef finished(self, Call call)
    cpdef _give_back(self, KeyIdentity key, held, used, cost, double wall)

cpdef _live(KeyIdentity identity)
cpdef _bearer_token(value)
cpdef bint counts_tokens(dict usage)
cpdef estimate_tokens(body, scan=*)
