"""The compiled core against its reference, the pure-Python core: byte-identical results.

setup.py compiles the per-frame modules of ``bybitmon.core`` with Cython from their own ``.py``
files; ``bybitmon.core.implementation()`` says which build this process runs. Here the same
inputs go through both:

* in this process: the installed package (compiled) next to a second copy of the package loaded
  from its ``.py`` files under another name (``_bybitmon_pure``), fed frame by frame: every
  fixture in tests/data, the real captures in ``BYBITMON_REAL_CAPTURES`` when it is set, and
  hypothesis-generated streams (junk, gaps, duplicates, crossed books, out-of-order trades,
  extreme numbers); after every frame the snapshot JSON of every symbol, the event
  ``parse_frame`` makes of it and the bad-frame reasons must be the same bytes;
* as whole commands: ``bybitmon replay FILE --json --speed max`` with and without
  ``BYBITMON_PURE=1`` must print the same bytes (stdout and stderr) and exit alike.

Skipped, with the reason, when this process does not run the compiled core (not built, stale,
or ``BYBITMON_PURE`` set); CI sets ``BYBITMON_REQUIRE_COMPILED=1``, which turns that skip into a
failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bybitmon
import bybitmon.core
from paths import DATA, TIMEOUT_FACTOR, captures_dir

PKG_DIR = Path(bybitmon.__file__).resolve().parent
ALIAS = "_bybitmon_pure"


def _require_compiled() -> None:
    impl = bybitmon.core.implementation()
    if impl != "compiled":
        why = f"this process runs the {impl} core ({bybitmon.core.implementation_note()})"
        if os.environ.get("BYBITMON_REQUIRE_COMPILED", "") not in ("", "0"):
            pytest.fail(f"BYBITMON_REQUIRE_COMPILED is set but {why}")
        pytest.skip(why)


class _AliasFinder:
    """Loads ``_bybitmon_pure[.x.y]`` from bybitmon's ``.py`` files (never an extension module)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        rel = fullname.split(".")[1:]
        base = PKG_DIR.joinpath(*rel)
        if base.is_dir():
            return importlib.util.spec_from_file_location(fullname, base / "__init__.py",
                                                          submodule_search_locations=[str(base)])
        source = base.with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, source) if source.is_file() else None


def _pure_package():
    """A second copy of bybitmon, every module from its ``.py`` file."""
    if ALIAS not in sys.modules:
        sys.meta_path.insert(0, _AliasFinder())
    import importlib

    pkg = importlib.import_module(ALIAS)
    for m in bybitmon.core.COMPILED_MODULES:
        mod = importlib.import_module(f"{ALIAS}.core.{m}")
        assert mod.__file__.endswith(".py"), mod.__file__
    return pkg


@pytest.fixture(scope="module")
def cores():
    _require_compiled()
    from bybitmon.core import monitor as compiled_monitor, protocol as compiled_protocol

    for m in bybitmon.core.COMPILED_MODULES:
        f = sys.modules[f"bybitmon.core.{m}"].__file__
        assert not f.endswith(".py"), f"bybitmon.core.{m} runs from {f}, not the compiled build"
    _require_fast_path()
    pure = _pure_package()
    assert pure.core.monitor._route_common is None, "the reference copy must not use the fast path"
    assert pure.core.book._new_side is pure.core.book.BookSide
    return ((compiled_monitor.Monitor, compiled_protocol.parse_frame),
            (pure.core.monitor.Monitor, pure.core.protocol.parse_frame))


def _require_fast_path() -> None:
    """The compiled modules run with ``_fast.pyx`` (its parser and its book sides)."""
    from bybitmon.core import _fast, book, monitor

    assert monitor._route_common is _fast.route_common
    assert type(book.OrderBook("X").bid) is _fast.Side


