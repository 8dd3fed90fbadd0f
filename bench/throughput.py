"""Frames per second through bybitmon's pipeline (``Monitor.feed``, no UI), next to a floor and peers.

Run:  /work/benchvenv/bin/python bench/throughput.py          (with cryptofeed and pybit)
      /work/venv/bin/python bench/throughput.py               (bybitmon and references only)

Datasets:
  * the real recorded fixtures (../shared/fixtures/bybit-real, linear BTCUSDT+ETHUSDT and spot
    BTCUSDT: orderbook.200, publicTrade, tickers, kline, acks), fed ``--fixture-loops`` times per
    sample, each time into a FRESH instance (re-feeding one instance would only hit the
    stale-``u`` check);
  * a long simulated recording (default 1,000,000 frames of 20 symbols, orderbook.50 every 20 ms
    plus publicTrade), generated once by MarketSimulator and cached in the temp directory.

Implementations, all fed the same frame texts in the same process, interleaved, best of N:
  * orjson.loads alone (the floor: every implementation has to parse);
  * orjson + a plain dict book (reference: dict per side, snapshot replaces, "0" deletes; trades
    parsed and dropped);
  * bybitmon parse + OrderBook only (protocol.book_fields/trade_fields + OrderBook.apply_fields:
    bybitmon without trade windows, densities and latency; shows what the rest costs);
  * bybitmon Monitor.feed (the real pipeline);
  * cryptofeed: ``Bybit.message_handler(msg, conn, timestamp)`` with a fake connection, awaited
    in one coroutine (as its ConnectionHandler does), no-op async callbacks for L2_BOOK/TRADES;
  * pybit: ``WebSocket._on_message(raw)`` of a WebSocket built without connecting, with no-op
    callbacks for every topic in the data (its orderbook delta handling is
    ``_process_delta_orderbook``; it also deep-copies every book and ticker message for the callback).
Each peer's book is checked after the run: its BTCUSDT best bid/ask is printed next to bybitmon's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from dataclasses import dataclass, field

import orjson

import _benchutil as bu

from bybitmon.core import protocol
from bybitmon.core.book import OrderBook
from bybitmon.core.monitor import Monitor

WS_BASE = "wss://stream.bybit.com/v5/public/"


@dataclass
class Dataset:
    name: str
    category: str
    frames: list[tuple[int, str]]       # (recv_ns, raw text)
    loops: int                          # files fed per timed sample (fresh instance each)
    topics: list[str] = field(default_factory=list)

    def book_topic(self, symbol: str) -> str | None:
        return next((t for t in self.topics if t.startswith("orderbook.") and t.endswith("." + symbol)), None)


def _topics(frames: list[tuple[int, str]]) -> list[str]:
    seen: dict[str, None] = {}
    for _, raw in frames:
        t = orjson.loads(raw).get("topic")
        if isinstance(t, str):
            seen[t] = None
    return list(seen)


def load_fixture(stem: str, category: str, loops: int) -> Dataset:
    lines = (bu.FIXTURES / f"{stem}.ndjson").read_text().splitlines()
    recv = (bu.FIXTURES / f"{stem}.recv_ts.txt").read_text().split()
    frames = [(int(float(t) * 1e9), raw) for t, raw in zip(recv, lines)]
    return Dataset(stem, category, frames, loops, _topics(frames))


# --------------------------------------------------------------------------- implementations
# Each implementation: make(ds) -> fresh state (untimed); run(states, ds) feeds ds.frames into each
# state in turn (timed) and returns the number of frames that raised; best(state, ds, symbol) ->
# (best bid, best ask, bid levels, ask levels), or None.


class Impl:
    name = "?"
    note = ""

    def make(self, ds: Dataset):
        raise NotImplementedError

    def run(self, states: list, ds: Dataset) -> int:
        raise NotImplementedError

    def best(self, state, ds: Dataset, symbol: str) -> tuple | None:
        return None


class OrjsonFloor(Impl):
    name = "orjson.loads only (floor)"

    def make(self, ds):
        return None

    def run(self, states, ds):
        loads = orjson.loads
        frames = ds.frames
        for _ in states:
            for _ns, raw in frames:
                loads(raw)
        return 0


class DictBook(Impl):
    name = "orjson + dict book (reference)"

    def make(self, ds):
        return {}

    def run(self, states, ds):
        loads = orjson.loads
        frames = ds.frames
        for books in states:
            for _ns, raw in frames:
                msg = loads(raw)
                topic = msg.get("topic")
                if topic is None or not topic.startswith("orderbook."):
                    continue
                data = msg["data"]
                if msg["type"] == "snapshot":
                    books[topic] = ({p: s for p, s in data["b"]}, {p: s for p, s in data["a"]})
                    continue
                book = books.get(topic)
                if book is None:
                    continue
                for side, levels in ((book[0], data["b"]), (book[1], data["a"])):
                    for p, s in levels:
                        if s == "0":
                            side.pop(p, None)
                        else:
                            side[p] = s
        return 0

    def best(self, books, ds, symbol):
        book = books.get(ds.book_topic(symbol))
        if not book or not book[0] or not book[1]:
            return None
        return max(map(float, book[0])), min(map(float, book[1])), len(book[0]), len(book[1])


class BybitmonBookOnly(Impl):
    name = "bybitmon parse + OrderBook only"
    note = "protocol.book_fields/trade_fields + OrderBook.apply_fields; no windows, densities, latency"

    def make(self, ds):
        return {}

    def run(self, states, ds):
        loads = orjson.loads
        book_fields = protocol.book_fields
        trade_fields = protocol.trade_fields
        frames = ds.frames
        errors = 0
        for books in states:
            for _ns, raw in frames:
                msg = loads(raw)
                topic = msg.get("topic")
                if type(topic) is not str:
                    continue
                try:
                    if topic.startswith("orderbook."):
                        f = book_fields(msg, topic)
                        if f is None:
                            continue
                        symbol, _depth, ts, cts, u, seq, snap, bids, asks = f
                        book = books.get(symbol)
                        if book is None:
                            book = books[symbol] = OrderBook(symbol)
                        book.apply_fields(snap, u, seq, ts, cts, bids, asks)
                    elif topic.startswith("publicTrade."):
                        trade_fields(msg, topic)
                except (KeyError, TypeError, ValueError):
                    errors += 1
        return errors

    def best(self, books, ds, symbol):
        b = books.get(symbol)
        if b is None or not b.ready:
            return None
        return b.best_bid, b.best_ask, len(b.bids), len(b.asks)


class BybitmonMonitor(Impl):
    name = "bybitmon Monitor.feed"

    def make(self, ds):
        return Monitor(ds.category)

    def run(self, states, ds):
        frames = ds.frames
        for m in states:
            feed = m.feed
            for ns, raw in frames:
                feed(ns, raw)
        return 0

    def best(self, m, ds, symbol):
        b = m.snapshot(symbol)["book"]
        if b["best_bid"] is None:
            return None
        book = m.states[symbol].book
        return b["best_bid"], b["best_ask"], len(book.bids), len(book.asks)


class Cryptofeed(Impl):
    name = "cryptofeed Bybit.message_handler"

    def __init__(self, symbols: list[str]) -> None:
        import logging

        from cryptofeed.defines import BYBIT, L2_BOOK, TRADES
        from cryptofeed.exchanges import Bybit
        from cryptofeed.symbols import Symbols
        from importlib.metadata import version

        self.version = version("cryptofeed")
        self.Bybit, self.L2_BOOK, self.TRADES = Bybit, L2_BOOK, TRADES
        # cryptofeed downloads its symbol table from /v5/market/instruments-info when a feed is
        # built. Offline, give that same parser instrument records for our symbols instead.
        linear = {"result": {"list": [
            {"symbol": s, "contractType": "LinearPerpetual", "baseCoin": s[:-4], "quoteCoin": "USDT",
             "priceFilter": {"tickSize": "0.01"}} for s in symbols]}}
        spot = {"result": {"list": [
            {"symbol": s, "baseCoin": s[:-4], "quoteCoin": "USDT", "priceFilter": {"tickSize": "0.01"}}
            for s in symbols]}}
        mapping, info = Bybit._parse_symbol_data([linear, spot])
        Symbols.set(BYBIT, mapping, info)
        logging.getLogger("feedhandler").setLevel(logging.ERROR)
        self.note = (f"cryptofeed {self.version}: symbol table injected via Bybit._parse_symbol_data "
                     f"(no REST); fake conn (address, uuid, subscription); async callbacks that count")

    @staticmethod
    def std(symbol: str, category: str) -> str:
        base = symbol[:-4]
        return f"{base}-USDT-PERP" if category == "linear" else f"{base}-USDT"

    def make(self, ds):
        counts = self.counts = {"book": 0, "trade": 0}

        async def on_book(obj, receipt_ts):
            counts["book"] += 1

        async def on_trade(obj, receipt_ts):
            counts["trade"] += 1

        syms = sorted({t.rsplit(".", 1)[-1] for t in ds.topics if t.startswith(("orderbook.", "publicTrade."))})
        feed = self.Bybit(symbols=[self.std(s, ds.category) for s in syms], channels=[self.L2_BOOK, self.TRADES],
                          callbacks={self.L2_BOOK: on_book, self.TRADES: on_trade})

        class Conn:  # the attributes message_handler and its helpers read
            address = WS_BASE + ds.category
            uuid = "bench"
            subscription = feed.subscription

        return feed, Conn()

    def run(self, states, ds):
        frames = ds.frames
        errors = 0

        async def go():
            nonlocal errors
            for feed, conn in states:
                handler = feed.message_handler
                for ns, raw in frames:
                    try:
                        await handler(raw, conn, ns / 1e9)
                    except Exception:
                        errors += 1

        asyncio.run(go())
        return errors

    def best(self, state, ds, symbol):
        feed, _ = state
        book = feed._l2_book.get(self.std(symbol, ds.category))
        if book is None or not len(book.book.bids) or not len(book.book.asks):
            return None
        return (float(book.book.bids.index(0)[0]), float(book.book.asks.index(0)[0]),
                len(book.book.bids), len(book.book.asks))


class Pybit(Impl):
    name = "pybit WebSocket._on_message"

    def __init__(self) -> None:
        from importlib.metadata import version as dist_version

        from pybit import unified_trading
        from pybit._websocket_stream import _V5WebSocketManager

        self.WebSocket = unified_trading.WebSocket
        self.Manager = _V5WebSocketManager
        self.wss_name = unified_trading.WSS_NAME
        self.public = unified_trading.PUBLIC_WSS
        version = dist_version("pybit")
        self.note = (f"pybit {version}: WebSocket built with __new__ + _V5WebSocketManager.__init__ "
                     f"(WebSocket.__init__ would connect); callbacks per topic that count")

    def make(self, ds):
        ws = self.WebSocket.__new__(self.WebSocket)
        self.Manager.__init__(ws, self.wss_name, testnet=False)
        ws.WS_URL = self.public.replace("{CHANNEL_TYPE}", ds.category)
        # What subscribe() would have recorded (it sends on the socket, so it is not called).
        # Acks without a req_id are matched against the first recorded subscription.
        ws.subscriptions = {"bench": json.dumps({"op": "subscribe", "req_id": "bench", "args": ds.topics})}
        counts = self.counts = {"book": 0, "trade": 0, "other": 0}

        def on_book(message):
            counts["book"] += 1

        def on_trade(message):
            counts["trade"] += len(message["data"])

        def on_other(message):
            counts["other"] += 1

        for t in ds.topics:
            ws._set_callback(t, on_book if t.startswith("orderbook.") else
                             on_trade if t.startswith("publicTrade.") else on_other)
        return ws

    def run(self, states, ds):
        frames = ds.frames
        errors = 0
        for ws in states:
            on_message = ws._on_message
            for _ns, raw in frames:
                try:
                    on_message(raw)
                except Exception:
                    errors += 1
        return errors

    def best(self, ws, ds, symbol):
        book = ws.data.get(ds.book_topic(symbol))
        if not book or not book.get("b") or not book.get("a"):
            return None
        return (max(float(p) for p, _ in book["b"]), min(float(p) for p, _ in book["a"]),
                len(book["b"]), len(book["a"]))


# --------------------------------------------------------------------------- running


def measure(impls: list[Impl], ds: Dataset, repeats: int, chunks: int = 1,
            symbol: str = "BTCUSDT") -> list[dict]:
    """Best-of-``repeats`` timing of each implementation over ``ds``.

    Within a repeat the frames are cut into ``chunks`` consecutive parts and every part is fed to
    each implementation in turn (its state carries over from part to part), so a burst of noise
    from the other core lands on all implementations alike; a repeat's time is the sum over parts.
    """
    size = -(-len(ds.frames) // chunks)
    parts = [Dataset(ds.name, ds.category, ds.frames[i:i + size], ds.loops, ds.topics)
             for i in range(0, len(ds.frames), size)]
    best_s = {i.name: float("inf") for i in impls}
    errors = {i.name: 0 for i in impls}
    books: dict[str, tuple | None] = {}
    failed: dict[str, str] = {}
    delivered: dict[str, dict] = {}
    for rep in range(repeats):
        states: dict[str, list] = {}
        total = {i.name: 0.0 for i in impls}
        errs = {i.name: 0 for i in impls}
        for part in parts:
            for impl in impls:
                if impl.name in failed:
                    continue
                try:
                    if impl.name not in states:
                        states[impl.name] = [impl.make(ds) for _ in range(ds.loops)]
                    dt, err = bu.timed(lambda: impl.run(states[impl.name], part))
                except Exception as exc:  # a peer that cannot be driven: say why, no number
                    failed[impl.name] = f"{type(exc).__name__}: {exc}"
                    states.pop(impl.name, None)
                    continue
                total[impl.name] += dt
                errs[impl.name] += err
        for impl in impls:
            if impl.name in failed:
                continue
            errors[impl.name] = errs[impl.name]
            best_s[impl.name] = min(best_s[impl.name], total[impl.name])
            if rep == 0:
                books[impl.name] = impl.best(states[impl.name][-1], ds, symbol)
                counts = getattr(impl, "counts", None)
                if counts is not None:
                    delivered[impl.name] = dict(counts)
        del states
        gc.collect()
        print(f"  [{ds.name}] repeat {rep + 1}/{repeats} done", file=sys.stderr, flush=True)
    n = len(ds.frames) * ds.loops
    rows = []
    for impl in impls:
        if impl.name in failed:
            rows.append({"name": impl.name, "fps": None, "why": failed[impl.name]})
        else:
            rows.append({"name": impl.name, "fps": n / best_s[impl.name], "best": books.get(impl.name),
                         "errors": errors[impl.name], "delivered": delivered.get(impl.name)})
    return rows


def report(title: str, rows: list[dict]) -> None:
    fps = {r["name"]: r["fps"] for r in rows}
    floor = fps.get(OrjsonFloor.name)
    cf = fps.get(Cryptofeed.name)
    ref = next((r.get("best") for r in rows if r["name"] == BybitmonMonitor.name), None)
    print(f"\n### {title}\n")
    out = []
    for r in rows:
        if r["fps"] is None:
            out.append([r["name"], "n/a", "-", "-", "NOT RUN: " + r["why"], "-"])
            continue
        b = r.get("best")
        if r["name"] == OrjsonFloor.name:
            book = "(no book)"
        elif b is None:
            book = "NO BOOK"
        else:
            book = f"{b[0]:g} / {b[1]:g} ({b[2]}+{b[3]} levels)" + ("" if ref is None or r["name"] == BybitmonMonitor.name
                                             else ("  = bybitmon" if b == ref else "  DIFFERS"))
        out.append([r["name"], f"{r['fps']:,.0f}", f"{r['fps'] / floor:.3f}" if floor else "-",
                    f"{r['fps'] / cf:.2f}" if cf else "-", book, str(r.get("errors", 0))])
    bu.print_table(["implementation", "frames/s", "x orjson floor", "x cryptofeed",
                    "BTCUSDT best bid / ask (bid+ask levels) after run", "frames raised"], out, align="lrrrlr")
    for r in rows:
        if r.get("delivered"):
            print(f"\n{r['name']}: callbacks per pass over the file: {r['delivered']}", end="")
    print()


def profile_bybitmon(ds: Dataset, top: int) -> None:
    """cProfile of Monitor.feed over ``ds`` (``ds.loops`` passes, a fresh Monitor each)."""
    import cProfile
    import pstats

    monitors = [Monitor(ds.category) for _ in range(ds.loops)]
    frames = ds.frames
    prof = cProfile.Profile()
    prof.enable()
    for m in monitors:
        feed = m.feed
        for ns, raw in frames:
            feed(ns, raw)
    prof.disable()
    print(f"\n### cProfile of Monitor.feed over {ds.name} ({len(frames):,} frames x {ds.loops}), "
          f"top {top} by tottime\n")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="simulated recording length (default 1,000,000)")
    ap.add_argument("--symbols", type=int, default=20, help="simulated symbols (default 20)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed whole passes over the simulated recording, best of (default 1: one pass of the "
                         "1M frames already takes ~2 min for all implementations here)")
    ap.add_argument("--chunks", type=int, default=10,
                    help="parts of the simulated recording fed to the implementations in turn (default 10)")
    ap.add_argument("--fixture-repeats", type=int, default=3, help="timed samples on each real fixture (best of)")
    ap.add_argument("--fixture-loops", type=int, default=10, help="file passes per fixture sample, fresh instance each")
    ap.add_argument("--no-peers", action="store_true", help="skip cryptofeed and pybit")
    ap.add_argument("--no-fixtures", action="store_true")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--profile", type=int, metavar="TOP", default=0,
                    help="after timing, cProfile Monitor.feed over the simulated recording, print TOP rows")
    ap.add_argument("--profile-only", action="store_true",
                    help="skip the timings: only the cProfile of Monitor.feed (top --profile rows, default 15)")
    args = ap.parse_args()
    if args.profile_only:
        args.profile = args.profile or 15
        path = bu.sim_recording(args.frames, bu.sim_symbols(args.symbols), args.seed)
        frames = bu.read_recording(path)
        profile_bybitmon(Dataset(f"simulated {len(frames):,} frames, {args.symbols} symbols", "linear", frames, 1),
                         args.profile)
        ds = load_fixture("cryptofeed_linear_BTCUSDT_ETHUSDT", "linear", 20)
        profile_bybitmon(Dataset("real fixture cryptofeed_linear_BTCUSDT_ETHUSDT (orderbook.200)", "linear",
                                 ds.frames, ds.loops), args.profile)
        return

    print(f"# bybitmon throughput\n\n{bu.machine_line()}")
    symbols = bu.sim_symbols(args.symbols)
    impls: list[Impl] = [OrjsonFloor(), DictBook(), BybitmonBookOnly(), BybitmonMonitor()]
    notes = [f"{i.name}: {i.note}" for i in impls if i.note]
    if not args.no_peers:
        for label, factory in (("cryptofeed", lambda: Cryptofeed(symbols + ["BTCUSDT", "ETHUSDT"])),
                               ("pybit", Pybit)):
            try:
                impl = factory()
            except ImportError as exc:
                notes.append(f"{label}: SKIPPED, not importable in {sys.executable} ({exc})")
                continue
            except Exception as exc:
                notes.append(f"{label}: SKIPPED, could not be set up offline: {type(exc).__name__}: {exc}")
                continue
            impls.append(impl)
            notes.append(f"{impl.name}: {impl.note}")
    print("\nNotes:\n" + "\n".join(f"- {n}" for n in notes))

    sim_ds = None
    if not args.no_sim:
        path = bu.sim_recording(args.frames, symbols, args.seed)
        frames = bu.read_recording(path)
        sim_ds = Dataset(f"simulated {len(frames):,} frames, {len(symbols)} symbols, orderbook.50 + publicTrade",
                         "linear", frames, 1, _topics(frames[: 20 * len(symbols) + 5000]))
        # Every symbol's topics appear early; make sure none is missing for pybit's callbacks.
        sim_ds.topics = sorted({*sim_ds.topics, *(f"orderbook.50.{s}" for s in symbols),
                                *(f"publicTrade.{s}" for s in symbols)})

    # The loaded frames live for the whole run: keep the collector from walking them again and again.
    gc.collect()
    gc.freeze()

    if not args.no_fixtures:
        for stem, cat in (("cryptofeed_linear_BTCUSDT_ETHUSDT", "linear"), ("cryptofeed_spot_BTCUSDT", "spot")):
            ds = load_fixture(stem, cat, args.fixture_loops)
            title = (f"real fixture {stem}.ndjson ({len(ds.frames):,} frames x {ds.loops} passes per sample, "
                     f"best of {args.fixture_repeats})")
            report(title, measure(impls, ds, args.fixture_repeats))

    if sim_ds is not None:
        t0 = time.perf_counter()
        rows = measure(impls, sim_ds, args.repeats, args.chunks)
        report(f"{sim_ds.name} (fed in {args.chunks} parts, implementations interleaved part by part; "
               f"best of {args.repeats})", rows)
        print(f"\n(simulated section took {time.perf_counter() - t0:.0f} s)")
        if args.profile:
            profile_bybitmon(sim_ds, args.profile)


if __name__ == "__main__":
    main()
