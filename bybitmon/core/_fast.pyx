# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled core's fast path for the common frames, with the ``.py`` core as its reference.

Used only by the compiled build: ``monitor.py`` imports ``route_common``, and ``book.py`` binds
its book side to :class:`Side` through ``core._fast_path``, when it runs compiled, never when it
runs as a ``.py`` file:

* :func:`route_common`: a well-formed book or trade frame -> the very tuple of fields
  :func:`bybitmon.core.protocol.route` makes of it (:class:`~bybitmon.core.protocol.BookFields`
  / :class:`~bybitmon.core.protocol.TradesFields` order), validated with C types. Anything
  unusual (invalid JSON, other topics, a missing or mistyped field, a number out of range, an
  uncached price string, a new topic) returns ``None`` *before anything is changed*, and the
  caller sends the frame down the reference path, which classifies it. So a bad frame's reason
  and detail always come from the reference code.
* :class:`Side`: ``book.BookSide`` (one side of a book) on C arrays; the compiled ``OrderBook``
  holds two, typed (``_fast.pxd``), so the book and the densities call them in C.
* :class:`Levels`: a book side as the scanner reads it, its pairs as C doubles, which
  :class:`Side` (its ``update`` and ``changes_at``) reads without a tuple or a float per level;
  to anything else it is the reference's list of ``(price, size)`` tuples.
* :func:`ndjson_pairs`, :func:`recording_pairs`: the replay reader's line loop over a chunk of
  NDJSON or of a recording (split, decode, pair), for ``transport.recording`` when the compiled
  core runs; its reference is the reader's own loop, which takes any chunk they decline.

Everything returned or changed is what the reference makes (book sides as :class:`Levels`, equal
to its lists): the same floats, the same tuples, the same levels in the same order.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromString, PyFloat_FromDouble
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcmp, memcpy, memmove, memset
from libc.stdlib cimport qsort
from libc.limits cimport LLONG_MAX
from libc.math cimport fabs, isfinite

cdef extern from "Python.h":
    ctypedef struct _TypeAlloc "PyTypeObject":  # the one slot of a type read here
        PyObject *(*tp_alloc)(_TypeAlloc *, Py_ssize_t)
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL

import math

import orjson

from . import protocol as _protocol
from .events import Trade

cdef object _loads = orjson.loads
cdef object _math_fsum = math.fsum
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

# The scanner's last topics, by a few of their bytes: (topic bytes, kind, what the dict above or
# protocol._BOOK_TOPICS gave for it). A frame's topic found here needs no str made and hashed;
# what a topic maps to never changes, so an entry stays right after those dicts are cleared.
cdef enum:
    _TOPIC_SLOTS = 1024  # a category's symbols (watch --all) x book and trades, mostly apart
cdef list _SEEN_TOPICS = [None] * _TOPIC_SLOTS


cdef inline Py_ssize_t _topic_slot(const char *v, Py_ssize_t m) noexcept:
    """A slot of _SEEN_TOPICS for the topic ``v[:m]``: FNV-1a over all its bytes. (Its last
    few bytes alone put every ...USDT topic of one length in one slot, and a replay of three
    symbols then made a str of the topic and looked it up at almost every frame.)"""
    cdef unsigned int h = 2166136261U
    cdef Py_ssize_t i
    for i in range(m):
        h = (h ^ <unsigned char>v[i]) * 16777619U
    return (h ^ (h >> 16)) & (_TOPIC_SLOTS - 1)

__all__ = ["Levels", "Side", "route_common", "bind"]


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
        tr = _new_trade(fill_o, is_buy, price_o, size_o, v, trade_id, (<dict>t).get("BT") is True)
        Py_INCREF(tr)
        PyList_SET_ITEM(trades, i, tr)
    return (sym, ts_o, trades)


def route_common(raw):
    """The fields :func:`~bybitmon.core.protocol.route` makes of a well-formed book frame (a
    9-tuple in :class:`BookFields` order) or trade frame (``(symbol, ts_ms, trades)``); None
    for anything else, which the caller hands to ``route`` (nothing was changed)."""
    if type(raw) is not bytes and type(raw) is not str:
        return None
    fields = _scan_raw(raw)
    if fields is not None:
        return fields
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


