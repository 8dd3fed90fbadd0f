# Declarations for the compiled build (Cython reads them beside monitor.py; the .py file runs
# unchanged without them): C structs for the per-symbol state and the Monitor, typed locals on
# the per-frame path.
cimport cython
from .book cimport OrderBook
from .activity cimport TradeWindow, HeatMeter
from .densities cimport DensityTracker

cdef dict _TRADES_TEMPLATE, _BOOK_TEMPLATE, _HEALTH_TEMPLATE
cdef tuple _TRADES_KEYS, _BOOK_KEYS, _HEALTH_KEYS

@cython.locals(d=dict, i=Py_ssize_t)
cpdef dict _keyed(dict template, tuple keys, tuple values)

@cython.final
cdef class SymbolState:
    cdef public object symbol
    cdef public OrderBook book
    cdef public TradeWindow trades
    cdef public DensityTracker densities
    cdef public HeatMeter heat
    cdef public Py_ssize_t frames
    cdef public object latency_ms, price_decimals

@cython.final
cdef class Monitor:
    cdef dict __dict__
    cdef public object category, window_ms, retention_ms, bps, density_x, density_min_notional
    cdef public object density_list_max, max_symbols, now_ms
    cdef public dict states
    cdef public Py_ssize_t frames, bad_frames, clock_jumps
    cdef public dict bad_reasons, bad_samples
    cdef public bint _jump_pending
    cdef public set needs_resync

    cpdef feed(self, recv_ns, raw)

    cpdef _clock(self, recv_ns, ts_ms)

    cpdef SymbolState _arrive(self, symbol)

    @cython.locals(dens=DensityTracker)
    cpdef _count(self, SymbolState st, recv_ns, ts_ms)

    @cython.locals(st=SymbolState, dens=DensityTracker, book=OrderBook)
    cpdef _book(self, recv_ns, symbol, depth, ts_ms, cts_ms, u, seq, is_snapshot, bids, asks)

    @cython.locals(st=SymbolState, dens=DensityTracker)
    cpdef _trades(self, recv_ns, symbol, ts_ms, trades)

    cpdef Py_ssize_t feed_until(self, frames, until_ms) except -1