def _state(monitor) -> bytes:
    """Everything a user can read off a Monitor, as bytes: each symbol's v1 snapshot, latency,
    ladder and decimals, the counters and the bad-frame reasons."""
    out = {"now": monitor.now_ms, "frames": monitor.frames, "bad": monitor.bad_frames,
           "reasons": sorted(monitor.bad_reasons.items()), "resync": sorted(monitor.needs_resync),
           "samples": sorted((k, list(v)) for k, v in getattr(monitor, "bad_samples", {}).items()),
           "jumps": getattr(monitor, "clock_jumps", None)}
    snaps = b"".join(monitor.snapshot(s).to_json() + b"\n" for s in monitor.symbols)
    # --json writes snapshot_json(): the same bytes as the typed snapshot, in each core.
    assert b"".join(monitor.snapshot_json(s) + b"\n" for s in monitor.symbols) == snaps
    assert b"".join(monitor.snapshot_json(s, True) for s in monitor.symbols) == snaps
    for s in monitor.symbols:
        out[s] = [monitor.latency(s), monitor.ladder_levels(s, 5), monitor.price_decimals(s)]
    return snaps + orjson.dumps(out, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # both cores must fail alike, with the same message
        return ("raised", type(exc).__name__, str(exc))


def run_both(cores, frames, category: str = "linear", every: int = 1) -> None:
    """Feed ``frames`` [(recv_ns, raw)] to a fresh Monitor of each core; compare after every
    ``every``-th frame and at the end."""
    (cmon, cparse), (pmon, pparse) = cores
    a, b = cmon(category), pmon(category)
    for i, (recv_ns, raw) in enumerate(frames):
        ea, eb = _outcome(cparse, raw, recv_ns), _outcome(pparse, raw, recv_ns)
        assert repr(ea) == repr(eb), f"frame {i}: parse_frame differs\n{raw[:300]!r}"
        ra, rb = _outcome(a.feed, recv_ns, raw), _outcome(b.feed, recv_ns, raw)
        assert ra == rb, f"frame {i}: feed differs\n{raw[:300]!r}"
        if i % every == 0:
            sa, sb = _state(a), _state(b)
            assert sa == sb, f"frame {i}: state differs after\n{raw[:300]!r}"
    a.finish()
    b.finish()
    assert _state(a) == _state(b)


def _fixture_files() -> list[Path]:
    files = sorted(DATA.glob("*.ndjson"))
    where = captures_dir()
    if where is not None:
        files += sorted(where.glob("*.ndjson"))
    return files


def _category(path: Path) -> str:
    return "spot" if "_spot_" in path.name else "linear"


def _frames_of(path: Path) -> list[tuple[int, bytes]]:
    lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
    ts = path.with_name(path.name.replace(".ndjson", ".recv_ts.txt"))
    recv = [int(float(s) * 1e9) for s in ts.read_text().split()] if ts.is_file() else [0] * len(lines)
    if len(recv) != len(lines):
        recv = [0] * len(lines)
    return list(zip(recv, lines))


FIXTURES = _fixture_files()


def test_fixture_list_is_not_empty():
    assert len([f for f in FIXTURES if f.parent == DATA]) >= 5


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_frame_by_frame(cores, path):
    frames = _frames_of(path)
    run_both(cores, frames, _category(path), every=1 if len(frames) <= 3000 else 7)


# -- hypothesis streams ---------------------------------------------------------------------

_PRICES = st.one_of(
    st.sampled_from(["100", "100.0", "100.5", "100.50", "0100.5", "99.9", "101", "1e2", "1E2", "100.000000000001",
                     "0", "-1", "nan", "inf", "-inf", "1e308", "1e-300", "5e-324", "1e400", "", " 100", "abc"]),
    st.decimals(min_value="0.00000001", max_value="1e9", places=None, allow_nan=False).map(str),
    st.floats(min_value=1e-9, max_value=1e12).map(repr),
)
_SIZES = st.one_of(
    st.sampled_from(["0", "0.0", "1", "1.5", "0.001", "1000000", "123456789012.123456789012345", "1e-13",
                     "-1", "nan", "inf", "1e308", "00.10", "1_0", "", "0x10"]),
    st.decimals(min_value=0, max_value="1e6", places=8, allow_nan=False).map(str),
)
def _dumps(obj) -> bytes:
    """JSON text of ``obj``; unlike orjson, it writes integers beyond 64 bits (frames may hold them)."""
    return json.dumps(obj, separators=(",", ":")).encode()


_WEIRD = st.sampled_from([None, True, -1, 0, 2**63, 2**64 + 1, 1.5, "x", "1", [], {}, [["1"]], [[1, 2]],
                          [["1", "2", "3"]], [["1"], ["2"]]])


@st.composite
def _level(draw):
    if draw(st.integers(0, 30)) == 0:
        return draw(_WEIRD)
    return [draw(_PRICES), draw(_SIZES)]


@st.composite
def _book(draw, symbol: str, u: int, ts: int):
    msg = {
        "topic": draw(st.sampled_from([f"orderbook.50.{symbol}", f"orderbook.50.{symbol}", f"orderbook.1.{symbol}",
                                       f"orderbook.rpi.{symbol}", f"orderbook.x.{symbol}", "orderbook."])),
        "type": draw(st.sampled_from(["snapshot", "delta", "delta", "delta", "Delta", "other"])),
        "ts": ts,
        "data": {"s": symbol, "b": draw(st.lists(_level(), max_size=6)), "a": draw(st.lists(_level(), max_size=6)),
                 "u": u, "seq": draw(st.integers(0, 10**12))},
        "cts": draw(st.one_of(st.none(), st.integers(0, 2**40))),
    }
    if draw(st.integers(0, 12)) == 0:
        # one field replaced by a value of the wrong kind, or removed
        target = draw(st.sampled_from(["ts", "type", "data", "u", "b", "a", "seq", "cts"]))
        where = msg["data"] if target in ("u", "b", "a", "seq") else msg
        if draw(st.booleans()):
            where.pop(target, None)
        else:
            where[target] = draw(_WEIRD)
    return msg


@st.composite
def _trades(draw, symbol: str, ts: int):
    items = []
    for _ in range(draw(st.integers(0, 5))):
        t = {"T": ts + draw(st.integers(-120_000, 120_000)), "s": symbol,
             "S": draw(st.sampled_from(["Buy", "Sell", "Sell", "buy", ""])),
             "v": draw(_SIZES), "p": draw(_PRICES), "L": "PlusTick",
             "i": draw(st.sampled_from(["a", "b", "c", "d"])) if draw(st.booleans()) else draw(st.uuids()).hex,
             "BT": draw(st.sampled_from([False, True, "true", None]))}
        if draw(st.integers(0, 15)) == 0:
            key = draw(st.sampled_from(["T", "S", "v", "p", "i"]))
            if draw(st.booleans()):
                del t[key]
            else:
                t[key] = draw(_WEIRD)
        items.append(t)
    data = items if draw(st.integers(0, 20)) else draw(_WEIRD)
    return {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts, "data": data}


@st.composite
def streams(draw):
    """A stream of frames: books with gaps, duplicates, restarts and crossed levels, trades out
    of order and duplicated, other topics, control frames and junk; a clock that jumps around."""
    symbols = draw(st.lists(st.sampled_from(["BTCUSDT", "ETHUSDT", "X"]), min_size=1, max_size=2, unique=True))
    u = {s: 0 for s in symbols}
    ts = draw(st.integers(1, 2**42))
    frames = []
    for _ in range(draw(st.integers(1, 40))):
        ts += draw(st.sampled_from([0, 1, 20, 20, 20, 100, 499, 500, 1000, 30_000, 61_000, -5, -1000]))
        s = draw(st.sampled_from(symbols))
        kind = draw(st.sampled_from(["book", "book", "book", "trades", "trades", "other", "control", "junk"]))
        if kind == "book":
            u[s] = draw(st.sampled_from([u[s] + 1, u[s] + 1, u[s] + 1, u[s], u[s] - 1, u[s] + 2, 1]))
            raw = _dumps(draw(_book(s, u[s], ts)))
        elif kind == "trades":
            raw = _dumps(draw(_trades(s, ts)))
        elif kind == "other":
            raw = _dumps({"topic": draw(st.sampled_from([f"tickers.{s}", f"kline.1.{s}", "x", ""])),
                                "ts": draw(st.one_of(st.just(ts), _WEIRD)), "data": {}})
        elif kind == "control":
            raw = _dumps(draw(st.sampled_from([
                {"success": True, "ret_msg": "", "conn_id": "c", "req_id": "1", "op": "subscribe"},
                {"success": False, "ret_msg": "error:handler not found", "op": "subscribe"},
                {"op": "pong", "args": [str(ts)], "conn_id": "c"}, {"ret_msg": "pong", "op": "ping"},
                {"type": "COMMAND_RESP", "success": True, "data": {"failTopics": ["a"]}}, {"ts": ts}])))
        else:
            raw = draw(st.one_of(st.binary(max_size=60), st.sampled_from(
                [b"[]", b"1", b"null", b'"x"', b"{}", b'{"topic":5}', b'{"topic":"orderbook.50.X"}', b"{",
                 b'{"topic":"publicTrade.X","ts":1e400,"data":[]}'])))
        recv = draw(st.sampled_from([0, (ts + 5) * 1_000_000, ts * 1_000_000 - 7]))
        frames.append((recv, raw))
    return frames


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams())
def test_generated_streams(cores, frames):
    run_both(cores, frames)


