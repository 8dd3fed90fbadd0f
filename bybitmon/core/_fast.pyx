# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled core's fast path for the common frames, with the ``.py`` core as its reference.

Two pieces, both used only by the compiled build (``monitor.py`` and ``book.py`` import them
when they run compiled, never when they run as ``.py`` files):

* :func:`route_common`: a well-formed book or trade frame -> the very tuple of fields
  :func:`bybitmon.core.protocol.route` makes of it (:class:`~bybitmon.core.protocol.BookFields`
  / :class:`~bybitmon.core.protocol.TradesFields` order), validated with C types. Anything
  unusual (invalid JSON, other topics, a missing or mistyped field, a number out of range, an
  uncached price string, a new topic) returns ``None`` *before anything is changed*, and the
  caller sends the frame down the reference path, which classifies it. So a bad frame's reason
  and detail always come from the reference code.
* :func:`update_side`: ``book._update`` (a delta's levels into one side's dict and sorted price
  list) with the binary search done on C doubles instead of ``bisect`` over Python floats.

Everything returned or changed is what the reference makes: the same floats (from the same
validated-string caches), the same tuples, the same dict and list contents.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM, PyList_Insert
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.set cimport PySet_Add
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromString

import orjson

from . import protocol as _protocol
from .events import Trade

cdef object _loads = orjson.loads
cdef dict _proto = _protocol.__dict__
cdef dict _BOOK_TOPICS = _protocol._BOOK_TOPICS
cdef object _levels_ref = _protocol._levels
cdef object _trade_symbol_ref = _protocol._trade_symbol
cdef object _Trade = Trade

cdef long long TS_MIN_MS = _protocol.TS_MIN_MS
cdef long long TS_MAX_MS = _protocol.TS_MAX_MS
cdef double MAX_PRICE = _protocol.MAX_PRICE
cdef double MAX_SIZE = _protocol.MAX_SIZE
cdef Py_ssize_t MAX_NUM_CHARS = _protocol._MAX_NUM_CHARS
cdef Py_ssize_t MAX_TRADE_ID_CHARS = _protocol._MAX_TRADE_ID_CHARS

# publicTrade topics whose symbol the reference accepted (its check is a regex).
cdef dict _TRADE_TOPICS = {}

__all__ = ["route_common", "update_side"]


cdef inline bint _is_int(object x):
    return type(x) is int


cdef object _levels(object side):
    """``protocol._levels`` for a side whose every string is in the young caches; otherwise
    the reference itself (which may raise: the caller gives up on the frame)."""
    cdef Py_ssize_t i, n
    cdef object level, p, s
    cdef PyObject *price
    cdef PyObject *size
    cdef list out
    cdef tuple pair
    if type(side) is not list:
        return _levels_ref(side)
    prices = <object>PyDict_GetItem(_proto, "_PRICES")
    sizes = <object>PyDict_GetItem(_proto, "_SIZES")
    n = PyList_GET_SIZE(side)
    out = PyList_New(n)
    for i in range(n):
        level = <object>PyList_GET_ITEM(side, i)
        if type(level) is not list or PyList_GET_SIZE(level) != 2:
            return _levels_ref(side)
        p = <object>PyList_GET_ITEM(level, 0)
        s = <object>PyList_GET_ITEM(level, 1)
        if type(p) is not str or type(s) is not str:
            return _levels_ref(side)
        price = PyDict_GetItem(prices, p)
        if price is NULL:
            return _levels_ref(side)
        size = PyDict_GetItem(sizes, s)
        if size is NULL:
            return _levels_ref(side)
        pair = PyTuple_New(2)
        Py_INCREF(<object>price)
        PyTuple_SET_ITEM(pair, 0, <object>price)
        Py_INCREF(<object>size)
        PyTuple_SET_ITEM(pair, 1, <object>size)
        Py_INCREF(pair)
        PyList_SET_ITEM(out, i, pair)
    return out


cdef object _book(dict msg, str topic):
    cdef long long ts, u, seq, cts_v
    route = PyDict_GetItem(_BOOK_TOPICS, topic)
    if route is NULL or <object>route is None:
        return None
    kind = msg.get("type")
    if kind == "delta":
        is_snapshot = False
    elif kind == "snapshot":
        is_snapshot = True
    else:
        return None
    ts_o = msg.get("ts")
    data = msg.get("data")
    if type(data) is not dict:
        return None
    u_o = (<dict>data).get("u")
    seq_o = (<dict>data).get("seq")
    if not (_is_int(ts_o) and _is_int(u_o) and _is_int(seq_o)):
        return None
    try:
        ts = ts_o
        u = u_o
        seq = seq_o
    except OverflowError:
        return None
    cts = msg.get("cts")
    if not _is_int(cts):
        cts = None
    else:
        try:
            cts_v = cts
        except OverflowError:
            return None
        if not TS_MIN_MS <= cts_v < TS_MAX_MS:
            return None
    if not (TS_MIN_MS <= ts < TS_MAX_MS and 0 <= u and 0 <= seq):
        return None  # (u and seq fit a signed 64-bit integer: the conversion checked that)
    b = (<dict>data).get("b")
    a = (<dict>data).get("a")
    if type(b) is not list or type(a) is not list:
        return None
    try:
        bids = _levels(b)
        asks = _levels(a)
    except (KeyError, TypeError, ValueError):
        return None
    r = <tuple>(<object>route)
    return (r[0], r[1], ts_o, cts, u_o, seq_o, is_snapshot, bids, asks)


