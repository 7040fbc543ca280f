# Included by alloy/_core.pyx (one extension, one concept per file); the twin's section of
# the same name in alloy/_pycore.py does the same through ctypes and the resource module.

# ============================================================================================
# The process: the C library's allocator, the open-file limit
# ============================================================================================

# glibc's mallopt and malloc_trim, called directly: the twin reaches them through ctypes, whose
# import alone holds ~0.35 MB for the life of a gateway that calls each once. Elsewhere (musl,
# macOS) both are no-ops that say so.
cdef extern from *:
    """
    #if defined(__GLIBC__)
    #include <malloc.h>
    static int alloy_mallopt(int param, int value) { return mallopt(param, value); }
    static int alloy_malloc_trim(size_t pad) { return malloc_trim(pad); }
    #else
    static int alloy_mallopt(int param, int value) { return 0; }
    static int alloy_malloc_trim(size_t pad) { return 0; }
    #endif
    """
    int alloy_mallopt(int param, int value)
    int alloy_malloc_trim(size_t pad)

cdef enum:
    M_TRIM_THRESHOLD = -1
    M_MMAP_THRESHOLD = -3


def tune_allocator(int heap_up_to, int trim_above):
    return bool(alloy_mallopt(M_MMAP_THRESHOLD, heap_up_to)) and bool(alloy_mallopt(M_TRIM_THRESHOLD, trim_above))


def trim_heap():
    return bool(alloy_malloc_trim(0))


cdef extern from "<sys/resource.h>":
    ctypedef unsigned long rlim_t
    struct rlimit:
        rlim_t rlim_cur
        rlim_t rlim_max
    int RLIMIT_NOFILE
    int getrlimit(int resource, rlimit *rlim)
    int setrlimit(int resource, const rlimit *rlim)


def raise_open_file_limit():
    # The resource module would be held (~36 KB) for this one call at start.
    cdef rlimit limit
    if getrlimit(RLIMIT_NOFILE, &limit) != 0:
        return False
    if limit.rlim_cur == limit.rlim_max:
        return True
    limit.rlim_cur = limit.rlim_max
    return setrlimit(RLIMIT_NOFILE, &limit) == 0
