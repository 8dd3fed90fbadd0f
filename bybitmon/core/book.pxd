# C declarations for the compiled build (Cython reads them beside book.py, which runs
# unchanged without them). The compiled book's sides are the fast path's Side (C arrays).
cimport cython
from ._fast cimport Side

cdef class OrderBook:
    cdef public object symbol
    cdef public Side bid, ask
    cdef public bint ready, has_snapshot
    cdef public object update_id, seq, ts_ms, cts_ms, counters
    cdef public object topic_depth

    @cython.locals(bid=Side, ask=Side)
    cpdef apply_fields(self, is_snapshot, u, seq, ts_ms, cts_ms, bids, asks)
