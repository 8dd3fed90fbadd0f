cdef class OrderBook:
    cdef public object symbol
    cdef public dict bids, asks
    cdef public list bid_px, ask_px
    cdef public bint ready, has_snapshot
    cdef public object update_id, seq, ts_ms, cts_ms, counters
    cdef public set touched_bid, touched_ask
    cdef public double touch_min_bid, touch_min_ask
    cdef public object topic_depth
