# Declarations that compile alloy/governance/identity.py as alloy.governance.identity (setup.py):
# the gate reads a key's fields as C slots and asks its models through the vtable.
cimport cython


@cython.final
cdef class ModelRule:
    cdef readonly frozenset exact
    cdef readonly tuple patterns
    cdef readonly dict decided

    cpdef bint allows(self, name) except -1


@cython.final
cdef class KeyIdentity:
    cdef readonly object id
    cdef readonly object name
    cdef readonly object team
    cdef readonly object team_id
    cdef readonly object expires_at
    cdef public bint revoked  # set by the keyring when the counters table has no room for the key
    cdef readonly tuple scopes
    cdef readonly bint counts_tokens
    cdef readonly tuple rules
    cdef readonly tuple reported
    cdef readonly tuple limits

    @cython.locals(rule=ModelRule)
    cpdef bint may_use(self, asked, aliased=*) except -1