def test_prepared_shapes(cores):
    """Hand-picked cases, so each shape is fed whatever hypothesis draws."""
    from frames import book, trades

    frames = [
        book("BTCUSDT", 1, [(100, 1), (99, 50)], [(101, 1), (102, 60)], snapshot=True, ts=1000),
        book("BTCUSDT", 2, [(100, 0), (98, 70)], [], ts=1020),
        book("BTCUSDT", 2, [(97, 1)], [], ts=1040),               # duplicate u: stale
        book("BTCUSDT", 5, [(97, 1)], [], ts=1060),               # gap
        book("BTCUSDT", 6, [(103, 1)], [], snapshot=True, ts=1080),  # crossed snapshot
        book("BTCUSDT", 1, [(100, 1), (99, 500)], [(101, 1)], ts=1100),  # u=1 restart
        trades("BTCUSDT", [(1090, "Sell", 99, 400, "t1"), (1050, "Buy", 101, 1, "t2")]),
        trades("BTCUSDT", [(1090, "Sell", 99, 400, "t1")], ts=1110),   # duplicate id
        book("BTCUSDT", 2, [(99, 0)], [], ts=1200),
        trades("BTCUSDT", [(5000, "Buy", 1e308, 1e-12, "t3")], ts=1210),  # a fill from the future
        trades("BTCUSDT", [(10, "Sell", 5e-324, 123456789012.123456, "t4")], ts=90_000),
    ]
    run_both(cores, [(0, f) for f in frames])


# -- the fast path's pieces against their references -----------------------------------------

# Prices mostly from a small pool, so that deltas meet the levels of earlier frames.
_PRICE = st.one_of(st.integers(1, 30).map(lambda i: i * 0.5), st.floats(1, 200, allow_nan=False).map(lambda x: round(x, 1)))
_SIZE = st.one_of(st.just(0.0), st.floats(0, 50, allow_nan=False).map(lambda x: round(x, 2)),
                  st.sampled_from([1e15, 2.0**-1074, 5.0]))


@st.composite
def _side_ops(draw):
    """Operations on one book side: snapshots (levels ascending, descending as Bybit sends bids,
    or in any order with repeats), deltas (repeats, deletions of absent prices; some of more
    than 256 changes), takes at thresholds that rise and fall, trims from either end, and reads."""
    ops = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["load", "update", "update", "update", "take", "trim", "read", "bulk"]))
        if kind == "load":
            pairs = draw(st.lists(st.tuples(_PRICE, _SIZE), max_size=40))
            order = draw(st.sampled_from(["asc", "desc", "any"]))
            if order != "any":
                pairs = sorted({p: s for p, s in pairs}.items(), reverse=order == "desc")
            ops.append((kind, pairs, draw(st.booleans())))
        elif kind == "update":
            ops.append((kind, draw(st.lists(st.tuples(_PRICE, _SIZE), max_size=8)), draw(st.booleans())))
        elif kind == "bulk":  # more than 256 changes: sorted and merged in one go by both
            ops.append(("update", draw(st.lists(st.tuples(_PRICE, _SIZE), min_size=257, max_size=400)),
                        draw(st.booleans())))
        elif kind == "take":
            ops.append((kind, draw(st.sampled_from([0.0, 1.0, 5.0, 20.0, 1e15, float("inf")])), draw(st.booleans())))
        elif kind == "trim":
            ops.append((kind, draw(st.integers(-1, 30)), draw(st.booleans())))
        else:
            ops.append((kind, draw(_PRICE), draw(_PRICE)))
    return ops


def _side_state(side) -> str:
    return repr((side.items(), len(side), side.lowest(), side.highest(), side.noted(), side.touch_min,
                 side.median()))


@settings(max_examples=300, deadline=None)
@given(_side_ops())
def test_fast_side_matches_the_reference(ops):
    """``_fast.Side`` (C arrays) answers and changes exactly as ``book.BookSide`` (the .py
    reference) over any sequence of operations, given levels as the scanner's ``Levels`` or as
    lists of float pairs."""
    _require_compiled()
    _require_fast_path()
    from bybitmon.core import _fast

    fast = _fast.Side()
    ref = _pure_package().core.book.BookSide()
    for kind, a, b in ops:
        if kind in ("load", "update"):
            ra = _outcome(getattr(fast, kind), _fast.Levels(a) if b else list(a))
            rb = _outcome(getattr(ref, kind), list(a))
        elif kind == "take":
            ra, rb = _outcome(fast.take, a, b), _outcome(ref.take, a, b)
        elif kind == "trim":
            ra, rb = _outcome(fast.trim, a, b), _outcome(ref.trim, a, b)
        else:
            lo, hi = min(a, b), max(a, b)
            # reaches(): against a one-level side at a, and an empty one, both ways round.
            other_fast, other_ref, empty_fast, empty_ref = _fast.Side(), type(ref)(), _fast.Side(), type(ref)()
            other_fast.load([(a, 1.0)])
            other_ref.load([(a, 1.0)])
            ra = [fast.size_at(a), fast.sums(lo, hi), fast.sums(lo, float("inf")), fast.sums(0.0, hi),
                  fast.reaches(other_fast), other_fast.reaches(fast), fast.reaches(empty_fast), empty_fast.reaches(fast)]
            rb = [ref.size_at(a), ref.sums(lo, hi), ref.sums(lo, float("inf")), ref.sums(0.0, hi),
                  ref.reaches(other_ref), other_ref.reaches(ref), ref.reaches(empty_ref), empty_ref.reaches(ref)]
        assert repr(ra) == repr(rb), kind
        assert _side_state(fast) == _side_state(ref), kind


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([1.0, 2.0, 3.0]), st.floats(1e-9, 1e15, allow_nan=False)), max_size=300))
def test_fast_side_median_is_the_sorted_median(sizes):
    """``Side.median`` (selection in place, no sort) is the median of the sorted sizes, with
    runs of equal sizes and sides of any length, odd and even."""
    _require_compiled()
    from bybitmon.core import _fast

    side = _fast.Side()
    side.load([(float(i + 1), s) for i, s in enumerate(sizes)])
    xs = sorted(sizes)
    n = len(xs)
    want = 0.0 if not n else xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    assert repr(side.median()) == repr(want)


