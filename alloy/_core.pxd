# Declarations of the core's classes that the compiled shell reads on a request's way (the hot
# modules' .pxd files cimport them), so a typed field or local reads their slots in C and calls
# their cpdef methods through the vtable instead of a Python attribute lookup each time.
#
# Rules (README.md, "The compiled core and its pure-Python twin"):
# - A class declared here has every field and every cdef/cpdef method declared here, not in the
#   .pyx/.pxi that implements it (Cython's rule for a .pxd next to its .pyx).
# - The shell's .py files import these classes from ``alloy.core`` (the twin's under ALLOY_PURE=1);
#   only their .pxd files cimport them from here, under a name of their own
#   (``from alloy._core cimport RequestParser as CoreRequestParser``): Cython refuses a .py's
#   ``from alloy.core import RequestParser`` when that name is a type cimported from another module
#   ("Assignment to non-lvalue"). In a compiled build ``alloy.core`` exports these very types (a
#   field typed with one of them refuses any other object); a compiled shell module imports
#   ``alloy._core`` when it starts, so it cannot run with the twin's classes by accident.
# - Only what always holds a core object is typed with one: a field or local that may hold a
#   stand-in (the Messages endpoint's ChatRequest for a Request, the httpx backend's head for a
#   ResponseHead) stays ``object``.
# - The classes are final: a cpdef method is then called directly (no check for an override).
cimport cython


cdef class _ChunkedDecoder:
    cdef int state
    cdef long long remaining
    cdef object error
    cdef bint finished
    cdef Py_ssize_t trailer_bytes

    cdef Py_ssize_t feed(self, const char *p, Py_ssize_t pos, Py_ssize_t end, list pieces) except -1


@cython.final
cdef class Request:
    cdef readonly bytes method
    cdef readonly bytes target
    cdef readonly int version
    cdef readonly dict headers
    # The body as it is forwarded: its bytes, or, for a body over VIEW_BODY_ABOVE bytes that came
    # whole in the read that carried its head, a memoryview of that read (no copy). ``body`` (a
    # property) is always bytes, made from this on first use and kept.
    cdef readonly object body_buffer
    cdef bytes _body
    cdef readonly bint keep_alive
    # ``encode_forwarded(headers, forwarded_skip, <the parser's prefixes>)``, written while the head
    # was parsed by a parser given forwarding sets (else both None): see RequestParser.
    cdef readonly bytes forwarded
    cdef readonly object forwarded_skip


@cython.final
cdef class RequestParser:
    cdef Py_ssize_t _max_header
    cdef long long _max_body
    cdef bytes _buf
    cdef int _state
    cdef Py_ssize_t _scan_from
    cdef Request _current
    cdef long long _remaining
    cdef list _body_parts
    cdef long long _body_size
    cdef _ChunkedDecoder _chunked
    cdef bytearray _chunked_body  # a chunked body, grown in place (see the twin)
    cdef readonly bint expect_continue
    cdef readonly object error
    cdef int _empty_lines
    cdef bytes _method  # of the request being read, once its request line is read
    cdef frozenset _forward_skip
    cdef tuple _forward_prefixes

    cpdef list feed(self, bytes data)
    cdef int _feed(self, bytes data, list done) except -1
    cdef Py_ssize_t _feed_chunked(self, const char *p, Py_ssize_t pos, Py_ssize_t n) except -1
    cdef int _check_incomplete_head(self, const char *p, Py_ssize_t pos, Py_ssize_t n) except -1
    cdef int _start_request(self, const char *p, Py_ssize_t n) except -1
    cdef Request _finish_request(self)


@cython.final
cdef class ResponseHead:
    cdef readonly int status
    cdef readonly int version
    cdef list _headers
    cdef bytes _fields  # the field lines as received, when the parser made a block (see block)
    cdef public bint keep_alive
    cdef readonly long long content_length
    cdef readonly bint chunked
    # The client-facing header lines (``name: value\r\n``, lower-cased names, the names of
    # ``block_skip`` left out): what ``encode_headers(headers, block_skip)`` returns, written while
    # the head was parsed by a parser given a ``skip`` set, else None. Such a head builds its
    # ``headers`` list only when asked, and ``get`` reads the field lines without building it.
    cdef readonly bytes block
    cdef readonly object block_skip


@cython.final
cdef class ResponseParser:
    cdef bint _head_request
    cdef Py_ssize_t _max_header
    cdef object _skip
    cdef bytes _buf
    cdef int _state
    cdef long long _remaining
    cdef _ChunkedDecoder _chunked
    cdef ResponseHead _head
    cdef public bint done

    cpdef list feed(self, bytes data)
    cdef void _finish(self, Py_ssize_t pos, Py_ssize_t n)
    cdef ResponseHead _parse_head(self, const char *p, Py_ssize_t n)
    cdef ResponseHead _parse_fields_to_block(self, const char *p, Py_ssize_t pos, Py_ssize_t n, int status, int version)
    cdef ResponseHead _framed(self, int status, int version, list headers, bytes fields, bytes block, bint has_close,
                              bint has_keep_alive, list content_lengths, list transfer_encodings)


@cython.final
cdef class ScanResult:
    cdef readonly object model
    cdef readonly bint stream
    cdef readonly object body  # what was scanned, to forward: bytes, or the request's memoryview
    cdef readonly object user  # the raw JSON of a top-level "user" / "metadata" value, or None
    cdef readonly object metadata
    cdef readonly long max_tokens  # the answer's token cap asked for (see the twin), 0 when none
    cdef Py_ssize_t _span_start
    cdef Py_ssize_t _span_end
    cdef object _parsed


@cython.final
cdef class RouteTable:
    cdef dict _exact
    cdef dict _prefixes
    cdef list _wildcards

    cpdef tuple lookup(self, str model)
