# C declarations of the fast path's book side, for the compiled book and densities (book.pxd
# cimports it); the rest of _fast.pyx is private to it.

cdef enum:
    _INLINE_LEVELS = 16  # a Levels holds this many pairs without an allocation of its own

cdef class Levels:
    cdef double *px
    cdef double *sz
    cdef Py_ssize_t n, cap
    cdef double inline_px[_INLINE_LEVELS]
    cdef double inline_sz[_INLINE_LEVELS]

    cdef int push(self, double p, double s) except -1
    cdef list tail(self, Py_ssize_t k)


cdef class Side:
    cdef double *px               # prices, ascending
    cdef double *sz               # their sizes (never 0)
    cdef unsigned char *hit       # 1 where a delta noted the level since the last take()
    cdef Py_ssize_t n, cap, n_hit
    cdef public double touch_min

    cdef int _reserve(self, Py_ssize_t need) except -1
    cdef void _adopt(self, double *px, double *sz, unsigned char *hit, Py_ssize_t cap) noexcept
    cdef Py_ssize_t _find(self, double p) noexcept
    cdef void _set(self, double p, double s) noexcept
    cdef int _merge(self, Levels ch, bint loading) except -1
    cpdef load(self, pairs)
    cpdef update(self, changes)
    cpdef Py_ssize_t trim(self, Py_ssize_t keep, bint low) except -1
    cpdef lowest(self)
    cpdef highest(self)
    cpdef bint reaches(self, Side other) except -1
    cpdef double size_at(self, double price) noexcept
    cpdef tuple sums(self, double lo, double hi)
    cpdef double median(self) except? -1.0
    cpdef list take(self, double threshold, bint every)
    cpdef bint noted(self) noexcept
    cpdef list changes_at(self, changes, dict prices)
    cpdef list items(self)
