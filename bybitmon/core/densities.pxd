# C declarations for the compiled build (Cython reads them beside densities.py, which runs
# unchanged without them).
cimport cython
from .book cimport OrderBook
from ._fast cimport Side as FastSide

cdef class Density:
    cdef public object side
    cdef public double price, size, notional, x_median
    cdef public object since_ms
    cdef public double last_size, traded, peak_size, traded_total, decrease
    cdef public object state, ended_ms, json, active_json

    cpdef fate(self)

cdef class DensityTracker:
    cdef public double x, min_notional
    cdef public object scan_ms, grace_ms, keep_ended_ms
    cdef public dict active, ending
    cdef public list ended
    cdef public dict thresholds, medians
    cdef public object next_scan_ms
    cdef public Py_ssize_t n_active, n_ending
    cdef public object next_decide_ms, list_max, next_median_ms
    cdef public dict _bid_active, _ask_active

    @cython.locals(active=dict, d=Density)
    cpdef on_book_fields(self, OrderBook book, ts_ms, bids, asks, applied)

    @cython.locals(d=Density, ending=dict, active=dict)
    cpdef on_trades(self, trades)

    @cython.locals(d=Density, ending=dict)
    cpdef tick(self, now_ms)

    cpdef _changed(self, Density d, size, ts_ms, book)

    @cython.locals(ended=list, lo=Py_ssize_t, hi=Py_ssize_t, mid=Py_ssize_t)
    cpdef _record_ended(self, Density d)

    @cython.locals(ended=list, n=Py_ssize_t, i=Py_ssize_t, d=Density)
    cpdef _forget_ended(self, now_ms)

    cpdef _decide(self, Density d)

    @cython.locals(levels=FastSide, active=dict, d=Density, threshold=double, old_threshold=double, median=double,
                   min_notional=double, s=double)
    cpdef _scan(self, OrderBook book, ts_ms, bint full=*)

    @cython.locals(d=Density)
    cpdef rows(self, now_ms)

    @cython.locals(d=Density, out=list)
    cpdef json_rows(self, now_ms)

    @cython.locals(d=Density, ending=list, due=list, active=list)
    cpdef _listing(self, now_ms)

    @cython.locals(d=Density, ended=list, back=list, tail=list, times=list, fates=dict)
    cpdef _recent_ended(self, list due, now_ms, n)

    cpdef x_median(self, Density d)

    @cython.locals(medians=dict, thresholds=dict, bid_median=double, ask_median=double, bid=FastSide, ask=FastSide)
    cpdef bint _settled(self, OrderBook book) except -1

cpdef tuple _row(Density d, x_median, state)

cdef dict _ROW_TEMPLATE

@cython.locals(row=dict)
cpdef dict density_json(side, price, size, notional, x_median, since, state, ended)

cpdef dict _row_json(Density d, x_median, state)

@cython.locals(lo=Py_ssize_t, hi=Py_ssize_t, mid=Py_ssize_t, d=Density)
cpdef Py_ssize_t _ended_from(list ended, t) except -1

cpdef _ended_order(Density d)

cpdef bint _ends_before(Density a, Density b) except -1

cpdef _recent_first(Density d)

@cython.locals(out=list, i=Py_ssize_t, j=Py_ssize_t, d=Density)
cpdef list _newest_first(list back, Py_ssize_t n)