def test_fast_side_grows_keeps_order_and_refuses_nan():
    """A side past its first block (64 levels) keeps every level in order; a NaN level is
    refused before anything changes, as the parser refuses it."""
    _require_compiled()
    from bybitmon.core import _fast

    side = _fast.Side()
    side.load(_fast.Levels([(float(p), 1.0) for p in range(1000, 800, -1)]))  # descending, as bids come
    side.update([(float(p) + 0.5, 2.0) for p in range(700, 1000)])
    prices = [p for p, _ in side.items()]
    assert prices == sorted(prices) and len(side) == 500 and side.size_at(900.5) == 2.0
    assert side.trim(100, True) == 400 and side.lowest() == 950.5 and len(side) == 100
    before = side.items()
    with pytest.raises(ValueError):
        side.update([(1.0, 1.0), (float("nan"), 1.0)])
    assert side.items() == before


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(1, 200, allow_nan=False).map(lambda x: round(x, 1)), st.integers(1, 200)),
                max_size=24),
       st.lists(st.tuples(st.floats(1, 200, allow_nan=False).map(lambda x: round(x, 1)), st.floats(0, 50)),
                max_size=8))
def test_fast_active_check_of_scanned_levels_matches_the_reference(active_prices, pairs):
    """``Side.changes_at`` on ``Levels`` finds the same changes, in the same order, as the
    reference ``BookSide.changes_at`` on the list (int keys included: 100 and 100.0 are one
    dict key), for a few densities (doubles compared) and for many (dict lookups); on a list
    it is the reference's."""
    _require_compiled()
    _require_fast_path()
    from bybitmon.core import _fast

    ref = _pure_package().core.book.BookSide().changes_at
    side = _fast.Side()
    active = {p: object() for p in active_prices}
    pairs += [(float(p), 1.0) for p in active_prices[:2]]
    got = side.changes_at(_fast.Levels(pairs), active)
    assert repr(got) == repr(ref(list(pairs), active))
    assert side.changes_at(list(pairs), active) == ref(list(pairs), active)
    assert side.changes_at(_fast.Levels(pairs), {}) == []


def test_scanned_levels_are_the_reference_list_to_any_reader():
    """``Levels`` reads as the list of float pairs: length, indexing (negative too), slices,
    iteration, equality both ways, repr; it refuses values the parser refuses and is not
    hashable (a list is not)."""
    _require_compiled()
    _require_fast_path()
    from bybitmon.core import _fast

    pairs = [(100.5, 1.0), (100.0, 0.0), (99.5, 2.25)] + [(float(i), 1.0) for i in range(1, 30)]  # past 16 inline
    lv = _fast.Levels(pairs)
    assert len(lv) == len(pairs) and bool(lv) and not _fast.Levels()
    assert lv[0] == pairs[0] and lv[-1] == pairs[-1] and lv[1:3] == pairs[1:3] and lv[::-7] == pairs[::-7]
    assert list(lv) == pairs and lv == pairs and pairs == lv and lv == tuple(pairs) and lv != pairs[:-1]
    assert repr(lv) == repr(pairs)
    assert all(type(p) is float and type(s) is float for p, s in lv)
    with pytest.raises(IndexError):
        lv[len(pairs)]
    with pytest.raises(TypeError):
        hash(lv)
    for bad in [(0.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf")), (1e300, 1.0)]:
        with pytest.raises(ValueError):
            _fast.Levels([bad])


# Sums that stress exact summation: cancellation, magnitudes 1e-300..1e300 (partials that do
# not overlap), half-way cases, overflow, and what fsum treats specially.
_SUMMAND = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 2.0**-1074, 1.0, 1e-16, 2.0**53, 1.0 + 2.0**-52,
                     float("inf"), float("nan"), 0.0, -0.0]),
    st.integers(0, 3))


def _sides(pairs):
    """A ``_fast.Side`` and a reference ``BookSide`` loaded with ``pairs``."""
    from bybitmon.core import _fast

    pairs = list(pairs)
    fast = _fast.Side()
    ref = _pure_package().core.book.BookSide()
    fast.load(list(pairs))
    ref.load(list(pairs))
    return fast, ref


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_SUMMAND, _SUMMAND), max_size=60), _SUMMAND, _SUMMAND)
def test_fast_depth_sums_match_fsum_bit_for_bit(pairs, lo, hi):
    """``Side.sums`` (fsum's algorithm on C doubles) returns exactly what ``BookSide.sums``
    (math.fsum in price order) returns, or raises what it raises, for any band (of numbers:
    the depth band's bounds are products of a finite mid)."""
    _require_compiled()
    lo, hi = (0.0 if x != x else float(x) for x in (lo, hi))
    pairs = [(float(p), float(s)) for p, s in pairs if p == p and s == s]
    fast, ref = _sides(pairs)
    for a, b in ((lo, hi), (hi, lo), (float(lo), float("inf")), (0.0, float(hi))):
        assert repr(_outcome(fast.sums, a, b)) == repr(_outcome(ref.sums, a, b))


def test_fast_depth_sums_are_correctly_rounded_where_naive_sums_are_not():
    """The cases a plain float loop gets wrong, summed exactly by both."""
    _require_compiled()
    prices = [1.0, 2.0, 3.0, 4.0]
    cases = [[1e16, 1.0, -1e16, 1.0], [0.1] * 4, [1e300, 1.0, -1e300, 3.0]]
    for sizes in cases:
        fast, ref = _sides(zip(prices, sizes))
        assert fast.sums(0.0, 5.0) == ref.sums(0.0, 5.0)
    assert _sides(zip(prices, cases[0]))[0].sums(0.0, 5.0)[0] == 2.0  # naive: 1.0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams())
