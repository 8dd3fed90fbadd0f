cdef class Density:
    cdef public object side
    cdef public double price, size, notional, x_median
    cdef public object since_ms
    cdef public double last_size, traded, peak_size, traded_total, decrease
    cdef public object state, ended_ms

cdef class DensityTracker:
    cdef public double x, min_notional
    cdef public object scan_ms, grace_ms, keep_ended_ms
    cdef public dict active, ending
    cdef public list ended
    cdef public dict thresholds, medians
    cdef public object next_scan_ms
    cdef public Py_ssize_t n_active, n_ending
    cdef public object next_decide_ms, list_max, next_median_ms
