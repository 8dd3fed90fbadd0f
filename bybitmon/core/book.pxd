# C declarations for the compiled build (Cython reads them beside book.py, which runs
# unchanged without them).
cimport cython

cdef class OrderBook:
    cdef public object symbol
    cdef public dict bids, asks
    cdef public list bid_px, ask_px
    cdef public bint ready, has_snapshot
    cdef public object update_id, seq, ts_ms, cts_ms, counters
    cdef public set touched_bid, touched_ask
    cdef public double touch_min_bid, touch_min_ask
    cdef public object topic_depth

    @cython.locals(bid_px=list, ask_px=list, levels=dict)
    cpdef apply_fields(self, is_snapshot, u, seq, ts_ms, cts_ms, bids, asks)