def test_fast_parser_takes_a_frame_only_as_the_reference_reads_it(frames):
    """``_fast.route_common`` gives exactly ``route``'s fields, or None (then ``route`` decides)."""
    _require_compiled()
    _require_fast_path()
    from bybitmon.core import _fast
    from bybitmon.core.protocol import BookFields, TradesFields

    ref = _pure_package().core.protocol.route
    taken = 0
    for recv_ns, raw in frames * 2:  # the second pass finds the topics and prices cached
        fast = _fast.route_common(raw)
        want = ref(raw, recv_ns)
        if fast is None:
            continue
        taken += 1
        assert type(want).__name__ in ("BookFields", "TradesFields"), (raw, want)
        assert repr(fast) == repr(tuple(want)), raw
        assert len(fast) == len(BookFields._fields if type(want).__name__ == "BookFields" else TradesFields._fields)


def test_scanner_topic_cache_keeps_a_replays_topics_apart():
    """The scanner remembers recent topics in slots chosen by a hash of the whole topic, so the
    topics of a few symbols (which share their ...USDT ending and length) do not evict one
    another at every frame, and a category's worth mostly fit."""
    _require_compiled()
    _require_fast_path()
    from bybitmon.core._fast import _topic_slot_of

    few = [f"{kind}{sym}USDT".encode() for sym in ("BTC", "ETH", "SOL") for kind in ("orderbook.50.", "publicTrade.")]
    assert len({_topic_slot_of(t) for t in few}) == len(few)
    many = [f"{kind}{i:03d}XUSDT".encode() for i in range(200) for kind in ("orderbook.50.", "publicTrade.")]
    assert len({_topic_slot_of(t) for t in many}) >= 0.7 * len(many)


def test_fast_parser_takes_the_common_frames():
    """Well-formed book and trade frames (topic and prices seen before) take the fast path."""
    _require_compiled()
    _require_fast_path()
    from frames import book, trades

    from bybitmon.core import _fast
    from bybitmon.core.monitor import Monitor

    snap = book("BTCUSDT", 1, [(100, 1), (99, 50)], [(101, 1)], snapshot=True, ts=1000)
    delta = book("BTCUSDT", 2, [(100, 0), (99, 50)], [(101, 2)], ts=1020)
    tr = trades("BTCUSDT", [(1010, "Sell", 99, 1, "t1")], ts=1030)
    m = Monitor()
    for raw in (snap, delta, tr):
        m.feed(0, raw)
    assert _fast.route_common(delta) is not None and _fast.route_common(tr) is not None
    assert _fast.route_common(b'{"topic":"tickers.BTCUSDT","ts":1}') is None
    assert _fast.route_common(b"{") is None


# -- whole commands -----------------------------------------------------------------------


def _replay(path: Path, category: str, pure: bool) -> tuple[int, bytes, bytes]:
    env = {k: v for k, v in os.environ.items() if k != "BYBITMON_PURE"}
    if pure:
        env["BYBITMON_PURE"] = "1"
    # Run the package this test imported (not a source tree that happens to be the cwd).
    env["PYTHONPATH"] = str(PKG_DIR.parent) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "bybitmon", "replay", str(path), "--json", "--speed", "max",
                          "--category", category], env=env, cwd=str(path.parent), capture_output=True,
                         timeout=300 * TIMEOUT_FACTOR)
    return out.returncode, out.stdout, out.stderr


def _implementation_in_subprocess(pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "BYBITMON_PURE"}
    if pure:
        env["BYBITMON_PURE"] = "1"
    env["PYTHONPATH"] = str(PKG_DIR.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", "import bybitmon.core as c; print(c.implementation())"],
                          env=env, capture_output=True, text=True, check=True, cwd="/").stdout.strip()


def test_pure_switch_selects_the_core():
    _require_compiled()
    assert _implementation_in_subprocess(pure=False) == "compiled"
    assert _implementation_in_subprocess(pure=True) == "pure"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_replay_json_is_byte_identical(path):
    _require_compiled()
    cat = _category(path)
    compiled, pure = _replay(path, cat, pure=False), _replay(path, cat, pure=True)
    assert compiled == pure
    assert compiled[0] == 0, compiled[2][-500:]
    if b'"topic":"orderbook.' in path.read_bytes().replace(b" ", b""):
        assert compiled[1].count(b'"type":"snapshot"') > 0


@settings(max_examples=4, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(st.lists(streams(), min_size=5, max_size=20))
def test_replay_of_generated_streams_is_byte_identical(tmp_path, batch):
    """Hypothesis streams written as one capture file, replayed by both builds."""
    _require_compiled()
    path = tmp_path / "generated.ndjson"
    lines = [raw.replace(b"\n", b" ").replace(b"\r", b" ") for frames in batch for _, raw in frames]
    path.write_bytes(b"\n".join(lines) + b"\n")
    compiled, pure = _replay(path, "linear", pure=False), _replay(path, "linear", pure=True)
    assert compiled == pure


def test_version_names_the_core_that_runs():
    """``bybitmon --version`` says which core runs: the one ``implementation()`` reports."""
    env = {k: v for k, v in os.environ.items() if k != "BYBITMON_PURE"}
    env["PYTHONPATH"] = str(PKG_DIR.parent) + os.pathsep + env.get("PYTHONPATH", "")
    plain = subprocess.run([sys.executable, "-m", "bybitmon", "--version"], env=env, capture_output=True,
                           text=True, cwd="/", timeout=60 * TIMEOUT_FACTOR)
    forced = subprocess.run([sys.executable, "-m", "bybitmon", "--version"], env={**env, "BYBITMON_PURE": "1"},
                            capture_output=True, text=True, cwd="/", timeout=60 * TIMEOUT_FACTOR)
    assert plain.returncode == 0 and forced.returncode == 0
    assert plain.stdout.startswith(f"bybitmon {bybitmon.__version__} ({_implementation_in_subprocess(False)} core: ")
    assert forced.stdout == f"bybitmon {bybitmon.__version__} (pure core: BYBITMON_PURE is set)\n"


# -- the byte scanner of book and trade frames (_fast._scan, inside route_common) ---------------

_NUMBER_TEXT = st.one_of(
    st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,20})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}\.[0-9]{1,12}", fullmatch=True),
    st.sampled_from(["0", "0.0", "00.10", "1e5", "1E5", "-1", ".5", "5.", "1_0", " 1", "1 ", "+1", "inf", "nan",
                     "0x10", "1..2", "", "\u0661", "9" * 64, "9" * 65, "1000000000000", "1000000000000.5",
                     "999999999999999.9", "0.1000000000000000055511151231257827", "123456789012345",
                     "1234567890123456", "0.000000000000001", "1.5.", "." + "9" * 63, "9" * 63 + ".",
                     "9" * 15 + ".5", "0." + "0" * 21 + "1", "12\\u0033"]),
    st.text(alphabet="0123456789.e-", max_size=70),
)


