# C declarations for the compiled build (Cython reads them beside activity.py, which runs
# unchanged without them). Counts and volume units stay Python ints (units can pass 2**63).
cimport cython

@cython.locals(seen=dict)
cpdef size_units(size)

cpdef _insert_in_order(list entries, Py_ssize_t head, tuple entry)

cdef class TradeWindow:
    cdef public object window_ms, retention_ms
    cdef public list _future, _active, _retained
    cdef public Py_ssize_t _active_head
    cdef public set _ids
    cdef public object count, _buy_units, _sell_units, last_price, now_ms, max_held, overflow

    @cython.locals(ids=set, fresh=list, active=list, late=list, tail=list, entry=tuple, head=Py_ssize_t,
                   tid=object)
    cpdef add_many(self, trades, now_ms)

    @cython.locals(future=list, active=list, retained=list, entry=tuple, ids=set, head=Py_ssize_t, n=Py_ssize_t)
    cpdef advance(self, now_ms)

cdef class HeatMeter:
    cdef public object short_s, long_s
    cdef public list _count, _units, _second
    cdef public dict _pending
    cdef public object cur, start, long_count, long_units, overflow

    @cython.locals(s="long long", cur="long long", oldest="long long", i=Py_ssize_t, long_s=Py_ssize_t,
                   second=list, count=list, held=list)
    cpdef add(self, trades, now_ms)

    cpdef advance(self, now_ms)

    @cython.locals(s="long long", i=Py_ssize_t, long_s=Py_ssize_t, second=list, count=list, held=list, pending=dict)
    cpdef _totals(self, first, last)

    cpdef _long_totals(self, c)

    cpdef read(self, now_ms)

    cpdef tuple values(self, now_ms)
