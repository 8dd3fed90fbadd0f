"""Brute-force reference implementation ("oracle") of the bybitmon Monitor SPEC.

Written for clarity, not speed: every metric is recomputed from scratch with
``decimal.Decimal`` from the raw wire strings each time a snapshot is asked for.
It shares no code with ``bybitmon`` on purpose.

The SPEC it implements (v1 snapshot):

* Clock: ``now`` is the largest top-level integer ``ts`` (ms) of any data frame
  (a JSON object with a string ``topic``) parsed so far, never the wall clock;
  acks, pongs and other objects never move it.  Snapshot ``ts`` = now.  (The
  Monitor also bounds ``ts`` by the receive time; the oracle is fed without one,
  and its streams never jump by more than the Monitor's MAX_JUMP_MS.)
* Range: exchange times (``ts``, ``T``, ``cts``) in [0, 2200-01-01), ``u`` and
  ``seq`` in [0, 2**63), prices in (0, 1e12], sizes in [0, 1e15], symbols of
  ``[A-Za-z0-9][A-Za-z0-9_-]{0,39}``; anything else makes a bad frame, as does an
  int ``ts`` out of range on any data frame.
* Trades (``publicTrade.{SYMBOL}``): all trades fed for a symbol, deduplicated
  by ``i`` with memory bounded by the window: a trade is a duplicate when an
  earlier non-duplicate trade with the same ``i`` has ``T > now - W`` (``now``
  taken after the frame's own ``ts``).  A genuine re-send carries its original
  ``T``, so a repeat of a trade that already left the window would not count
  anyway; forgetting older ids is what keeps memory bounded.  Window ``W`` ms:
  ``now - W < T <= now``.  ``last_price`` is the price of the most recently fed
  non-duplicate trade, whatever its ``T``.
* Book (``orderbook.{depth}.{SYMBOL}``): snapshot (or delta with ``u == 1``)
  replaces the book; deltas are dropped while not ready, stale when
  ``u <= last_u``, a gap when ``u > last_u + 1`` (book becomes not ready),
  applied when ``u == last_u + 1``.  A crossed book after applying a frame is
  counted and marks the book not ready.
* Book metrics exist only when ready and both sides are non-empty.  Depth
  within ``B`` bps of mid uses inclusive bounds.

Policies for points the SPEC leaves open (documented so a reader can judge):

* A frame that is not a JSON object, or a book/trade frame with a missing or
  wrongly typed required field, only increments ``bad_frames``: it does not
  advance the clock, does not count in any symbol's ``health.frames``, does not
  make its symbol "seen", and none of its content is applied (a trade frame
  with one bad trade is rejected as a whole).
* Required book fields: ``type`` ("snapshot"/"delta"), ``ts`` (int),
  ``data`` (object) with ``b``/``a`` (lists of ``[price_str, size_str]``),
  ``u`` (int), ``seq`` (int).  Required trade fields: ``ts`` (int), ``data``
  (list of objects with ``T`` int, ``S`` "Buy"/"Sell", ``v``/``p`` numeric
  strings, ``i`` string).
* ``update_id`` / ``seq`` are book *state*, reported whenever known (even
  while the book is not ready); the "every numeric field is None" rule applies
  to the market metrics (best prices, mid, spread, depth, notional, imbalance).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

__all__ = ["Oracle", "compare", "near_bound_stats", "BOOK_KEYS", "TRADES_KEYS", "HEALTH_KEYS"]

TRADES_KEYS = {
    "window_s", "count", "tps", "tpm", "buy_volume", "sell_volume",
    "volume_delta", "buy_sell_ratio", "last_price", "heat", "heat_volume",
}
BOOK_KEYS = {
    "ready", "best_bid", "best_ask", "mid", "spread_bps", "bps", "bid_depth",
    "ask_depth", "bid_notional", "ask_notional", "imbalance", "update_id", "seq",
}
HEALTH_KEYS = {"frames", "bad_frames", "stale", "gaps", "crossed", "resets", "dropped", "clock_jumps", "overflow"}
TOP_KEYS = {"type", "v", "ts", "symbol", "category", "trades", "book", "densities", "health"}

TS_MIN, TS_MAX = 0, 7_258_118_400_000   # 1970 .. 2200, ms
MAX_U = 2**63 - 1
MAX_PRICE = Decimal("1e12")
MAX_SIZE = Decimal("1e15")
SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z")

# Relative distance from a depth bound under which float and Decimal may
# legitimately disagree about membership.
NEAR_BOUND_REL = Decimal("1e-12")

# How often the compare() helper had to accept either side of a bound.
near_bound_stats = {"compared": 0, "near_bound": 0}


class BadFrame(Exception):
    """The frame is malformed according to the SPEC (counted in bad_frames)."""


# --------------------------------------------------------------------------
# strict field readers


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _num_str(x: Any) -> Decimal:
    if not isinstance(x, str):
        raise BadFrame(f"expected a numeric string, got {x!r}")
    try:
        d = Decimal(x)
    except InvalidOperation:
        raise BadFrame(f"not a number: {x!r}") from None
    if not d.is_finite():
        raise BadFrame(f"not a finite number: {x!r}")
    return d


def _levels(x: Any) -> list[tuple[Decimal, Decimal]]:
    if not isinstance(x, list):
        raise BadFrame(f"levels must be a list, got {x!r}")
    out = []
    for lv in x:
        if not isinstance(lv, list) or len(lv) != 2:
            raise BadFrame(f"level must be [price, size], got {lv!r}")
        out.append((_num_str(lv[0]), _num_str(lv[1])))
    return out


def _parse_json_object(raw: str | bytes) -> dict:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadFrame("not UTF-8") from None
    if not isinstance(raw, str):
        raise BadFrame(f"not text: {type(raw)}")

    def no_constants(name: str) -> Any:
        raise BadFrame(f"non-standard JSON constant {name}")

    try:
        obj = json.loads(raw, parse_constant=no_constants)
    except (ValueError, RecursionError):
        raise BadFrame("invalid JSON") from None
    if not isinstance(obj, dict):
        raise BadFrame("JSON value is not an object")
    return obj


# --------------------------------------------------------------------------
# state


@dataclass
class Trade:
    T: int
    S: str
    v: Decimal
    p: Decimal
    i: str


@dataclass
class SymbolState:
    # book
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    ready: bool = False
    had_snapshot: bool = False
    last_u: int | None = None
    seq: int | None = None
    # trades
    trades: list[Trade] = field(default_factory=list)
    trade_ids: dict[str, int] = field(default_factory=dict)  # id -> latest T accepted with it
    last_price: Decimal | None = None
    heat_start: int | None = None  # the clock after the symbol's first trade frame
    # health
    frames: int = 0
    stale: int = 0
    gaps: int = 0
    crossed: int = 0
    resets: int = 0
    dropped: int = 0
    # bookkeeping for fixture sanity checks (not part of the snapshot)
    snapshots_applied: int = 0
    deltas_applied: int = 0


class Oracle:
    """Brute-force Monitor: ``feed(raw)`` then ``snapshot(symbol)``."""

    def __init__(
        self,
        category: str = "linear",
        window_ms: int = 60_000,
        bps: float = 50.0,
        density_x: float = 5.0,
        density_min_notional: float = 0.0,
    ) -> None:
        self.category = category
        self.window_ms = window_ms
        self.bps = bps
        self.density_x = density_x
        self.density_min_notional = density_min_notional
        self.now: int | None = None
        self.bad_frames = 0
        self.frames_fed = 0
        self.states: dict[str, SymbolState] = {}

    # ---------------------------------------------------------------- input

    @property
    def symbols(self) -> list[str]:
        return sorted(self.states)

    def feed(self, raw: str | bytes) -> str | None:
        """Process one raw frame.  Returns the symbol of a book/trade frame, else None."""
        self.frames_fed += 1
        try:
            obj = _parse_json_object(raw)
            topic = obj.get("topic")
            if isinstance(topic, str) and topic.startswith("orderbook."):
                return self._book_frame(obj, topic)
            if isinstance(topic, str) and topic.startswith("publicTrade."):
                return self._trade_frame(obj, topic)
        except BadFrame:
            self.bad_frames += 1
            return None
        # tickers, kline...: the clock only; acks, pongs, unknown objects: nothing
        if isinstance(topic, str):
            ts = obj.get("ts")
            if _is_int(ts) and not TS_MIN <= ts < TS_MAX:
                self.bad_frames += 1
                return None
            self._advance(ts)
        return None

    def _advance(self, ts: Any) -> None:
        if _is_int(ts) and (self.now is None or ts > self.now):
            self.now = ts

    def _book_frame(self, obj: dict, topic: str) -> str:
        # validate everything first: a bad frame changes nothing
        kind = obj.get("type")
        if kind not in ("snapshot", "delta"):
            raise BadFrame(f"bad book type {kind!r}")
        ts = obj.get("ts")
        if not _is_int(ts):
            raise BadFrame("book ts")
        data = obj.get("data")
        if not isinstance(data, dict):
            raise BadFrame("book data")
        bids = _levels(data.get("b"))
        asks = _levels(data.get("a"))
        u = data.get("u")
        seq = data.get("seq")
        if not _is_int(u) or not _is_int(seq):
            raise BadFrame("book u/seq")
        cts = obj.get("cts")
        if (not TS_MIN <= ts < TS_MAX or not 0 <= u <= MAX_U or not 0 <= seq <= MAX_U
                or (_is_int(cts) and not TS_MIN <= cts < TS_MAX)):
            raise BadFrame("book number out of range")
        for price, size in bids + asks:
            if not (0 < price <= MAX_PRICE and 0 <= size <= MAX_SIZE):
                raise BadFrame("level out of range")

        symbol = topic.split(".")[-1]
        if not SYMBOL_RE.match(symbol):
            raise BadFrame("symbol")
        self._advance(ts)
        st = self.states.setdefault(symbol, SymbolState())
        st.frames += 1

        if kind == "snapshot" or u == 1:
            if st.had_snapshot:
                st.resets += 1
            st.had_snapshot = True
            st.bids = {}
            st.asks = {}
            for book, levels in ((st.bids, bids), (st.asks, asks)):
                for price, size in levels:
                    if size != 0:
                        book[price] = size
            st.ready = True
            st.last_u = u
            st.seq = seq
            st.snapshots_applied += 1
            self._check_crossed(st)
        elif not st.ready:
            st.dropped += 1
        elif u <= st.last_u:
            st.stale += 1
        elif u > st.last_u + 1:
            st.gaps += 1
            st.ready = False
        else:
            for book, levels in ((st.bids, bids), (st.asks, asks)):
                for price, size in levels:
                    if size == 0:
                        book.pop(price, None)
                    else:
                        book[price] = size
            st.last_u = u
            st.seq = seq
            st.deltas_applied += 1
            self._check_crossed(st)
        return symbol

    @staticmethod
    def _check_crossed(st: SymbolState) -> None:
        if st.bids and st.asks and max(st.bids) >= min(st.asks):
            st.crossed += 1
            st.ready = False

    def _trade_frame(self, obj: dict, topic: str) -> str:
        ts = obj.get("ts")
        if not _is_int(ts):
            raise BadFrame("trade ts")
        data = obj.get("data")
        if not isinstance(data, list):
            raise BadFrame("trade data")
        parsed = []
        for t in data:
            if not isinstance(t, dict):
                raise BadFrame("trade not an object")
            T, S, i = t.get("T"), t.get("S"), t.get("i")
            if not _is_int(T) or S not in ("Buy", "Sell") or not isinstance(i, str):
                raise BadFrame("trade T/S/i")
            parsed.append(Trade(T=T, S=S, v=_num_str(t.get("v")), p=_num_str(t.get("p")), i=i))
            tr = parsed[-1]
            if not (TS_MIN <= T < TS_MAX and 0 < tr.p <= MAX_PRICE and 0 <= tr.v <= MAX_SIZE):
                raise BadFrame("trade out of range")
        if not TS_MIN <= ts < TS_MAX:
            raise BadFrame("trade ts out of range")

        symbol = topic[len("publicTrade."):]
        if not SYMBOL_RE.match(symbol):
            raise BadFrame("symbol")
        self._advance(ts)
        st = self.states.setdefault(symbol, SymbolState())
        if st.heat_start is None:
            st.heat_start = self.now
        st.frames += 1
        for tr in parsed:
            seen_t = st.trade_ids.get(tr.i)
            if seen_t is not None and seen_t > self.now - self.window_ms:
                continue
            st.trade_ids[tr.i] = tr.T if seen_t is None else max(seen_t, tr.T)
            st.trades.append(tr)
            st.last_price = tr.p
        return symbol

    # --------------------------------------------------------------- output

    def snapshot(self, symbol: str) -> dict:
        st = self.states.get(symbol, SymbolState())
        return {
            "type": "snapshot",
            "v": 1,
            "ts": self.now,
            "symbol": symbol,
            "category": self.category,
            "trades": self._trades_section(st),
            "book": self._book_section(st),
            "densities": [],
            "health": {
                "frames": st.frames,
                "bad_frames": self.bad_frames,
                "stale": st.stale,
                "gaps": st.gaps,
                "crossed": st.crossed,
                "resets": st.resets,
                "dropped": st.dropped,
                "clock_jumps": 0,  # streams fed to the oracle never jump (no receive time, small steps)
                "overflow": 0,     # nor reach a memory bound
            },
        }

    def window_trades(self, symbol: str) -> list[Trade]:
        st = self.states.get(symbol, SymbolState())
        if self.now is None:
            return []
        return [t for t in st.trades if self.now - self.window_ms < t.T <= self.now]

    def _trades_section(self, st: SymbolState) -> dict:
        window_s = self.window_ms / 1000
        inside = []
        if self.now is not None:
            inside = [t for t in st.trades if self.now - self.window_ms < t.T <= self.now]
        buy = sum((t.v for t in inside if t.S == "Buy"), Decimal(0))
        sell = sum((t.v for t in inside if t.S == "Sell"), Decimal(0))
        count = len(inside)
        with localcontext() as ctx:
            ctx.prec = 60
            ratio = float(buy / sell) if sell != 0 else None
        return {
            "window_s": window_s,
            "count": count,
            "tps": count / window_s,
            "tpm": count * 60 / window_s,
            "buy_volume": float(buy),
            "sell_volume": float(sell),
            "volume_delta": float(buy - sell),
            "buy_sell_ratio": ratio,
            "last_price": None if st.last_price is None else float(st.last_price),
            **self._heat(st),
            # scale of the operands of volume_delta, for a cancellation-aware tolerance
            "_volume_scale": float(buy + sell),
        }

    def _heat(self, st: SymbolState) -> dict:
        """Heat by its README definition: whole seconds of fill time up to the clock's second;
        the last 10 s against the last 15 min, each rate divided by its window shortened to the
        time since the symbol's first trade frame; floor 0.1 trades/s."""
        if st.heat_start is None or self.now is None:
            return {"heat": None, "heat_volume": None}
        c = self.now // 1000
        span = min(900, c - st.heat_start // 1000 + 1)
        short_span = min(10, span)
        long = [t.v for t in st.trades if c - 900 < t.T // 1000 <= c]
        short = [t.v for t in st.trades if c - 10 < t.T // 1000 <= c]
        with localcontext() as ctx:
            ctx.prec = 60
            floor = Decimal("0.1")
            heat = (Decimal(len(short)) / short_span) / max(Decimal(len(long)) / span, floor)
            vol_short = sum(short, Decimal(0)) / short_span
            vol_long = sum(long, Decimal(0)) / span
            mean = (sum(long, Decimal(0)) / len(long)) if long else (
                sum(short, Decimal(0)) / len(short) if short else Decimal(0))
            heat_volume = vol_short / max(vol_long, floor * mean) if vol_short else Decimal(0)
        return {"heat": float(heat), "heat_volume": float(heat_volume)}

    def _book_section(self, st: SymbolState) -> dict:
        out: dict[str, Any] = {
            "ready": st.ready,
            "best_bid": None, "best_ask": None, "mid": None, "spread_bps": None,
            "bps": self.bps,
            "bid_depth": None, "ask_depth": None,
            "bid_notional": None, "ask_notional": None, "imbalance": None,
            "update_id": st.last_u,
            "seq": st.seq,
        }
        if not (st.ready and st.bids and st.asks):
            return out
        with localcontext() as ctx:
            ctx.prec = 60
            bid = max(st.bids)
            ask = min(st.asks)
            mid = (bid + ask) / 2
            B = Decimal(self.bps)  # exact value of the configured float
            lo = mid * (1 - B / 10000)
            hi = mid * (1 + B / 10000)
            bid_in = [(p, s) for p, s in st.bids.items() if p >= lo]
            ask_in = [(p, s) for p, s in st.asks.items() if p <= hi]
            near_bid = [(p, s) for p, s in st.bids.items() if abs(p - lo) <= NEAR_BOUND_REL * abs(lo)]
            near_ask = [(p, s) for p, s in st.asks.items() if abs(p - hi) <= NEAR_BOUND_REL * abs(hi)]

            def depth_fields(bids_in, asks_in):
                bd = sum((s for _, s in bids_in), Decimal(0))
                ad = sum((s for _, s in asks_in), Decimal(0))
                return {
                    "bid_depth": float(bd),
                    "ask_depth": float(ad),
                    "bid_notional": float(sum((p * s for p, s in bids_in), Decimal(0))),
                    "ask_notional": float(sum((p * s for p, s in asks_in), Decimal(0))),
                    "imbalance": None if bd + ad == 0 else float((bd - ad) / (bd + ad)),
                }

            out.update(
                best_bid=float(bid),
                best_ask=float(ask),
                mid=float(mid),
                spread_bps=float((ask - bid) / mid * 10000),
            )
            out.update(depth_fields(bid_in, ask_in))
            if near_bid or near_ask:
                # either side of each near level is acceptable for a float implementation
                def variants(inside, near):
                    if not near:
                        return [inside]
                    without = [lv for lv in inside if lv not in near]
                    with_ = without + near
                    return [with_, without]

                out["_alternatives"] = [
                    depth_fields(b, a)
                    for b in variants(bid_in, near_bid)
                    for a in variants(ask_in, near_ask)
                ]
        return out


# --------------------------------------------------------------------------
# comparison


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _close(actual: Any, expected: Any, *, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    if expected is None:
        return actual is None
    if not _is_number(actual):
        return False
    if math.isnan(actual) or math.isinf(actual):
        return False
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_)


def _check_float(errors: list, name: str, actual: Any, expected: Any, **tol) -> None:
    if not _close(actual, expected, **tol):
        errors.append(f"{name}: actual={actual!r} expected={expected!r}")


def _check_exact_int(errors: list, name: str, actual: Any, expected: Any) -> None:
    if expected is None:
        if actual is not None:
            errors.append(f"{name}: actual={actual!r} expected=None")
        return
    if not _is_int(actual) or actual != expected:
        errors.append(f"{name}: actual={actual!r} expected={expected!r} (int)")


def _check_keys(errors: list, name: str, actual: Any, keys: set) -> bool:
    if not isinstance(actual, dict):
        errors.append(f"{name}: not a dict: {actual!r}")
        return False
    missing = keys - actual.keys()
    extra = actual.keys() - keys
    if missing:
        errors.append(f"{name}: missing keys {sorted(missing)}")
    if extra:
        errors.append(f"{name}: unexpected keys {sorted(extra)}")
    return not missing


DEPTH_FIELDS = ("bid_depth", "ask_depth", "bid_notional", "ask_notional", "imbalance")


def compare(actual: dict, expected: dict, where: str = "") -> None:
    """Assert that a Monitor snapshot matches the oracle's, field by field.

    Floats use ``rel=1e-9, abs=1e-12``.  ``volume_delta`` (a difference of two
    sums) gets an absolute tolerance scaled by ``buy + sell`` instead, since a
    correct float sum cannot do better.  When a book level lies within relative
    1e-12 of a depth bound, either membership is accepted (and counted in
    ``near_bound_stats``).  ``densities`` are only checked to be a list.
    """
    sym = expected.get("symbol")
    prefix = f"[{where} symbol={sym}] " if where else f"[symbol={sym}] "
    errors: list[str] = []
    if hasattr(actual, "to_json"):  # bybitmon's typed Snapshot: compare its v1 JSON
        actual = json.loads(actual.to_json())
    if not isinstance(actual, dict):
        raise AssertionError(prefix + f"snapshot is not a dict: {actual!r}")
    _check_keys(errors, "snapshot", actual, TOP_KEYS)
    for key in ("type", "v", "symbol", "category"):
        if actual.get(key) != expected[key]:
            errors.append(f"{key}: actual={actual.get(key)!r} expected={expected[key]!r}")
    _check_exact_int(errors, "ts", actual.get("ts"), expected["ts"])
    if not isinstance(actual.get("densities"), list):
        errors.append(f"densities: not a list: {actual.get('densities')!r}")

    # trades
    at, et = actual.get("trades"), expected["trades"]
    if _check_keys(errors, "trades", at, TRADES_KEYS):
        _check_exact_int(errors, "trades.count", at["count"], et["count"])
        for k in ("window_s", "tps", "tpm", "buy_volume", "sell_volume", "buy_sell_ratio", "last_price"):
            _check_float(errors, f"trades.{k}", at[k], et[k])
        scale_tol = max(1e-12, 1e-9 * et["_volume_scale"])
        _check_float(errors, "trades.volume_delta", at["volume_delta"], et["volume_delta"], abs_=scale_tol)

    # book
    ab, eb = actual.get("book"), expected["book"]
    if _check_keys(errors, "book", ab, BOOK_KEYS):
        if ab["ready"] is not eb["ready"]:
            errors.append(f"book.ready: actual={ab['ready']!r} expected={eb['ready']!r} (bool)")
        _check_exact_int(errors, "book.update_id", ab["update_id"], eb["update_id"])
        _check_exact_int(errors, "book.seq", ab["seq"], eb["seq"])
        for k in ("best_bid", "best_ask", "mid", "spread_bps", "bps"):
            _check_float(errors, f"book.{k}", ab[k], eb[k])
        near_bound_stats["compared"] += 1
        alternatives = eb.get("_alternatives")
        if alternatives is None:
            for k in DEPTH_FIELDS:
                _check_float(errors, f"book.{k}", ab[k], eb[k])
        else:
            near_bound_stats["near_bound"] += 1
            if not any(all(_close(ab[k], alt[k]) for k in DEPTH_FIELDS) for alt in alternatives):
                errors.append(
                    "book depth (a level is within 1e-12 of a bound; any variant accepted): actual="
                    + repr({k: ab[k] for k in DEPTH_FIELDS})
                    + " expected one of "
                    + repr(alternatives)
                )

    # health
    ah, eh = actual.get("health"), expected["health"]
    if _check_keys(errors, "health", ah, HEALTH_KEYS):
        for k in sorted(HEALTH_KEYS):
            _check_exact_int(errors, f"health.{k}", ah[k], eh[k])

    if errors:
        raise AssertionError(prefix + "snapshot differs from oracle:\n  " + "\n  ".join(errors))
