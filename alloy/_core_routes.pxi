# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# Routing table
# ============================================================================================

cdef bint _glob_match(list parts, str name):
    cdef str first = parts[0]
    cdef str last = parts[len(parts) - 1]
    cdef Py_ssize_t pos, limit, found, i
    cdef str part
    if not name.startswith(first) or not name.endswith(last) or len(name) < len(first) + len(last):
        return False
    pos = len(first)
    limit = len(name) - len(last)
    for i in range(1, len(parts) - 1):
        part = parts[i]
        found = name.find(part, pos, limit)
        if found < 0:
            return False
        pos = found + len(part)
    return True


cdef class RouteTable:  # its fields and cpdef method: alloy/_core.pxd
    def __init__(self):
        self._exact = {}
        self._prefixes = {}
        self._wildcards = []

    def add_exact(self, str name, target):
        self._exact[name] = target

    def add_prefix(self, str prefix, target):
        self._prefixes[prefix] = target

    def add_wildcard(self, str pattern, target):
        parts = pattern.split("*")
        literal = len(pattern) - (len(parts) - 1)
        self._wildcards.append((-literal, len(self._wildcards), parts, target))
        self._wildcards.sort(key=lambda entry: entry[:2])

    cpdef tuple lookup(self, str model):
        cdef object target = self._exact.get(model)
        cdef Py_ssize_t slash
        cdef tuple entry
        cdef list parts
        if target is not None:
            return (target, model)
        slash = model.find("/")
        if 0 <= slash < len(model) - 1:
            target = self._prefixes.get(model[:slash])
            if target is not None:
                return (target, model[slash + 1:])
        for entry in self._wildcards:
            parts = <list>entry[2]
            if len(parts) == 1:
                if parts[0] == model:
                    return (entry[3], model)
            elif _glob_match(parts, model):
                return (entry[3], model)
        return None

