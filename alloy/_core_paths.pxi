# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py states the rules in plain Python.

# ============================================================================================
# Request paths
# ============================================================================================

import re as _re

cdef object _ENCODED_FORBIDDEN = _re.compile(rb"%(?:2[eEfF]|5[cC]|[01][0-9a-fA-F]|7[fF])")


def clean_path(bytes path):
    cdef const char *p = PyBytes_AS_STRING(path)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(path)
    cdef bint plain = n == 0 or p[n - 1] != 47
    if plain:
        for i in range(n):
            if p[i] == 37 or p[i] == 92 or (p[i] == 47 and i + 1 < n and (p[i + 1] == 47 or p[i + 1] == 46)):
                plain = False
                break
    if plain:
        return path  # the common case: nothing to normalize
    if memchr(p, 92, n) != NULL or _ENCODED_FORBIDDEN.search(path) is not None:
        raise _InvalidPath("the request path holds a backslash or an encoded slash, dot or control character")
    segments = [segment for segment in path.split(b"/") if segment]
    # "..;x" too: servers that take ";" for path parameters (Tomcat, Jetty, Spring) read it as ".."
    if any(segment.partition(b";")[0] in (b".", b"..") for segment in segments):
        raise _InvalidPath("the request path holds a dot segment ('.' or '..')")
    return b"/" + b"/".join(segments)