def _frame_text(bids, asks, *, u=2, ts=1_700_000_000_100, key_order=None, sep="", extra=None, cts="1700000000099"):
    parts = {
        "topic": '"orderbook.50.SCANUSDT"', "type": '"delta"', "ts": str(ts),
        "data": "{" + f'"s":"SCANUSDT","b":{json.dumps(bids)},"a":{json.dumps(asks)},"u":{u},"seq":{u + 7}' + "}",
        "cts": cts,
    }
    keys = key_order or list(parts)
    body = ("," + sep).join(f'"{k}":{sep}{parts[k]}' for k in keys)
    if extra:
        body += "," + extra
    return "{" + sep + body + sep + "}"


def _cached_topic() -> None:
    from bybitmon.core.monitor import Monitor

    Monitor().feed(0, _frame_text([["100", "1"]], [["101", "1"]]).replace('"delta"', '"snapshot"'))


def _same_as_reference(raw, kind: str = "BookFields") -> bool:
    """route_common's answer for ``raw`` is None or exactly the reference's fields (of
    ``kind``); True when taken."""
    from bybitmon.core import _fast

    fast = _fast.route_common(raw)
    want = _pure_package().core.protocol.route(raw, 0)
    if fast is None:
        return False
    assert type(want).__name__ == kind, (raw, want)
    assert repr(fast) == repr(tuple(want)), raw
    return True


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_NUMBER_TEXT, _NUMBER_TEXT), max_size=4), st.sampled_from([bytes, str]))
def test_scanned_prices_and_sizes_are_what_float_makes(levels, kind):
    """Every price and size string the scanner takes comes out as float(text) gives it (a
    division for up to 15 digits, Python's own strtod beyond); every other string leaves the
    frame to the orjson path and the reference (which may call it bad)."""
    _require_compiled()
    _require_fast_path()
    _cached_topic()
    raw = _frame_text([list(x) for x in levels], [])
    raw = raw.encode() if kind is bytes else raw
    _same_as_reference(raw)


def test_scanner_takes_plain_decimals_exactly():
    """Hand-picked: the fast division and the long path both give float()'s double."""
    _require_compiled()
    _require_fast_path()
    _cached_topic()
    texts = ["0.1", "0.3", "2.675", "66231.50", "0.000001", "123456789012345", "1234567.89012345",
             "123456789012.3456", "0.1000000000000000055511151231257827", "999999999999.99"]
    from bybitmon.core import _fast

    for p in texts:
        price = p if float(p) <= 1e12 else "1.5"  # the reference's price range
        raw = _frame_text([[price, p]], []).encode()
        assert _same_as_reference(raw), p
        assert _fast._scan_text(raw)[7] == [(float(price), float(p))]


_SEPS = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])
_KEYS = ["topic", "type", "ts", "data", "cts"]


@settings(max_examples=300, deadline=None)
@given(st.permutations(_KEYS), _SEPS,
       st.sampled_from([None, '"x":1', '"cts":5', '"topic":"orderbook.50.SCANUSDT"', '"ts":1', '"data":{}']),
       st.sampled_from(["1700000000099", "-1", "01", "1.0", "1e3", '"1"', "null", "99999999999999999999",
                        "7258118400000"]),
       st.sampled_from([1_700_000_000_100, 0, 7_258_118_400_000, 10**18, 10**19]),
       st.sampled_from(["", " ", "x", "}", "\x00"]))
def test_scanner_takes_only_what_the_reference_reads_alike(order, sep, extra, cts, ts, tail):
    """Key order, whitespace, repeated or unknown keys, odd numbers and trailing bytes: the
    scanner's fields are the reference's, or it leaves the frame to them."""
    _require_compiled()
    _require_fast_path()
    _cached_topic()
    raw = _frame_text([["100.5", "2"]], [["101", "0"]], key_order=list(order), sep=sep, extra=extra, cts=cts, ts=ts)
    _same_as_reference((raw + tail).encode())
    _same_as_reference(raw + tail)


def test_scanner_reads_the_common_frame_and_refuses_what_it_should_not():
    _require_compiled()
    _require_fast_path()
    _cached_topic()
    from bybitmon.core import _fast

    good = _frame_text([["100.5", "2"]], [["101", "0"]])
    assert _same_as_reference(good) and _same_as_reference(good.encode())
    assert _same_as_reference(_frame_text([], [], key_order=["data", "ts", "type", "topic"]))  # no cts
    changes = [('"s":"SCANUSDT"', '"s":"SCAN\\u0055SDT"'),   # an escape: orjson's path
               ('"type":"delta"', '"type":"Delta"'), ('"u":2', '"u":-2'), ('"100.5"', '"1e2"'),
               ('"100.5"', '"0"'),                                 # price 0: the reference's bad frame
               ('"s":"SCANUSDT",', '"s":"SCANUSDT","s":"X",'),
               ("orderbook.50.SCANUSDT", "orderbook.50.NEVERSEEN")]
    bad = [good.replace(a, b) for a, b in changes]
    assert all(b != good for b in bad)
    # Cut inside a string (the scanner's string loop stops on the NUL after the text), or a
    # NUL inside one.
    cut = [good[:good.index("SCANUSDT") + 3], good[:good.index('"delta"') + 4], good.replace("SCANUSDT", "SCAN\x00USDT")]
    for raw in bad + cut + [good + "x", good[:-1], "é" + good]:
        assert _fast._scan_text(raw) is None, raw
        assert _fast._scan_text(raw.encode()) is None, raw


