cdef class TradeWindow:
    cdef public object window_ms, retention_ms
    cdef public list _future, _active, _retained
    cdef public set _ids
    cdef public object count, _buy_units, _sell_units, last_price, now_ms, max_held, overflow

cdef class HeatMeter:
    cdef public object short_s, long_s
    cdef public list _count, _units, _second
    cdef public dict _pending
    cdef public object cur, start, long_count, long_units, overflow