cdef object _trades(dict msg, str topic):
    cdef long long ts, fill
    cdef double price, size
    cdef Py_ssize_t i, n
    cdef bint is_buy
    symbol = PyDict_GetItem(_TRADE_TOPICS, topic)
    if symbol is NULL:
        try:
            sym = _trade_symbol_ref(topic)
        except ValueError:
            return None
        if len(_TRADE_TOPICS) > 100_000:
            _TRADE_TOPICS.clear()
        _TRADE_TOPICS[topic] = sym
    else:
        sym = <object>symbol
    ts_o = msg.get("ts")
    data = msg.get("data")
    if not _is_int(ts_o) or type(data) is not list:
        return None
    try:
        ts = ts_o
    except OverflowError:
        return None
    if not TS_MIN_MS <= ts < TS_MAX_MS:
        return None
    n = PyList_GET_SIZE(data)
    trades = PyList_New(n)
    for i in range(n):
        t = <object>PyList_GET_ITEM(data, i)
        if type(t) is not dict:
            return None
        fill_o = (<dict>t).get("T")
        side = (<dict>t).get("S")
        p = (<dict>t).get("p")
        v = (<dict>t).get("v")
        trade_id = (<dict>t).get("i")
        if not _is_int(fill_o) or type(p) is not str or type(v) is not str or type(trade_id) is not str:
            return None
        if len(<str>p) > MAX_NUM_CHARS or len(<str>v) > MAX_NUM_CHARS or len(<str>trade_id) > MAX_TRADE_ID_CHARS:
            return None
        if type(side) is not str:
            return None
        if side == "Buy":
            is_buy = True
        elif side == "Sell":
            is_buy = False
        else:
            return None
        try:
            fill = fill_o
            price_o = PyFloat_FromString(p)
            size_o = PyFloat_FromString(v)
        except (OverflowError, ValueError):
            return None
        price = price_o
        size = size_o
        if not (0.0 < price <= MAX_PRICE and 0.0 <= size <= MAX_SIZE and TS_MIN_MS <= fill < TS_MAX_MS):
            return None
        tr = _Trade(fill_o, is_buy, price_o, size_o, v, trade_id, (<dict>t).get("BT") is True)
        Py_INCREF(tr)
        PyList_SET_ITEM(trades, i, tr)
    return (sym, ts_o, trades)


def route_common(raw):
    """The fields :func:`~bybitmon.core.protocol.route` makes of a well-formed book frame (a
    9-tuple in :class:`BookFields` order) or trade frame (``(symbol, ts_ms, trades)``); None
    for anything else, which the caller hands to ``route`` (nothing was changed)."""
    if type(raw) is not bytes and type(raw) is not str:
        return None
    try:
        msg = _loads(raw)
    except Exception:
        return None
    if type(msg) is not dict:
        return None
    topic = (<dict>msg).get("topic")
    if type(topic) is not str:
        return None
    if (<str>topic).startswith("orderbook."):
        return _book(<dict>msg, <str>topic)
    if (<str>topic).startswith("publicTrade."):
        return _trades(<dict>msg, <str>topic)
    return None


cdef inline Py_ssize_t _bisect_left(list prices, double p):
    """``bisect_left(prices, p)`` on an all-float list; -1 when an element is not a float."""
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(prices), mid
    cdef object item
    while lo < hi:
        mid = (lo + hi) >> 1
        item = <object>PyList_GET_ITEM(prices, mid)
        if type(item) is not float:
            return -1
        if PyFloat_AS_DOUBLE(item) < p:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef class _UpdateSide:
    """``book._update`` on C doubles, with the reference ``_update`` for anything else."""

    cdef object reference

    def __init__(self, reference=None):
        self.reference = reference

    def bind(self, reference):
        """This fast path with ``reference`` (``book._update``) as its fallback."""
        return _UpdateSide(reference)

    def __call__(self, dict levels, list prices, changes, set touched, double touch_min):
        """Apply a delta's ``(price, size)`` changes to one side (``levels``: price -> size;
        ``prices``: the same prices ascending). Size 0.0 deletes.

        Pairs of two Python floats (what the parser makes) are applied here, on C doubles; from
        the first pair that is not (or a price list holding something else) the rest goes to
        the reference, so the result is the reference's in every case."""
        _apply_changes(levels, prices, changes, touched, touch_min, self.reference)


update_side = _UpdateSide()


cdef _apply_changes(dict levels, list prices, changes, set touched, double touch_min, reference):
    cdef double p, s
    cdef Py_ssize_t i, k, n
    cdef object pair, po, so
    if type(changes) is not list and type(changes) is not tuple:
        changes = list(changes)
    n = len(changes)
    for k in range(n):
        pair = changes[k]
        if type(pair) is not tuple or len(<tuple>pair) != 2:
            reference(levels, prices, changes[k:], touched, touch_min)
            return
        po = (<tuple>pair)[0]
        so = (<tuple>pair)[1]
        if type(po) is not float or type(so) is not float:
            reference(levels, prices, changes[k:], touched, touch_min)
            return
        p = PyFloat_AS_DOUBLE(po)
        s = PyFloat_AS_DOUBLE(so)
        if p != p:  # NaN: insort and bisect_left place it differently; the reference decides
            reference(levels, prices, changes[k:], touched, touch_min)
            return
        if s == 0.0:
            if PyDict_GetItem(levels, po) is not NULL:
                i = _bisect_left(prices, p)
                if i < 0:
                    reference(levels, prices, changes[k:], touched, touch_min)
                    return
                PyDict_DelItem(levels, po)
                del prices[i]
        else:
            if PyDict_GetItem(levels, po) is NULL:
                i = _bisect_left(prices, p)
                if i < 0:
                    reference(levels, prices, changes[k:], touched, touch_min)
                    return
                PyList_Insert(prices, i, po)
            if s >= touch_min:
                PySet_Add(touched, po)
            PyDict_SetItem(levels, po, so)