def _trade_text(trades, *, ts=1_700_000_000_100, sep="", extra=None, head_type='"snapshot"'):
    body = ("," + sep).join([f'"topic":{sep}"publicTrade.SCANUSDT"', f'"type":{sep}{head_type}', f'"ts":{sep}{ts}',
                             f'"data":{sep}[' + ",".join(trades) + "]"])
    if extra:
        body += "," + extra
    return "{" + body + sep + "}"


def _trade_obj(fields: dict, order=None) -> str:
    keys = order or list(fields)
    return "{" + ",".join(f'"{k}":{fields[k]}' for k in keys) + "}"


_TRADE = {"T": "1700000000099", "s": '"SCANUSDT"', "S": '"Buy"', "v": '"0.004"', "p": '"65114.20"',
          "L": '"MinusTick"', "i": '"a9188a0a-82bc-50de-be60-03eedbe3cdd7"', "BT": "false", "RPI": "false",
          "seq": "753843954913"}


def _cached_trade_topic() -> None:
    from bybitmon.core.monitor import Monitor

    # The first frame of a topic goes the orjson way, which checks the symbol and caches it.
    Monitor().feed(0, _trade_text([_trade_obj(_TRADE)]) + " ")


def _same_trades_as_reference(raw) -> bool:
    return _same_as_reference(raw, "TradesFields")


@settings(max_examples=300, deadline=None)
@given(st.permutations(list(_TRADE)), st.sets(st.sampled_from(list(_TRADE)), max_size=3),
       st.dictionaries(st.sampled_from(list(_TRADE) + ["X"]),
                       st.sampled_from(['"Sell"', '"sell"', "true", "null", '"1e2"', '"0"', '"-1"', "-5", "01", "1.5",
                                        '"' + "a" * 129 + '"', '"\\u0041"', '"12.5"', "7258118400000", '""']),
                       max_size=2),
       _SEPS, st.sampled_from(["", " ", "x"]), st.sampled_from([bytes, str]))
def test_trade_scanner_takes_only_what_the_reference_reads_alike(order, dropped, changed, sep, tail, kind):
    """Trade frames with their fields reordered, dropped, changed to odd values, unknown keys
    and trailing bytes: the scanner gives the reference's fields (the same Trade tuples) or
    leaves the frame to it."""
    _require_compiled()
    _require_fast_path()
    _cached_trade_topic()
    fields = {**_TRADE, **changed}
    obj = _trade_obj(fields, [k for k in order if k not in dropped] + [k for k in changed if k not in _TRADE])
    raw = _trade_text([obj, _trade_obj(_TRADE)], sep=sep) + tail
    _same_trades_as_reference(raw.encode() if kind is bytes else raw)


def test_trade_scanner_reads_bybits_trade_frames():
    _require_compiled()
    _require_fast_path()
    _cached_trade_topic()
    from bybitmon.core import _fast

    plain = _trade_text([_trade_obj(_TRADE), _trade_obj({**_TRADE, "S": '"Sell"', "BT": "true", "i": '"2"'})])
    spot = _trade_text([_trade_obj({k: _TRADE[k] for k in ("i", "T", "p", "v", "S", "seq", "s", "BT", "RPI")})])
    for raw in (plain, spot, _trade_text([]), plain.encode()):
        assert _fast._scan_text(raw) is not None, raw
        assert _same_trades_as_reference(raw)
    sym, ts, trades = _fast._scan_text(plain)
    assert (sym, ts) == ("SCANUSDT", 1_700_000_000_100)
    assert [(t.is_buy, t.price, t.size, t.size_str, t.block) for t in trades] == \
        [(True, 65114.2, 0.004, "0.004", False), (False, 65114.2, 0.004, "0.004", True)]
    for bad in (plain.replace('"Buy"', '"BUY"'), plain.replace('"p":"65114.20"', '"p":"0"'),
                plain.replace('"BT":false', '"BT":0'), plain.replace("publicTrade.SCANUSDT", "publicTrade.UNSEEN"),
                plain.replace('"T":1700000000099', '"T":-1'), plain[:-1], plain + "]"):
        assert bad != plain or bad.endswith("]")
        assert _fast._scan_text(bad) is None, bad


def test_the_build_digest_covers_a_modules_pxd(tmp_path):
    """A compiled module is trusted only while its source (.py or .pyx) and its .pxd (the C
    types it was compiled with) are as built: an edit to either changes the digest the import
    checks."""
    from bybitmon.core._digest import source_digest

    py = tmp_path / "m.py"
    py.write_text("x = 1\n")
    alone = source_digest(str(py))
    (tmp_path / "m.pxd").write_text("cdef class A:\n    pass\n")
    with_pxd = source_digest(str(py))
    (tmp_path / "m.pxd").write_text("cdef class A:\n    cdef public double x\n")
    assert len({alone, with_pxd, source_digest(str(py))}) == 3
    # A .pyx with a .pxd (the fast path's Side, which the compiled book cimports) likewise.
    pyx = tmp_path / "f.pyx"
    pyx.write_text("x = 1\n")
    pyx_alone = source_digest(str(pyx))
    (tmp_path / "f.pxd").write_text("cdef class Side:\n    cdef double *px\n")
    assert source_digest(str(pyx)) != pyx_alone
    with pytest.raises(OSError):
        source_digest(str(tmp_path / "missing.py"))


def test_scanner_topic_memory_never_mixes_up_topics():
    """The scanner remembers recent topics in 64 slots chosen by length and last bytes: topics
    that share a slot (symbols differing in their first letter only, hundreds of topics) must
    each still route to their own symbol and depth, again after the parser's topic caches
    are cleared."""
    _require_compiled()
    _require_fast_path()
    from frames import book, trades

    from bybitmon.core import protocol
    from bybitmon.core.monitor import Monitor

    symbols = [f"{a}{b}XUSDT" for a in "ABCDEFGHIJ" for b in "KLMNOPQRST"]  # 100, 10 to a slot
    frames = []
    for s in symbols:
        frames.append(book(s, 1, [(100, 1)], [(101, 1)], snapshot=True, ts=1000, depth=50 if s[0] < "F" else 200))
        frames.append(trades(s, [(1000, "Buy", 100, 1, f"id-{s}")], ts=1001))
    m = Monitor(max_symbols=1000)
    for raw in frames:  # the reference path caches each topic first
        m.feed(0, raw)
    taken = 0
    for round_ in range(2):
        for raw in frames + frames[::-1]:
            taken += _same_as_reference(raw, "BookFields" if b'"orderbook.' in raw else "TradesFields")
        protocol._BOOK_TOPICS.clear()
    assert taken >= len(frames) * 3