cdef class Levels:
    """One side of a book frame as the scanner read it: its (price, size) pairs as C doubles,
    without a Python object per level.

    To any code it is a read-only sequence of ``(price, size)`` float tuples, made on demand:
    what the reference's list of pairs holds, equal to it (``==``) and shown like it. The fast
    path (:class:`Side`) reads the doubles directly."""

    def __cinit__(self, *args):
        self.px = self.inline_px
        self.sz = self.inline_sz
        self.n = 0
        self.cap = _INLINE_LEVELS

    def __init__(self, pairs=()):
        """``Levels([(price, size), ...])``: what the scanner would make of a side with these
        values; each must be in the parser's ranges (0 < price <= MAX_PRICE, 0 <= size <=
        MAX_SIZE), else ValueError."""
        cdef double p, s
        for pair in pairs:
            p, s = pair
            if not (0.0 < p <= MAX_PRICE and 0.0 <= s <= MAX_SIZE):
                raise ValueError(f"level out of range: {pair!r}")
            self.push(p, s)

    def __dealloc__(self):
        if self.px != self.inline_px:
            PyMem_Free(self.px)

    cdef int push(self, double p, double s) except -1:
        cdef double *block
        cdef Py_ssize_t cap, i
        if self.n == self.cap:
            cap = self.cap * 2
            block = <double *>PyMem_Malloc(2 * cap * sizeof(double))
            if block is NULL:
                raise MemoryError()
            for i in range(self.n):
                block[i] = self.px[i]
                block[cap + i] = self.sz[i]
            if self.px != self.inline_px:
                PyMem_Free(self.px)
            self.px = block
            self.sz = block + cap
            self.cap = cap
        self.px[self.n] = p
        self.sz[self.n] = s
        self.n += 1
        return 0

    cdef list tail(self, Py_ssize_t k):
        """The pairs from the k-th on, as the reference's list of float tuples."""
        return [(self.px[i], self.sz[i]) for i in range(k, self.n)]

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.tail(0)[index]
        cdef Py_ssize_t i = index
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("Levels index out of range")
        return (self.px[i], self.sz[i])

    def __iter__(self):
        return iter(self.tail(0))

    def __eq__(self, other):
        if isinstance(other, (Levels, list, tuple)):
            return self.tail(0) == list(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return repr(self.tail(0))


def bind(name, reference):
    """The fast path ``name`` for ``reference``, the ``.py`` class it stands for
    (``core._fast_path`` calls this)."""
    if name == "Side":
        return Side
    raise KeyError(name)


cdef enum:
    _FEW_ACTIVE = 16


cdef list _changes_at(Levels ch, dict prices):
    """:meth:`Side.changes_at` on the scanner's doubles."""
    cdef Py_ssize_t k, j, m
    cdef double at[_FEW_ACTIVE]
    cdef list out = []
    if not prices:
        return out
    m = _float_keys(prices, at)
    if m >= 0:
        # A handful of densities, all at float prices: compare the doubles, no float made
        # per level (a float key equals a float exactly when their doubles are equal).
        for k in range(ch.n):
            for j in range(m):
                if at[j] == ch.px[k]:
                    out.append((PyFloat_FromDouble(ch.px[k]), PyFloat_FromDouble(ch.sz[k])))
                    break
        return out
    for k in range(ch.n):
        po = PyFloat_FromDouble(ch.px[k])
        if PyDict_GetItem(prices, po) is not NULL:
            out.append((po, PyFloat_FromDouble(ch.sz[k])))
    return out


cdef Py_ssize_t _float_keys(dict d, double *out) noexcept:
    """The keys of ``d`` as doubles into ``out``, and how many: -1 when there are more than
    _FEW_ACTIVE or one is not a float."""
    cdef Py_ssize_t pos = 0, n = 0
    cdef PyObject *key
    cdef PyObject *value
    if PyDict_Size(d) > _FEW_ACTIVE:
        return -1
    while PyDict_Next(d, &pos, &key, &value):
        if type(<object>key) is not float:
            return -1
        out[n] = PyFloat_AS_DOUBLE(<object>key)
        n += 1
    return n




# -- book and trade frames read straight from their bytes --------------------------------------
#
# The common book frame, {"topic":"orderbook.50.X","type":"delta","ts":..,"data":{"s":"X",
# "b":[["p","s"],..],"a":[..],"u":..,"seq":..},"cts":..}, and the common trade frame,
# {"topic":"publicTrade.X","type":"snapshot","ts":..,"data":[{"T":..,"s":"X","S":"Buy","v":"..",
# "p":"..","L":"..","i":"..","BT":false,"RPI":false,"seq":..},..]}, are read here without orjson:
# price and size strings become doubles directly, the same doubles float(str) makes (see
# _decimal). Only a narrow grammar is taken: the topic before data; keys in any order but each
# at most once and no other key; strings of printable ASCII without escapes; integers of at most
# 18 digits, no sign, no leading zero, no fraction or exponent; prices and sizes as
# DIGITS[.DIGITS] of at most 64 characters, in the reference's ranges; true/false; JSON
# whitespace between tokens; nothing after the object. Anything else returns None before
# anything is changed, and the frame takes the orjson path above (then, if need be, the
# reference), which classifies it. Every byte of a taken frame belongs to a token checked here,
# so a taken frame is valid JSON (ASCII, hence UTF-8) that orjson would read to the same values.

ctypedef struct _Cur:
    const char *p
    const char *end


cdef inline void _ws(_Cur *c) noexcept:
    cdef unsigned char ch
    while c.p < c.end:
        ch = <unsigned char>c.p[0]
        if ch > 32:  # every token starts above the space: one test in the usual case
            return
        if ch == 32 or ch == 10 or ch == 13 or ch == 9:
            c.p += 1
        else:
            return


# Bytes a plain string may hold: printable ASCII but the quote and the backslash.
cdef unsigned char _PLAIN[256]
for _i in range(256):
    _PLAIN[_i] = 32 <= _i <= 126 and _i != 34 and _i != 92


cdef inline bint _next_is(_Cur *c, char want) noexcept:
    """Whether the next token starts with ``want``, any whitespace before it skipped (the usual
    case, no whitespace, costs one test)."""
    if c.p < c.end and c.p[0] == want:
        return True
    _ws(c)
    return c.p < c.end and c.p[0] == want


cdef inline bint _eat(_Cur *c, char want) noexcept:
    if _next_is(c, want):
        c.p += 1
        return True
    return False


cdef inline Py_ssize_t _plain_string(_Cur *c, const char **start) noexcept:
    """A string of printable ASCII without escapes: its length (``start`` set), or -1."""
    cdef const char *s
    cdef const char *p
    cdef const char *end
    if not _next_is(c, b'"'):
        return -1
    s = p = c.p + 1
    end = c.end  # locals: a store through c could alias the bytes read, and be read again
    # No bound test: the buffer (a bytes object's, or a str's ASCII) ends with a NUL, which
    # _PLAIN refuses, as it does any NUL inside.
    while _PLAIN[<unsigned char>p[0]]:
        p += 1
    if p < end and p[0] == b'"':
        start[0] = s
        c.p = p + 1
        return p - s
    return -1  # the text ended, or a control character, non-ASCII byte or backslash


cdef inline bint _uint(_Cur *c, long long *out) noexcept:
    """A JSON integer >= 0 of at most 18 digits (so it fits a signed 64-bit integer)."""
    cdef const char *s
    cdef const char *p
    cdef const char *end
    cdef unsigned long long v = 0  # 19 digits fit (and are refused below)
    cdef Py_ssize_t digits
    _ws(c)
    s = p = c.p
    end = c.end if c.end - c.p <= 19 else c.p + 19  # 19 digits read at most: one more than allowed
    while p < end and <unsigned char>(p[0] - 48) <= 9:
        v = v * 10 + <unsigned long long>(p[0] - 48)
        p += 1
    digits = p - s
    if digits == 0 or digits > 18 or (digits > 1 and s[0] == b'0'):
        return False
    c.p = p
    if p < c.end and (p[0] == b'.' or p[0] == b'e' or p[0] == b'E'):
        return False
    out[0] = <long long>v
    return True


cdef double[23] _POW10
for _i in range(23):
    _POW10[_i] = 10.0 ** _i  # exact: every power of ten up to 1e22 is a double


cdef inline bint _decimal(_Cur *c, double *out) except -1:
    """A price or size string as the double float() makes of it (see :func:`_decimal_span`)."""
    cdef const char *s
    cdef Py_ssize_t n
    return _decimal_span(c, out, &s, &n)


cdef inline bint _decimal_span(_Cur *c, double *out, const char **start, Py_ssize_t *length) except -1:
    """A string of DIGITS[.DIGITS], at most MAX_NUM_CHARS, as the double float() makes of it,
    read in one pass; ``start`` and ``length`` get its characters. False for anything else.

    With at most 15 digits in all, the digits as an integer m (< 2**53) and 10**k (k <= 22
    fractional digits) are both exact doubles, so m / 10**k, one IEEE division, is the correctly
    rounded value of the decimal: what float() (David Gay's strtod, correctly rounded) gives.
    Longer strings go to PyOS_string_to_double, the function float() itself calls."""
    cdef const char *s
    cdef const char *p
    cdef const char *end
    cdef const char *dot = NULL
    cdef char *stop
    cdef unsigned long long m = 0
    cdef unsigned char ch
    cdef Py_ssize_t n
    if not _next_is(c, b'"'):
        return False
    s = p = c.p + 1
    # One bound for the text's end and the length limit: at most MAX_NUM_CHARS characters and
    # the closing quote are read.
    end = c.end if c.end - s <= MAX_NUM_CHARS else s + MAX_NUM_CHARS + 1
    while True:
        if p >= end:
            return False
        ch = <unsigned char>p[0]
        if <unsigned char>(ch - 48) <= 9:
            m = m * 10 + <unsigned long long>(ch - 48)  # used only for at most 15 digits
        elif ch == 46:  # .
            if dot != NULL or p == s:
                return False
            dot = p
        elif ch == 34:  # "
            break
        else:
            return False
        p += 1
    n = p - s
    if n == 0 or dot == p - 1:
        return False
    c.p = p + 1
    start[0] = s
    length[0] = n
    if n - (dot != NULL) <= 15:
        out[0] = <double>m / _POW10[p - 1 - dot if dot != NULL else 0]
        return True
    out[0] = PyOS_string_to_double(s, &stop, NULL)
    return stop == s + n


cdef inline int _after_element(_Cur *c) noexcept:
    """After an array's element: 1 (``,``: another follows), 0 (``]``: the array ended), -1."""
    if _eat(c, b','):
        return 1
    if _eat(c, b']'):
        return 0
    return -1


cdef bint _scan_level(_Cur *c, Levels out) except -1:
    """``["p","s"]`` -> one more pair of ``out``, with the reference's range checks; False
    (nothing added) for anything else."""
    cdef double p, q
    if not _eat(c, b'['):
        return False
    if not _decimal(c, &p) or not _eat(c, b','):
        return False
    if not _decimal(c, &q) or not _eat(c, b']'):
        return False
    if not (0.0 < p <= MAX_PRICE and 0.0 <= q <= MAX_SIZE):
        return False
    out.push(p, q)
    return True


cdef object _scan_array(_Cur *c, bint of_trades):
    """``[level, ...]`` (a book side, as :class:`Levels`) or ``[trade, ...]`` (``of_trades``, the
    list of what :func:`_scan_trade` makes of each), or None."""
    cdef int more
    cdef Levels levels = None
    cdef list trades = None
    if of_trades:
        trades = []
    else:
        levels = Levels.__new__(Levels)  # no __init__ (its argument parsing costs more than the rest)
    if not _eat(c, b'['):
        return None
    if not _eat(c, b']'):
        while True:
            if of_trades:
                item = _scan_trade(c)
                if item is None:
                    return None
                trades.append(item)
            elif not _scan_level(c, levels):
                return None
            more = _after_element(c)
            if more < 0:
                return None
            if more == 0:
                break
    return trades if of_trades else levels


cdef inline bint _key_is(const char *k, Py_ssize_t n, const char *name, Py_ssize_t m) noexcept:
    return n == m and memcmp(k, name, m) == 0


cdef inline Py_ssize_t _member_key(_Cur *c, const char **k) noexcept:
    """A member's ``"key":``: the key's length (``k`` set), or -1."""
    cdef Py_ssize_t n = _plain_string(c, k)
    if n < 0 or not _eat(c, b':'):
        return -1
    return n


cdef inline int _after_member(_Cur *c, int *seen, int bit) noexcept:
    """After an object's member whose key is ``bit``: -1 (the key came before, or neither ``,``
    nor ``}`` follows), 1 (another member follows), 0 (the object ended)."""
    if seen[0] & bit:
        return -1
    seen[0] |= bit
    if _eat(c, b','):
        return 1
    if _eat(c, b'}'):
        return 0
    return -1


cdef object _scan_data(_Cur *c, long long *u, long long *seq, list sides):
    """The ``data`` object: u, seq and both sides into ``sides``; None unless all is well."""
    cdef const char *k
    cdef const char *v
    cdef Py_ssize_t n
    cdef int seen = 0, bit, more
    if not _eat(c, b'{'):
        return None
    while True:
        n = _member_key(c, &k)
        if n < 0:
            return None
        if _key_is(k, n, "b", 1) or _key_is(k, n, "a", 1):
            bit = 1 if k[0] == b'b' else 2
            side = _scan_array(c, False)
            if side is None:
                return None
            sides[bit - 1] = side
        elif _key_is(k, n, "u", 1):
            bit = 4
            if not _uint(c, u):
                return None
        elif _key_is(k, n, "seq", 3):
            bit = 8
            if not _uint(c, seq):
                return None
        elif _key_is(k, n, "s", 1):
            bit = 16
            if _plain_string(c, &v) < 0:
                return None
        else:
            return None
        more = _after_member(c, &seen, bit)  # a repeated key: orjson keeps the last, the reference decides
        if more < 0:
            return None
        if more == 0:
            break
    if seen & 15 != 15:
        return None
    return True


cdef object _scan_raw(raw):
    """:func:`_scan` on a bytes frame, or on an ASCII str's own bytes (no copy); None for
    anything else."""
    cdef Py_ssize_t n
    cdef const char *buf
    if type(raw) is bytes:
        return _scan(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    if type(raw) is str and PyUnicode_IS_COMPACT_ASCII(raw):
        buf = PyUnicode_AsUTF8AndSize(raw, &n)
        return _scan(buf, n)
    return None


def _topic_slot_of(bytes topic not None):
    """The slot of the scanner's topic cache a topic goes to (for tests)."""
    return _topic_slot(PyBytes_AS_STRING(topic), PyBytes_GET_SIZE(topic))


def _scan_text(raw):
    """What the byte scanner alone makes of ``raw`` (str or bytes): the fields, or None (for
    tests; ``route_common`` then tries orjson)."""
    return _scan_raw(raw)


cdef inline bint _literal(_Cur *c, bint *value) noexcept:
    """``true`` or ``false``."""
    _ws(c)
    if c.end - c.p >= 4 and memcmp(c.p, b"true", 4) == 0:
        c.p += 4
        value[0] = True
        return True
    if c.end - c.p >= 5 and memcmp(c.p, b"false", 5) == 0:
        c.p += 5
        value[0] = False
        return True
    return False


cdef object _scan_trade(_Cur *c):
    """One trade object -> the :class:`Trade` the reference makes of it, or None. Keys T, S, p,
    v, i are needed; s, L (strings), BT, RPI (true/false) and seq (an integer) may be there;
    any other key, or one twice, leaves the frame to the reference."""
    cdef const char *k
    cdef const char *v
    cdef const char *vs
    cdef const char *ids
    cdef Py_ssize_t n, m, vn = 0, idn = 0
    cdef int seen = 0, bit, more
    cdef long long fill = 0, ignored
    cdef double price = 0.0, size = 0.0
    cdef bint is_buy = False, block = False, flag
    if not _eat(c, b'{'):
        return None
    while True:
        n = _member_key(c, &k)
        if n < 0:
            return None
        if _key_is(k, n, "T", 1):
            bit = 1
            if not _uint(c, &fill):
                return None
        elif _key_is(k, n, "S", 1):
            bit = 2
            m = _plain_string(c, &v)
            if _key_is(v, m, "Buy", 3):
                is_buy = True
            elif _key_is(v, m, "Sell", 4):
                is_buy = False
            else:
                return None
        elif _key_is(k, n, "p", 1):
            bit = 4
            if not _decimal(c, &price):
                return None
        elif _key_is(k, n, "v", 1):
            bit = 8
            if not _decimal_span(c, &size, &vs, &vn):  # the size string itself is kept, for exact sums
                return None
        elif _key_is(k, n, "i", 1):
            bit = 16
            idn = _plain_string(c, &ids)
            if idn < 0 or idn > MAX_TRADE_ID_CHARS:
                return None
        elif _key_is(k, n, "BT", 2):
            bit = 32
            if not _literal(c, &block):
                return None
        elif _key_is(k, n, "s", 1) or _key_is(k, n, "L", 1):
            bit = 64 if k[0] == b's' else 128
            if _plain_string(c, &v) < 0:
                return None
        elif _key_is(k, n, "RPI", 3):
            bit = 256
            if not _literal(c, &flag):
                return None
        elif _key_is(k, n, "seq", 3):
            bit = 512
            if not _uint(c, &ignored):
                return None
        else:
            return None
        more = _after_member(c, &seen, bit)
        if more < 0:
            return None
        if more == 0:
            break
    if seen & 31 != 31:
        return None
    if not (0.0 < price <= MAX_PRICE and 0.0 <= size <= MAX_SIZE and TS_MIN_MS <= fill < TS_MAX_MS):
        return None
    return _new_trade(fill, is_buy, price, size, vs[:vn].decode("ascii"), ids[:idn].decode("ascii"), block)


cdef object _new_trade(object fill, object is_buy, object price, object size, object size_str, object trade_id,
                       object block):
    """``Trade(fill, is_buy, ...)``: allocated as a tuple of Trade's type and filled in place, as
    ``tuple.__new__(Trade, (...))`` does (Trade is a NamedTuple: a tuple subclass without a
    dict), without the argument tuple and the call."""
    cdef _TypeAlloc *tp = <_TypeAlloc *>_Trade
    cdef PyObject *o = tp.tp_alloc(tp, 7)
    if o is NULL:
        raise MemoryError()
    cdef object t = <object>o
    Py_DECREF(t)  # the cast took a reference of its own; t holds the one tp_alloc made
    _set_item(t, 0, fill)
    _set_item(t, 1, is_buy)
    _set_item(t, 2, price)
    _set_item(t, 3, size)
    _set_item(t, 4, size_str)
    _set_item(t, 5, trade_id)
    _set_item(t, 6, block)
    return t


cdef inline void _set_item(object t, Py_ssize_t i, object x) noexcept:
    Py_INCREF(x)
    PyTuple_SET_ITEM(t, i, x)


cdef object _scan(const char *buf, Py_ssize_t size):
    """The fields of a common book frame (the 9-tuple) or trade frame (``(symbol, ts, trades)``)
    read from its bytes, or None (see above). The topic must come before ``data`` (Bybit writes
    it first), so that ``data`` is read as what the topic says it is. ``buf[size]`` must be a
    NUL, as it is after a bytes object's and a str's text (:func:`_plain_string` stops on it)."""
    cdef _Cur c
    cdef const char *k
    cdef const char *v
    cdef Py_ssize_t n, m, slot
    cdef int seen = 0, bit, more, kind = 0  # kind: 1 book, 2 trades (from the topic)
    cdef long long ts = 0, cts = 0, u = 0, seq = 0
    cdef bint is_snapshot = False, known_type = False
    cdef list sides = [None, None]
    route = trades = None
    c.p = buf
    c.end = buf + size
    if not _eat(&c, b'{'):
        return None
    while True:
        n = _member_key(&c, &k)
        if n < 0:
            return None
        if _key_is(k, n, "topic", 5):
            bit = 1
            m = _plain_string(&c, &v)
            if m <= 10:
                return None
            slot = _topic_slot(v, m)
            seen_topic = <object>PyList_GET_ITEM(_SEEN_TOPICS, slot)
            if (seen_topic is not None and PyBytes_GET_SIZE((<tuple>seen_topic)[0]) == m
                    and memcmp(PyBytes_AS_STRING((<tuple>seen_topic)[0]), v, m) == 0):
                kind = (<tuple>seen_topic)[1]
                route = (<tuple>seen_topic)[2]
            else:
                if memcmp(v, b"orderbook.", 10) == 0:
                    kind = 1
                    found = PyDict_GetItem(_BOOK_TOPICS, v[:m].decode("ascii"))
                elif m > 12 and memcmp(v, b"publicTrade.", 12) == 0:
                    kind = 2
                    found = PyDict_GetItem(_TRADE_TOPICS, v[:m].decode("ascii"))
                else:
                    return None
                if found is NULL or <object>found is None:
                    return None  # a new topic (the orjson path checks and caches it) or one not interpreted
                route = <object>found
                _SEEN_TOPICS[slot] = (v[:m], kind, route)
        elif _key_is(k, n, "type", 4):
            bit = 2
            m = _plain_string(&c, &v)
            if m < 0:
                return None
            is_snapshot = _key_is(v, m, "snapshot", 8)
            known_type = is_snapshot or _key_is(v, m, "delta", 5)
        elif _key_is(k, n, "ts", 2):
            bit = 4
            if not _uint(&c, &ts):
                return None
        elif _key_is(k, n, "data", 4):
            bit = 8
            if kind == 1:
                if _scan_data(&c, &u, &seq, sides) is None:
                    return None
            elif kind == 2:
                trades = _scan_array(&c, True)
                if trades is None:
                    return None
            else:
                return None
        elif _key_is(k, n, "cts", 3):
            bit = 16
            if not _uint(&c, &cts):
                return None
        else:
            return None
        more = _after_member(&c, &seen, bit)
        if more < 0:
            return None
        if more == 0:
            break
    _ws(&c)
    if c.p != c.end or seen & 13 != 13 or not TS_MIN_MS <= ts < TS_MAX_MS:
        return None
    if kind == 2:
        return (route, ts, trades)  # the reference reads neither type nor cts of a trade frame
    if not (seen & 2 and known_type):
        return None
    if seen & 16:
        if not TS_MIN_MS <= cts < TS_MAX_MS:
            return None
        cts_o = cts
    else:
        cts_o = None
    r = <tuple>route
    return (r[0], r[1], ts, cts_o, u, seq, is_snapshot, sides[0], sides[1])


# -- depth sums: math.fsum's algorithm on C doubles --------------------------------------------
#
# The sums of a depth band are math.fsum's: the correctly rounded sum of the exact values. This is
# CPython's own algorithm (Shewchuk's non-overlapping partials, then the half-even correction
# across partials) on C doubles; the correctly rounded sum is unique, so the result is fsum's
# bit for bit. Anything fsum treats specially (a non-finite value or an overflowing partial sum),
# a value that is not a float, or more partials than the buffer holds goes to the reference.

cdef enum:
    _MAX_PARTIALS = 128  # finite doubles never need more than ~40 non-overlapping partials

ctypedef struct _Fsum:
    double p[_MAX_PARTIALS]
    Py_ssize_t n
    bint ok


cdef inline void _fsum_add(_Fsum *f, double x) noexcept:
    cdef Py_ssize_t i = 0, j
    cdef double y, t, hi, lo
    if not f.ok:
        return
    if not isfinite(x):
        f.ok = False
        return
    for j in range(f.n):
        y = f.p[j]
        if fabs(x) < fabs(y):
            t = x
            x = y
            y = t
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            f.p[i] = lo
            i += 1
        x = hi
    f.n = i
    if x != 0.0:
        if not isfinite(x) or f.n >= _MAX_PARTIALS:
            f.ok = False
            return
        f.p[f.n] = x
        f.n += 1


cdef inline double _fsum_result(_Fsum *f) noexcept:
    cdef Py_ssize_t n = f.n
    cdef double hi = 0.0, lo = 0.0, x, y, yr
    if n > 0:
        n -= 1
        hi = f.p[n]
        while n > 0:
            x = hi
            n -= 1
            y = f.p[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and f.p[n - 1] < 0.0) or (lo > 0.0 and f.p[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


# -- a book side on C arrays -----------------------------------------------------------------

cdef double _select(double *a, Py_ssize_t n, Py_ssize_t k) noexcept:
    """The ``k``-th smallest of ``a[:n]`` (what ``sorted(a)[k]`` is), leaving ``a[:k]`` the
    values at or below it: Hoare's selection, in place, O(n) expected (no NaN: sizes are finite)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j
    cdef double pivot, t
    while lo < hi:
        pivot = a[(lo + hi) >> 1]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]; a[i] = a[j]; a[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


cdef double _largest(const double *a, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    cdef double m = a[0]
    for i in range(1, n):
        if a[i] > m:
            m = a[i]
    return m


ctypedef struct _Change:
    double p
    double s
    Py_ssize_t k


cdef enum:
    _BULK_CHANGES = 256  # a delta with more changes is merged in one go


cdef int _cmp_change(const void *a, const void *b) noexcept nogil:
    """By price, then by order in the frame."""
    cdef const _Change *x = <const _Change *>a
    cdef const _Change *y = <const _Change *>b
    if x.p < y.p:
        return -1
    if x.p > y.p:
        return 1
    return (x.k > y.k) - (x.k < y.k)


cdef int _new_block(Py_ssize_t cap, double **px, double **sz, unsigned char **hit) except -1:
    """One allocation for ``cap`` levels of a :class:`Side`, laid out as prices, sizes, then
    flags; ``*px`` is the block (what PyMem_Free takes back)."""
    cdef char *block = <char *>PyMem_Malloc(cap * (2 * sizeof(double) + 1))
    if block is NULL:
        raise MemoryError()
    px[0] = <double *>block
    sz[0] = <double *>(block + cap * sizeof(double))
    hit[0] = <unsigned char *>(block + 2 * cap * sizeof(double))
    return 0


cdef class Side:
    """``book.BookSide`` (the reference) on C arrays: prices ascending, their sizes, and a flag
    per level for "noted since the last take". A delta's change is a binary search and, for a
    new or deleted price, a move of the levels after it; no Python object per level.

    Prices and sizes are the parser's (finite; prices > 0, sizes >= 0) or :class:`Levels`;
    another number is taken as ``float(x)``, and a NaN is refused (ValueError), as the parser
    refuses it."""

    def __cinit__(self):
        self.px = self.sz = NULL
        self.hit = NULL
        self.n = self.cap = self.n_hit = 0
        self.touch_min = 0.0

    def __dealloc__(self):
        PyMem_Free(self.px)

    cdef int _reserve(self, Py_ssize_t need) except -1:
        """Room for ``need`` levels (the levels held are kept)."""
        cdef Py_ssize_t cap = self.cap if self.cap else 64
        cdef double *px
        cdef double *sz
        cdef unsigned char *hit
        if need <= self.cap:
            return 0
        while cap < need:
            cap *= 2
        _new_block(cap, &px, &sz, &hit)
        if self.n:
            memcpy(px, self.px, self.n * sizeof(double))
            memcpy(sz, self.sz, self.n * sizeof(double))
            memcpy(hit, self.hit, self.n)
        self._adopt(px, sz, hit, cap)
        return 0

    cdef void _adopt(self, double *px, double *sz, unsigned char *hit, Py_ssize_t cap) noexcept:
        """Hold the block ``_new_block`` laid out at ``px``, freeing the one held before."""
        PyMem_Free(self.px)
        self.px = px
        self.sz = sz
        self.hit = hit
        self.cap = cap

    cdef Py_ssize_t _find(self, double p) noexcept:
        """The index of the first price >= ``p`` (``n`` when none)."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.px[mid] < p:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef void _set(self, double p, double s) noexcept:
        """One change, with room for one more level reserved: size 0 deletes, any other sets
        (noting it when >= touch_min)."""
        cdef Py_ssize_t i = self._find(p), k
        cdef bint found = i < self.n and self.px[i] == p
        if s == 0.0:
            if found:
                if self.hit[i]:
                    self.n_hit -= 1
                k = self.n - i - 1
                memmove(&self.px[i], &self.px[i + 1], k * sizeof(double))
                memmove(&self.sz[i], &self.sz[i + 1], k * sizeof(double))
                memmove(&self.hit[i], &self.hit[i + 1], k)
                self.n -= 1
            return
        if not found:
            k = self.n - i
            memmove(&self.px[i + 1], &self.px[i], k * sizeof(double))
            memmove(&self.sz[i + 1], &self.sz[i], k * sizeof(double))
            memmove(&self.hit[i + 1], &self.hit[i], k)
            self.px[i] = p
            self.hit[i] = 0
            self.n += 1
        self.sz[i] = s
        if s >= self.touch_min and not self.hit[i]:
            self.hit[i] = 1
            self.n_hit += 1

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"Side({self.items()!r})"

    cpdef load(self, pairs):
        """Replace every level by ``pairs`` (size-0 pairs skipped, a repeated price takes its
        last non-zero size); nothing is noted."""
        cdef Levels ch
        cdef Py_ssize_t i, j, m
        cdef double p, s
        if type(pairs) is not Levels:
            pairs = _as_levels(pairs)
        ch = <Levels>pairs
        self.n = self.n_hit = 0
        self._reserve(ch.n)
        m = 0
        for i in range(ch.n):
            if ch.sz[i] != 0.0:
                self.px[m] = ch.px[i]
                self.sz[m] = ch.sz[i]
                m += 1
        self.n = m
        if _ascending(self.px, m):
            pass
        elif _descending(self.px, m):  # a bid side as Bybit sends it, best first
            i = 0
            j = m - 1
            while i < j:
                p = self.px[i]; self.px[i] = self.px[j]; self.px[j] = p
                s = self.sz[i]; self.sz[i] = self.sz[j]; self.sz[j] = s
                i += 1
                j -= 1
        else:
            # Any order, repeats allowed: sorted and merged in one go (O(m log m)).
            self.n = 0
            self._merge(ch, True)
        memset(self.hit, 0, self.n)
        self.n_hit = 0

    cpdef update(self, changes):
        """Apply a delta's ``(price, size)`` changes in order (see ``BookSide.update``)."""
        cdef Levels ch
        cdef Py_ssize_t k
        if type(changes) is not Levels:
            changes = _as_levels(changes)
        ch = <Levels>changes
        if ch.n > _BULK_CHANGES:
            # A frame of many changes (a hostile one can carry a million): one sort and one
            # merge, not a move of the side per new level.
            self._merge(ch, False)
            return
        for k in range(ch.n):
            if self.n == self.cap:
                self._reserve(self.n + 1)
            self._set(ch.px[k], ch.sz[k])

    cdef int _merge(self, Levels ch, bint loading) except -1:
        """Apply ``ch`` as :meth:`update` would one by one (``loading``: as :meth:`load` takes a
        snapshot's pairs: size 0 skipped, nothing noted), by sorting the changes by price (in
        their order within a price) and merging them into the side in one pass."""
        cdef Py_ssize_t m = ch.n, n = self.n, i = 0, j = 0, k, out = 0, n_hit = 0, cap
        cdef _Change *chg
        cdef double *px
        cdef double *sz
        cdef unsigned char *hit
        cdef double p, size, s
        cdef bint present, noted
        if m == 0:
            return 0
        cap = max(n + m, 64)
        _new_block(cap, &px, &sz, &hit)
        chg = <_Change *>PyMem_Malloc(m * sizeof(_Change))
        if chg is NULL:
            PyMem_Free(px)
            raise MemoryError()
        for k in range(m):
            chg[k].p = ch.px[k]
            chg[k].s = ch.sz[k]
            chg[k].k = k
        qsort(chg, m, sizeof(_Change), _cmp_change)
        while i < n or j < m:
            if j >= m or (i < n and self.px[i] < chg[j].p):
                px[out] = self.px[i]
                sz[out] = self.sz[i]
                hit[out] = self.hit[i]
                n_hit += hit[out]
                out += 1
                i += 1
                continue
            p = chg[j].p
            present = noted = False
            size = 0.0
            if i < n and self.px[i] == p:
                present = True
                size = self.sz[i]
                noted = self.hit[i]
                i += 1
            while j < m and chg[j].p == p:
                s = chg[j].s
                if s != 0.0:
                    present = True
                    size = s
                    if not loading and s >= self.touch_min:
                        noted = True
                elif not loading:
                    present = noted = False
                j += 1
            if present:
                px[out] = p
                sz[out] = size
                hit[out] = noted
                n_hit += noted
                out += 1
        PyMem_Free(chg)
        self._adopt(px, sz, hit, cap)
        self.n = out
        self.n_hit = n_hit
        return 0

    cpdef Py_ssize_t trim(self, Py_ssize_t keep, bint low) except -1:
        """Delete the levels beyond the ``keep`` highest (``low``: the lowest go) or lowest
        prices; how many went."""
        cdef Py_ssize_t extra, i
        if keep < 0:
            keep = 0
        extra = self.n - keep
        if extra <= 0:
            return 0
        if low:
            for i in range(extra):
                self.n_hit -= self.hit[i]
            memmove(self.px, &self.px[extra], keep * sizeof(double))
            memmove(self.sz, &self.sz[extra], keep * sizeof(double))
            memmove(self.hit, &self.hit[extra], keep)
        else:
            for i in range(keep, self.n):
                self.n_hit -= self.hit[i]
        self.n = keep
        return extra

    cpdef lowest(self):
        return self.px[0] if self.n else None

    cpdef highest(self):
        return self.px[self.n - 1] if self.n else None

    cpdef bint reaches(self, Side other) except -1:
        if other is None:
            raise TypeError("reaches() needs the other side")
        return self.n > 0 and other.n > 0 and self.px[self.n - 1] >= other.px[0]

    cpdef double size_at(self, double price) noexcept:
        cdef Py_ssize_t i = self._find(price)
        return self.sz[i] if i < self.n and self.px[i] == price else 0.0

    cpdef tuple sums(self, double lo, double hi):
        """(fsum of the sizes, fsum of price * size) of the levels with ``lo <= price <= hi``:
        fsum's algorithm on C doubles (the reference's ``math.fsum`` when a sum would overflow)."""
        cdef _Fsum sizes, notionals
        cdef Py_ssize_t i, start = self._find(lo), stop = start
        while stop < self.n and self.px[stop] <= hi:
            stop += 1
        sizes.n = notionals.n = 0
        sizes.ok = notionals.ok = True
        for i in range(start, stop):
            _fsum_add(&sizes, self.sz[i])
            _fsum_add(&notionals, self.px[i] * self.sz[i])
        if not (sizes.ok and notionals.ok):
            return (_math_fsum([self.sz[i] for i in range(start, stop)]),
                    _math_fsum([self.px[i] * self.sz[i] for i in range(start, stop)]))
        return (_fsum_result(&sizes), _fsum_result(&notionals))

    cpdef double median(self) except? -1.0:
        """The median of the level sizes (0.0 for an empty side)."""
        cdef Py_ssize_t n = self.n
        cdef double *tmp
        cdef double out
        if n == 0:
            return 0.0
        tmp = <double *>PyMem_Malloc(n * sizeof(double))
        if tmp is NULL:
            raise MemoryError()
        memcpy(tmp, self.sz, n * sizeof(double))
        out = _select(tmp, n, n // 2)
        if not n & 1:
            # The other middle one: the largest of those _select left below the n // 2-th.
            out = (_largest(tmp, n // 2) + out) / 2.0
        PyMem_Free(tmp)
        return out

    cpdef list take(self, double threshold, bint every):
        """The ``(price, size)`` levels with size >= ``threshold``, ascending: of every level when
        ``every``, else of those noted since the last take. Forgets what was noted and notes
        from now on sizes >= ``threshold``."""
        cdef list out = []
        cdef Py_ssize_t i
        if every or self.n_hit:
            for i in range(self.n):
                if (every or self.hit[i]) and self.sz[i] >= threshold:
                    out.append((self.px[i], self.sz[i]))
            memset(self.hit, 0, self.n)
        self.n_hit = 0
        self.touch_min = threshold
        return out

    cpdef bint noted(self) noexcept:
        return self.n_hit > 0

    cpdef list changes_at(self, changes, dict prices):
        """``BookSide.changes_at``: the scanner's levels read as doubles; any other sequence
        as the reference reads it."""
        if type(changes) is Levels:
            return _changes_at(<Levels>changes, prices)
        return [(p, q) for p, q in changes if p in prices]

    cpdef list items(self):
        """Every ``(price, size)``, ascending by price."""
        return [(self.px[i], self.sz[i]) for i in range(self.n)]


cdef bint _ascending(const double *px, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(1, n):
        if not px[i - 1] < px[i]:
            return False
    return True


cdef bint _descending(const double *px, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(1, n):
        if not px[i - 1] > px[i]:
            return False
    return True


cdef Levels _as_levels(pairs):
    """Any sequence of ``(price, size)`` pairs as :class:`Levels` (numbers as ``float(x)``; a NaN
    is refused)."""
    cdef Levels out = Levels.__new__(Levels)
    cdef double p, s
    for pair in pairs:
        p, s = pair
        if p != p or s != s:
            raise ValueError(f"NaN in a book level: {pair!r}")
        out.push(p, s)
    return out


# ------------------------------------------------------------------------ reading NDJSON

cdef extern from "string.h":
    const void *memchr(const void *s, int c, size_t n)

cdef object _NO_RECV = 0


cdef object _line_pairs(bytes chunk, Py_ssize_t start, Py_ssize_t end, Py_ssize_t max_line_bytes,
                        bint recording):
    """The lines of ``chunk[start:end]`` as ``(recv_ns, raw)`` pairs, or None at the first line
    that is not the usual line of its format (see :func:`ndjson_pairs`)."""
    cdef const char *buf = PyBytes_AS_STRING(chunk)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(chunk)
    cdef const char *p
    cdef const char *stop
    cdef const char *nl
    cdef const char *raw
    cdef const char *topic
    cdef Py_ssize_t n, k, stamp_n, topic_n
    cdef unsigned long long ns
    cdef list out = []
    cdef tuple pair
    cdef object recv
    if start < 0 or end > size or start > end:
        raise ValueError("bad range")
    p = buf + start
    stop = buf + end
    while True:
        nl = <const char *>memchr(p, b"\n", stop - p)
        if nl == NULL:
            nl = stop
        n = nl - p
        if n > max_line_bytes:  # counted with its carriage returns, as the reference does
            return None
        while n > 0 and p[n - 1] == b"\r":
            n -= 1
        if not recording:
            if n == 0 or p[0] != b"{":
                return None
            recv = _NO_RECV
            raw = p
        else:
            # "<recv_ns> <topic> <raw>": 1-19 ASCII digits within int64, and a raw frame that
            # does not start with "=" (recording._usual_recording_line).
            stamp_n = 0
            ns = 0
            while stamp_n < n and 48 <= p[stamp_n] <= 57:  # ASCII digits
                ns = ns * 10 + <unsigned long long>(p[stamp_n] - 48)
                stamp_n += 1
                if stamp_n > 19:
                    return None
            if stamp_n == 0 or stamp_n == n or p[stamp_n] != b" " or ns > <unsigned long long>LLONG_MAX:
                return None
            topic = p + stamp_n + 1
            raw = <const char *>memchr(topic, b" ", n - stamp_n - 1)
            if raw == NULL:
                return None
            topic_n = raw - topic
            raw += 1
            if raw < p + n and raw[0] == b"=":
                return None
            for k in range(topic_n):
                if <unsigned char>topic[k] >= 0x80:  # the text must be UTF-8 all through
                    try:
                        topic[:topic_n].decode("utf-8")
                    except UnicodeDecodeError:
                        return None
                    break
            recv = ns
            n -= raw - p
        try:
            line = raw[:n].decode("utf-8")
        except UnicodeDecodeError:
            return None
        pair = PyTuple_New(2)
        Py_INCREF(recv)
        PyTuple_SET_ITEM(pair, 0, recv)
        Py_INCREF(line)
        PyTuple_SET_ITEM(pair, 1, line)
        out.append(pair)
        if nl == stop:
            return out
        p = nl + 1


def ndjson_pairs(bytes chunk not None, Py_ssize_t start, Py_ssize_t end, Py_ssize_t max_line_bytes):
    """``[(0, line), ...]`` of the lines of ``chunk[start:end]`` (split at line feeds, trailing
    carriage returns dropped, decoded as UTF-8) when every one is the usual NDJSON line (it
    starts with ``{``, is at most ``max_line_bytes`` long and is valid UTF-8);
    None as soon as one is not, and the reader goes the reference way, line by line
    (``recording._line_batches`` and ``_usual_pairs``). The line loop of a replay, in C."""
    return _line_pairs(chunk, start, end, max_line_bytes, False)


def recording_pairs(bytes chunk not None, Py_ssize_t start, Py_ssize_t end, Py_ssize_t max_line_bytes):
    """:func:`ndjson_pairs` for the lines of a bybitmon recording: ``[(recv_ns, raw), ...]``
    when every line is ``<recv_ns> <topic> <raw>`` as ``recording._usual_recording_line``
    reads it (1-19 ASCII digits within int64; a raw frame not starting with ``=``), else None."""
    return _line_pairs(chunk, start, end, max_line_bytes, True)
