"""Densities: unusually large resting levels, and whether they were eaten or pulled. Sans-I/O.

Definition (all times exchange ms, from the frames):
- Every ``scan_ms`` of book time (and on every snapshot) each side is scanned: a level is a
  density when ``size >= x * median`` and ``price * size >= min_notional``, where ``median`` is
  the reference median of that side's level sizes: it is set on every snapshot and follows the
  book's median whenever that drifts by more than 10 % (``MEDIAN_STEP``), so jitter of the
  median does not make densities flicker. New ones are tracked from that frame (``since``).
- Between scans, every book change at a tracked price is checked at once against the
  threshold of the last scan. While it still qualifies its size is updated and the trade
  tally restarts ("since its last size"). When it drops below the threshold or vanishes it
  is *ending*: trades at its price against it (sell takers hit bids, buy takers lift asks)
  that arrive during ``grace_ms`` still count, because the trade frame and the book frame
  that shows its effect travel separately. Then the fate is ``eaten`` when the volume traded
  against it since its last size covers at least half of the decrease, else ``pulled``.
- A density whose level is deleted while its side still holds the topic's full depth
  (``book.topic_depth`` levels) and all of them are nearer the mid was pushed out of the depth
  window (Bybit deletes the farthest level when a new one enters): ``out_of_depth``, fate unknown.
- A density that no longer qualifies at a scan because the threshold moved (the median grew)
  is judged over its whole life: ``eaten`` if the volume traded against it covers at least
  half of its fall from its peak size, ``pulled`` if it fell otherwise, ``faded`` if it never fell.
- Ended densities stay listed for ``keep_ended_ms``.
"""

from __future__ import annotations

from heapq import merge
from typing import Sequence

from orjson import Fragment, dumps

from .book import Applied, OrderBook
from .events import Level, Trade
from .snapshot import ENDED_STATES, DensityState, DensityView, Side, field_names

__all__ = ["Density", "DensityTracker", "density_json", "MEDIAN_STEP", "MEDIAN_EVERY_MS", "ENDED_STATES", "MAX_ENDED", "Side", "DensityState"]

# Reading a member through its class costs ~80 ns in Python 3.11; the hot paths use these.
_SNAPSHOT, _DELTA, _GAP, _CROSSED = Applied.SNAPSHOT, Applied.DELTA, Applied.GAP, Applied.CROSSED
_BID, _ASK = Side.BID, Side.ASK
_ACTIVE, _ENDING, _EATEN, _PULLED, _FADED, _OUT_OF_DEPTH = (
    DensityState.ACTIVE, DensityState.ENDING, DensityState.EATEN, DensityState.PULLED, DensityState.FADED,
    DensityState.OUT_OF_DEPTH)
_INF = float("inf")

MEDIAN_STEP = 0.1  # the reference median follows the book's median when it drifts by > 10 %
MEDIAN_EVERY_MS = 1000  # how often (book time) the book's median is taken
MAX_ENDED = 4096  # ended densities kept per symbol (besides the keep_ended_ms age limit)