def test_fast_depth_sums_keep_fsums_overflow_in_price_order():
    """fsum in price order overflows on 1e308 + 1e308 before -1e308 comes; in another order it
    would not. The fast sums must raise where the reference raises."""
    _require_compiled()
    fast, ref = _sides([(0.1, 1e308), (0.3, -1e308), (0.2, 1e308)])
    want = _outcome(ref.sums, 0.0, 1.0)
    assert "Overflow" in repr(want)
    assert repr(_outcome(fast.sums, 0.0, 1.0)) == repr(want)


# -- the reader's line loops in C (``_fast.ndjson_pairs``, ``_fast.recording_pairs``) ----------

_NDJSON_PARTS = [b"{", b"}", b"a", b"\r", b"\xc3\xa9", b"\xff", b" ", b'"x":1', b"\t"]
_RECORDING_PARTS = [b"1", b"0", b"9" * 19, b"9223372036854775807", b"9223372036854775808", b" ", b"c1",
                    b"=", b"{", b"\r", b"\xc3\xa9", b"\xff", b"a", b"\xd9\xa3"]


def _read_as_reference(mid: bytes, cap: int, fmt: str):
    from bybitmon.transport.recording import _decode, _usual_pairs

    return _usual_pairs(fmt, [None if len(b) > cap else _decode(b.rstrip(b"\r")) for b in mid.split(b"\n")])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["ndjson", "bybitmon"]), st.data(), st.integers(0, 20), st.integers(1, 60))
def test_fast_line_loops_read_lines_as_the_reader_does(fmt, data, pad, cap):
    """``ndjson_pairs`` / ``recording_pairs`` take a run of lines exactly as the reference
    reader's split, decode and ``_usual_pairs`` do, and decline only what those would not take
    whole or text that is not UTF-8 (the reference then reads it line by line)."""
    _require_compiled()
    from bybitmon.core._fast import ndjson_pairs, recording_pairs

    parts = _NDJSON_PARTS if fmt == "ndjson" else _RECORDING_PARTS
    lines = data.draw(st.lists(st.lists(st.sampled_from(parts), max_size=6).map(b"".join), min_size=1, max_size=30))
    mid = b"\n".join(lines)
    chunk = b"x" * pad + b"\n" + mid + b"\nnext line, not read"
    fast = ndjson_pairs if fmt == "ndjson" else recording_pairs
    got = fast(chunk, pad + 1, pad + 1 + len(mid), cap)
    ref = _read_as_reference(mid, cap, fmt)
    try:
        mid.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    if got is None:
        assert ref is None or not utf8
    else:
        assert got == ref
        assert all(type(ns) is int and type(raw) is str for ns, raw in got)
    if ref is not None and utf8:
        assert got is not None


def test_fast_recording_lines_take_what_the_reader_takes():
    _require_compiled()
    from bybitmon.core._fast import recording_pairs

    def one(line: bytes):
        return recording_pairs(line, 0, len(line), 1000)

    assert one(b"9223372036854775807 c1 {}") == [(2**63 - 1, "{}")]
    assert one(b"0001 c1 {}\r") == [(1, "{}")]
    assert one(b"5  raw with spaces ") == [(5, "raw with spaces ")]
    assert one(b"5 c1 ") == [(5, "")]
    assert one(b"5 c\xc3\xa9 {\xc3\xa9}") == [(5, "{\u00e9}")]
    for bad in (b"9223372036854775808 c1 {}", b"1" * 20 + b" c1 {}", b" c1 {}", b"12a c1 {}", b"5 c1",
                b"5 c1 ={}", b"5", b"", b"\xd9\xa3 c1 {}", b"5 \xff {}", b"5 c1 {\xff}"):
        assert one(bad) is None, bad
    with pytest.raises(ValueError):
        recording_pairs(b"1 c {}", 2, 1, 10)


_FRAME = '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1700000000000,"data":[]}'
_READER_LINES = st.sampled_from([
    _FRAME.encode(), _FRAME.encode(), _FRAME.encode() + b"\r", _FRAME.replace("BTC", "\u00e9").encode(),
    _FRAME.encode()[:-2] + b"\xff}", b"", b"   ", b"junk", b"{" + b"y" * 300 + b"}",
])
_RECORDING_HEADER = b'{"format":"bybitmon-recording","version":1}'


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.booleans(), st.lists(st.tuples(_READER_LINES, st.sampled_from([b"17 c1 ", b"9" * 20 + b" c1 ", b"", b"12a c "])),
                               min_size=1, max_size=80),
       st.integers(8, 700), st.sampled_from([130, 200, 10_000]), st.booleans())
def test_reader_with_the_fast_line_loops_reads_what_the_reference_reads(tmp_path, recording, lines, read_size, cap,
                                                                       torn):
    """``FrameReader.pairs()`` with the C line loops and without them: the same pairs and the
    same report (frame count, skipped lines and their numbers, torn tail), whatever the
    chunking, the line cap and the mix of usual, CRLF, non-ASCII, invalid UTF-8, blank, junk,
    over-long and (recordings) badly stamped lines."""
    _require_compiled()
    from bybitmon.transport import recording as rec

    first = [_RECORDING_HEADER, b"1 c1 " + _FRAME.encode()] if recording else [_FRAME.encode()]
    body = [(stamp + line if recording and line.strip() else line) for line, stamp in lines]
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"\n".join(first + body) + (b"" if torn else b"\n"))
    fast = rec._fast_pairs()
    assert set(fast) == {"ndjson", "bybitmon"}
    results = []
    for loops in (fast, {}):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rec, "_READ_SIZE", read_size)
            mp.setattr(rec, "_FAST_PAIRS", loops)
            reader = rec.FrameReader(str(path), max_line_bytes=cap)
            pairs = list(reader.pairs())
            r = reader.report
            results.append((pairs, r.format, r.frames, r.skipped, r.skipped_total, r.torn_tail))
    assert results[0] == results[1]
    assert results[0][2] == len(results[0][0]) >= 1