class Density:
    """One tracked level (a plain slotted class, so that the compiled build can make it a C
    struct; see densities.pxd)."""

    __slots__ = ("side", "price", "size", "notional", "x_median", "since_ms", "last_size", "traded",
                 "peak_size", "traded_total", "decrease", "state", "ended_ms", "json", "active_json")

    def __init__(self, side: Side, price: float, size: float, notional: float, x_median: float, since_ms: int,
                 last_size: float, traded: float = 0.0, peak_size: float = 0.0, traded_total: float = 0.0,
                 decrease: float = 0.0, state: DensityState = _ACTIVE, ended_ms: int | None = None) -> None:
        self.side = side
        self.price = price                # exact price of the level
        self.size = size                  # base units, latest seen
        self.notional = notional          # price * size, quote units
        self.x_median = x_median          # size / median size of its side at the latest scan
        self.since_ms = since_ms          # exchange ms of the frame where it was first seen
        self.last_size = last_size        # size at its latest update (the start of the current decrease)
        self.traded = traded              # volume traded against it at its price since last_size
        self.peak_size = peak_size        # largest size seen while tracked
        self.traded_total = traded_total  # volume traded against it while tracked
        self.decrease = decrease          # last_size - size when it ended
        self.state = state
        self.ended_ms = ended_ms
        # Its snapshot JSON object, made once it is in the ended list (where it no longer
        # changes): see DensityTracker.json_rows.
        self.json: Fragment | None = None
        # While active: (multiple of the median, size, its snapshot JSON object) as last listed.
        self.active_json: tuple[float, float, dict] | None = None

    def __repr__(self) -> str:
        return (f"Density({self.side.value} {self.price!r} x {self.size!r}, {self.state.value}, "
                f"since {self.since_ms}, ended {self.ended_ms})")

    def view(self, x_median: float | None = None, state: DensityState | None = None) -> DensityView:
        """A frozen copy for a snapshot (``x_median``/``state`` as of the snapshot when given)."""
        return DensityView(self.side, self.price, self.size, self.notional,
                           self.x_median if x_median is None else x_median, self.since_ms,
                           self.state if state is None else state, self.ended_ms)

    def fate(self) -> DensityState:
        """What an ending density becomes when its grace is over: eaten when the volume traded
        against it since its last size covers at least half of its decrease, else pulled."""
        return _EATEN if self.traded >= self.decrease / 2.0 else _PULLED


def _beyond_depth(book: OrderBook, d: Density) -> bool:
    """Whether a deleted level at ``d.price`` left the topic's depth window rather than the
    market: the side still holds the topic's full depth and every level is nearer the mid."""
    n = book.topic_depth
    if not n:
        return False
    if d.side is _BID:
        return len(book.bid) >= n and d.price < book.bid.lowest()  # type: ignore[operator]
    return len(book.ask) >= n and d.price > book.ask.highest()  # type: ignore[operator]


# A density row's keys, in DensityView's field order (which tests/test_snapshot_v1.py holds).
_ROW_TEMPLATE = dict.fromkeys(field_names(DensityView))


def density_json(side, price, size, notional, x_median, since, state, ended) -> dict:
    """A density row as the dict ``DensityView.to_json`` writes: a copy of the keys, then the
    values set. (Compiled, a literal of eight items starts as an empty dict and grows once on
    the way; the copy is born at its size, and costs a third of that.)"""
    row = _ROW_TEMPLATE.copy()
    row["side"] = side
    row["price"] = price
    row["size"] = size
    row["notional"] = notional
    row["x_median"] = x_median
    row["since"] = since
    row["state"] = state
    row["ended"] = ended
    return row


def _row(d: Density, x_median: float, state: DensityState) -> tuple:
    """``d``'s row in :class:`DensityView` field order, with the multiple and state it is listed
    with (an active one's multiple is of the current median; a due one's state is its fate)."""
    return d.side, d.price, d.size, d.notional, x_median, d.since_ms, state, d.ended_ms


def _row_json(d: Density, x_median: float, state: DensityState) -> dict:
    """``density_json(*_row(d, x_median, state))``, without the tuple."""
    return density_json(d.side, d.price, d.size, d.notional, x_median, d.since_ms, state, d.ended_ms)


def _ended_from(ended: list[Density], t: int) -> int:
    """``bisect_left(ended, t, key=lambda d: d.ended_ms)``: the index of the first density of
    ``ended`` (in end-time order) that ended at or after ``t``, without a key call per step."""
    lo, hi = 0, len(ended)
    while lo < hi:
        mid = (lo + hi) // 2
        d = ended[mid]
        if d.ended_ms < t:  # type: ignore[operator]
            lo = mid + 1
        else:
            hi = mid
    return lo


def _ended_order(d: Density) -> tuple[int, str, float]:
    return d.ended_ms, d.side, d.price  # type: ignore[return-value]


def _ends_before(a: Density, b: Density) -> bool:
    """``_ended_order(a) < _ended_order(b)``, reading the side and price only on a tie."""
    if a.ended_ms != b.ended_ms:
        return a.ended_ms < b.ended_ms  # type: ignore[operator]
    return (a.side, a.price) < (b.side, b.price)


def _recent_first(d: Density) -> tuple[int, str, float]:
    return -d.ended_ms, d.side, d.price  # type: ignore[operator]


def _newest_first(back: list[Density], n: int) -> list[Density]:
    """``sorted(back, key=_recent_first)[:n]`` of a list in ``_ended_order``, without sorting:
    its runs of one end time from the back, each run in its own (side, price) order."""
    out: list[Density] = []
    i = len(back)
    while i > 0 and len(out) < n:
        d = back[i - 1]
        t = d.ended_ms
        j = i - 1
        while j > 0:
            d = back[j - 1]
            if d.ended_ms != t:
                break
            j -= 1
        out.extend(back[j:i])
        i = j
    return out[:n]


def _strongest_first(xd: tuple[float, Density]) -> tuple[float, str, float]:
    return -xd[0], xd[1].side, xd[1].price


class DensityTracker:
    """Densities of one symbol's book."""

    __slots__ = ("x", "min_notional", "scan_ms", "grace_ms", "keep_ended_ms", "active",
                 "ending", "ended", "thresholds", "medians", "next_scan_ms", "n_active", "n_ending",
                 "next_decide_ms", "list_max", "next_median_ms", "_bid_active", "_ask_active")

    def __init__(self, x: float = 5.0, min_notional: float = 0.0, *, scan_ms: int = 100,
                 grace_ms: int = 500, keep_ended_ms: int = 30_000, list_max: int = 20) -> None:
        self.x = x
        self.list_max = list_max
        self.next_median_ms = -(2**62)
        self.min_notional = min_notional
        self.scan_ms = scan_ms
        self.grace_ms = grace_ms
        self.keep_ended_ms = keep_ended_ms
        self.active: dict[Side, dict[float, Density]] = {_BID: {}, _ASK: {}}
        # The same two dicts, held apart for the per-frame check (compiled: no lookup by side).
        self._bid_active = self.active[_BID]
        self._ask_active = self.active[_ASK]
        self.ending: dict[Side, dict[float, Density]] = {_BID: {}, _ASK: {}}
        # Ended densities kept for keep_ended_ms, in (ended_ms, side, price) order, so that old
        # ones are cut off the front and a snapshot reads the most recent off the back.
        self.ended: list[Density] = []
        self.thresholds = {_BID: _INF, _ASK: _INF}
        self.medians = {_BID: 0.0, _ASK: 0.0}
        self.next_scan_ms = -(2**62)
        self.n_active = 0    # len(active bid) + len(active ask), kept for the per-frame fast check
        self.n_ending = 0
        self.next_decide_ms = _INF  # earliest moment an ending density's grace is over

    # -- feeding --------------------------------------------------------------------------

    def on_book_fields(self, book: OrderBook, ts_ms: int, bids: Sequence[Level], asks: Sequence[Level],
                       applied: Applied) -> None:
        """Follow the book after ``book.apply_fields(...)`` returned ``applied`` for a frame
        with these levels."""
        if applied is _DELTA:
            if self.n_active:
                # Runs for most book frames: kept to membership tests in C for the usual case
                # where no tracked price changed.
                # _changed only ever removes from active: a price found here is checked again.
                active = self._bid_active
                if active and bids:
                    for p, s in book.bid.changes_at(bids, active):
                        if p in active:
                            self._changed(active[p], s, ts_ms, book)
                active = self._ask_active
                if active and asks:
                    for p, s in book.ask.changes_at(asks, active):
                        if p in active:
                            self._changed(active[p], s, ts_ms, book)
            if ts_ms >= self.next_scan_ms:
                self._scan(book, ts_ms)
        elif applied is _SNAPSHOT:
            for side, levels in ((_BID, book.bid), (_ASK, book.ask)):
                for d in list(self.active[side].values()):
                    self._changed(d, levels.size_at(d.price), ts_ms, book)
            self._scan(book, ts_ms, full=True)
        elif applied is _GAP or applied is _CROSSED:
            self.lose_sync()

    def lose_sync(self) -> None:
        """The book is out of sync: what was tracked can no longer be followed."""
        self.active[_BID].clear()
        self.active[_ASK].clear()
        self.n_active = 0
        self.next_scan_ms = -(2**62)

    def on_trades(self, trades: tuple[Trade, ...]) -> None:
        """Tally trades against tracked levels: a buy taker lifts asks, a sell taker hits bids."""
        for t in trades:
            side = _ASK if t.is_buy else _BID
            ending = self.ending[side]
            active = self.active[side]
            d = ending.get(t.price) or active.get(t.price)
            if d is not None:
                d.traded += t.size
                d.traded_total += t.size

    def tick(self, now_ms: int) -> None:
        """Decide the fate of ending densities whose grace is over; forget old ended ones."""
        if self.n_ending and now_ms >= self.next_decide_ms:
            grace = self.grace_ms
            nxt = _INF
            for side in (_BID, _ASK):
                ending = self.ending[side]
                if not ending:
                    continue
                for d in list(ending.values()):  # keyed by price
                    due = d.ended_ms + grace
                    if due <= now_ms:
                        del ending[d.price]
                        self._decide(d)
                        self.n_ending -= 1
                    elif due < nxt:
                        nxt = due
            self.next_decide_ms = nxt
        self._forget_ended(now_ms)

    def finish(self) -> None:
        """Decide every ending density now (end of input)."""
        for side in (_BID, _ASK):
            for d in self.ending[side].values():
                self._decide(d)
            self.ending[side].clear()
        self.n_ending = 0
        self.next_decide_ms = _INF

    # -- internals ------------------------------------------------------------------------

    def _qualifies(self, side: Side, price: float, size: float) -> bool:
        return size > 0.0 and size >= self.thresholds[side] and price * size >= self.min_notional

    def _changed(self, d: Density, size: float, ts_ms: int, book: OrderBook) -> None:
        if self._qualifies(d.side, d.price, size):
            d.size = size
            d.notional = d.price * size
            d.last_size = size
            d.traded = 0.0
            if size > d.peak_size:
                d.peak_size = size
            return
        del self.active[d.side][d.price]
        self.n_active -= 1
        # size/notional keep the last size it had as a density: what was eaten or pulled.
        d.decrease = d.last_size - size
        d.ended_ms = ts_ms
        median = self.medians[d.side]
        d.x_median = d.size / median if median else 0.0
        if size == 0.0 and _beyond_depth(book, d):
            d.state = _OUT_OF_DEPTH
            self._record_ended(d)
            return
        if d.decrease <= 0.0:
            d.state = _FADED
            self._record_ended(d)
            return
        d.state = _ENDING
        previous = self.ending[d.side].pop(d.price, None)
        if previous is not None:
            self._decide(previous)
            self.n_ending -= 1
        self.ending[d.side][d.price] = d
        self.n_ending += 1
        if ts_ms + self.grace_ms < self.next_decide_ms:
            self.next_decide_ms = ts_ms + self.grace_ms

    def _record_ended(self, d: Density) -> None:
        ended = self.ended
        if not ended or not _ends_before(d, ended[-1]):
            ended.append(d)  # where insort puts it (densities mostly end in time order), unsearched
        else:
            # insort(ended, d, key=_ended_order) (after its equals), without a key tuple per step:
            # those decided after their grace often go a little before the newest.
            lo, hi = 0, len(ended) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if _ends_before(d, ended[mid]):
                    hi = mid
                else:
                    lo = mid + 1
            ended.insert(lo, d)
        if len(ended) > MAX_ENDED:
            # Bounded by count as well as by age: a book churning densities cannot grow it.
            del ended[: len(ended) - MAX_ENDED]

    def _forget_ended(self, now_ms: int) -> None:
        """Drop ended densities older than ``keep_ended_ms``."""
        ended = self.ended
        if not ended:
            return
        cutoff = now_ms - self.keep_ended_ms
        d = ended[0]
        if d.ended_ms < cutoff:  # type: ignore[operator]
            # The list is in end-time order and those going are few (they are forgotten as time
            # passes), so a walk from the front finds the first one kept.
            n = len(ended)
            i = 1
            while i < n:
                d = ended[i]
                if not d.ended_ms < cutoff:  # type: ignore[operator]
                    break
                i += 1
            del ended[:i]

    def _decide(self, d: Density) -> None:
        d.state = d.fate()
        self._record_ended(d)

    def _scan(self, book: OrderBook, ts_ms: int, full: bool = False) -> None:
        self.next_scan_ms = ts_ms + self.scan_ms
        median_due = full or ts_ms >= self.next_median_ms
        if median_due:
            self.next_median_ms = ts_ms + MEDIAN_EVERY_MS
        self._forget_ended(ts_ms)
        if not median_due and self._settled(book):
            return
        min_notional = self.min_notional
        for side, levels in ((_BID, book.bid), (_ASK, book.ask)):
            active = self.active[side]
            if not len(levels):
                # The next scan with levels sees the threshold fall and checks every level.
                self.thresholds[side] = _INF
                continue
            median = self.medians[side]
            if median_due or not median:
                # The median (a sort, or a selection in the compiled core) is the costly part of
                # a scan, so the book's median is taken every MEDIAN_EVERY_MS of book time (and
                # on snapshots), not at every scan.
                book_median = levels.median()
                # The median jitters on a real book; the reference (and so the threshold) only
                # follows it when it drifts by more than MEDIAN_STEP, which keeps densities
                # from flickering in and out at the threshold.
                if full or not median or abs(book_median - median) > MEDIAN_STEP * median:
                    median = self.medians[side] = book_median
            old_threshold = self.thresholds[side]
            threshold = self.thresholds[side] = self.x * median
            if threshold > old_threshold and active:
                # Only a rising threshold can leave an active density behind (one that shrank
                # below it ended at once, in _changed). If it had shrunk over its life, judge
                # that whole decrease by the whole volume traded against it.
                for d in [d for d in active.values() if d.size < threshold]:
                    del active[d.price]
                    self.n_active -= 1
                    d.ended_ms = ts_ms
                    d.x_median = d.size / median
                    d.decrease = d.peak_size - d.size
                    if d.decrease > 0.0:
                        d.state = _EATEN if d.traded_total >= d.decrease / 2.0 else _PULLED
                    else:
                        d.state = _FADED
                    self._record_ended(d)
            # Unless the threshold fell, a new density can only be at a price that a delta set
            # to a size at or above the old threshold since the last scan: the side noted those
            # (at or above its touch_min, the last scan's threshold), and take() notes from now
            # on at or above this one.
            for p, s in levels.take(threshold, full or threshold < old_threshold):
                if p not in active and p * s >= min_notional:
                    active[p] = Density(side, p, s, p * s, s / median, ts_ms, s, peak_size=s)
                    self.n_active += 1

    def _settled(self, book: OrderBook) -> bool:
        """Whether a scan without a new median would change nothing: no delta set a level to a
        size at or above a threshold since the last scan, both sides have levels, and each
        side's threshold is x times its median and the book's touch minimum (most scans)."""
        bid = book.bid
        ask = book.ask
        if bid.noted() or ask.noted() or not len(bid) or not len(ask):
            return False
        medians = self.medians
        thresholds = self.thresholds
        bid_median = medians[_BID]
        ask_median = medians[_ASK]
        return (bid_median != 0.0 and ask_median != 0.0
                and thresholds[_BID] == self.x * bid_median == bid.touch_min
                and thresholds[_ASK] == self.x * ask_median == ask.touch_min)

    # -- reading (pure: nothing here changes the tracker) ---------------------------------

    def x_median(self, d: Density) -> float:
        """An active density's size over its side's reference median (0.0 without a median)."""
        median = self.medians[d.side]
        return d.size / median if median else 0.0

    def at_price(self, price: float, side: Side | str | None = None) -> DensityView | None:
        """The active density at ``price`` (either side unless ``side`` is given)."""
        for s in (Side(side),) if side else (_BID, _ASK):
            d = self.active[s].get(price)
            if d is not None:
                return d.view(self.x_median(d))
        return None

    def listing(self, now_ms: int) -> list[DensityView]:
        """What a snapshot shows at ``now_ms`` (see :meth:`rows`), as views."""
        return [DensityView(*row) for row in self.rows(now_ms)]

    def rows(self, now_ms: int) -> list[tuple]:
        """What a snapshot shows at ``now_ms``, as tuples in :class:`DensityView` field order:
        the ``list_max`` strongest active densities (largest multiple of the median first),
        every ending one, and the ``list_max`` most recent of those ended within
        ``keep_ended_ms`` (newest first).

        An ending density whose grace is over by ``now_ms`` is shown with the fate
        :meth:`tick` would give it, so the listing is the same whether or not the tracker
        was ticked to ``now_ms`` first.
        """
        active, ending, recent, fates = self._listing(now_ms)
        return ([_row(d, x, d.state) for x, d in active] + [_row(d, d.x_median, d.state) for d in ending]
                + [_row(d, d.x_median, fates.get(id(d)) or d.state) for d in recent])

    def json_rows(self, now_ms: int) -> list:
        """:meth:`rows` as the snapshot's JSON objects (:func:`density_json`'s dicts), what
        ``--json`` writes. A density in the ended list no longer changes, so its object is
        serialized once and kept with it as an ``orjson.Fragment``, written as is from then on:
        most of a snapshot's rows are ended densities, listed again at every interval. An
        active density's object is kept too, with the multiple and size it was made for, and
        made again when either changed."""
        active, ending, recent, fates = self._listing(now_ms)
        out: list = []
        for x, d in active:
            cached = d.active_json
            if cached is None or cached[0] != x or cached[1] != d.size or d.state is not _ACTIVE:
                # Kept as the dict, not serialized apart: the multiple changes with the
                # reference median, and then most are made again at the next interval.
                cached = d.active_json = (x, d.size, _row_json(d, x, d.state))
            out.append(cached[2])
        for d in ending:
            out.append(_row_json(d, d.x_median, d.state))
        for d in recent:
            fate = fates.get(id(d)) if fates else None
            if fate is not None:  # ending, its grace over: not in the ended list yet
                out.append(_row_json(d, d.x_median, fate))
            else:
                js = d.json
                if js is None:
                    js = d.json = Fragment(dumps(_row_json(d, d.x_median, d.state)))
                out.append(js)
        return out

    def _listing(self, now_ms: int) -> tuple[list[tuple[float, Density]], list[Density], list[Density],
                                             dict[int, DensityState]]:
        """The densities a snapshot at ``now_ms`` lists, in order: (multiple of the median,
        density) of the active ones, the ending ones, the ended ones, and the fates of the
        ended ones that are still ending, by id (see :meth:`rows`)."""
        n = self.list_max
        active = [(self.x_median(d), d) for side in (_BID, _ASK) for d in self.active[side].values()]
        active.sort(key=_strongest_first)
        grace = self.grace_ms
        ending: list[Density] = []
        due: list[Density] = []
        for side in (_BID, _ASK):
            for d in self.ending[side].values():
                (due if d.ended_ms + grace <= now_ms else ending).append(d)  # type: ignore[operator]
        ending.sort(key=_recent_first)
        recent, fates = self._recent_ended(due, now_ms, n)
        return active[:n], ending, recent, fates

    def _recent_ended(self, due: list[Density], now_ms: int, n: int) -> tuple[list[Density], dict[int, DensityState]]:
        """The ended densities a listing at ``now_ms`` shows (the ``n`` most recent of those ended
        within ``keep_ended_ms``, newest first), counting the ``due`` ending ones as ended (with
        their fates, by id) where :meth:`tick` would insort them behind the ended ones with equal
        keys.

        Of the ended list ordered by end time with the due ones merged in, that is the back from
        the later of ``now_ms - keep_ended_ms`` and the n-th most recent end time (a tie with it
        is shown too, ordered by side and price). Only that back is merged: the cost follows
        ``n``, not the length of the ended list.
        """
        if n <= 0:
            return [], {}
        ended = self.ended
        lo = now_ms - self.keep_ended_ms
        if due:
            due.sort(key=_ended_order)
            # The n-th most recent end time of ended + due: among the last n of each.
            times = sorted([d.ended_ms for d in ended[-n:]] + [d.ended_ms for d in due[-n:]])  # type: ignore[misc]
            if len(times) >= n:
                lo = max(lo, times[-n])
        elif len(ended) >= n:
            lo = max(lo, ended[-n].ended_ms)  # type: ignore[type-var]
        back = ended[_ended_from(ended, lo):]
        fates: dict[int, DensityState] = {}
        if due:
            tail = [d for d in due if d.ended_ms >= lo]  # type: ignore[operator]
            # merge() keeps tick()'s order: items of its first input come first among equals.
            back = list(merge(back, tail, key=_ended_order))
            fates = {id(d): d.fate() for d in tail}
        return _newest_first(back, n), fates
