"""``bench/scale.py --watch-all``: `bybitmon watch --all` as a user runs it, measured.

`bybitmon serve --simulate --symbols N` (N = the last ``--symbols``, 500 by default) in one
process at Bybit's push rates; `bybitmon watch --all --url ...` in another, in a pseudo-terminal
of ``--width`` x ``--height`` (so it draws its table and reads keys exactly as in a terminal),
started through this script (``--child``) so that a few probes are installed in it first:

- every 7th frame, after the pipeline applied it: lag = done - local receive time, and age =
  done - the Monitor's clock (the exchange ts: includes the simulated server's own delay; a
  client that falls behind shows an age that grows from the first half of a phase to the second);
- frames received (delivered by the WebSocket client to the feed) and applied (counted by the
  Monitor);
- every garbage collection: its generation and pause (``gc.callbacks``);
- each refresh: the time to build the body (``WatchScreen.body``: order every row, snapshot the
  drawn ones, or the density screen's screener pass) and to draw it (``Live.update``: Rich
  renders the whole screen and writes it to the terminal).

This process reads the terminal's output continuously (as a terminal would) and presses keys:
key-to-screen latency is the time from writing ``s`` to the terminal until the footer naming the
new sort comes out of it. Two phases of ``--seconds`` each: the symbol table (sorted by heat, the
``--all`` default), then the density screen (``d``). CPU of both processes from /proc.
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import json
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

import _benchutil as bu

__all__ = ["watch_all", "child"]

SAMPLE_EVERY = 7


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# -- the watch process --------------------------------------------------------------------------


def child(stats_path: str, argv: list[str]) -> None:
    """Run the bybitmon CLI with ``argv`` and the probes; write what they saw to ``stats_path``
    at exit."""
    from rich.live import Live

    from bybitmon import cli
    from bybitmon.app import watch_all
    from bybitmon.app.screen import WatchScreen

    frames: list[tuple[float, int, int, float, float]] = []   # (t, received, applied, lag ms, age ms)
    refreshes: list[tuple[float, str, float, float]] = []     # (t, mode, build ms, draw ms)
    markets: dict[int, object] = {}
    gcs: list[tuple[float, int, float]] = []                  # (t, generation, pause ms)
    gc_start = [0.0]

    def gc_probe(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gcs.append((time.monotonic(), info["generation"], (time.perf_counter() - gc_start[0]) * 1e3))

    gc.callbacks.append(gc_probe)
    n = 0
    last_body = ["table", 0.0]
    on_frame = watch_all._Market._on_frame

    def probed_on_frame(self, recv_ns: int, conn: str, raw: str) -> None:
        nonlocal n
        n += 1
        if n % SAMPLE_EVERY == 0:
            done = time.time_ns()
            markets.setdefault(id(self), self)
            now_ms = self.monitor.now_ms
            applied = sum(m.monitor.frames for m in markets.values())  # type: ignore[attr-defined]
            frames.append((time.monotonic(), n, applied, (done - recv_ns) / 1e6,
                           done / 1e6 - now_ms if now_ms is not None else float("nan")))
        on_frame(self, recv_ns, conn, raw)

    body = WatchScreen.body

    def probed_body(self, **kw):
        t0 = time.perf_counter()
        out = body(self, **kw)
        last_body[:] = [self.state.mode if not self.state.help else "help", (time.perf_counter() - t0) * 1e3]
        return out

    update = Live.update

    def probed_update(self, renderable, *, refresh: bool = False) -> None:
        t0 = time.perf_counter()
        update(self, renderable, refresh=refresh)
        refreshes.append((time.monotonic(), last_body[0], last_body[1], (time.perf_counter() - t0) * 1e3))

    def dump() -> None:
        ready = sum(1 for m in markets.values() for s in m.symbols  # type: ignore[attr-defined]
                    if (st := m.monitor.states.get(s)) is not None and st.book.ready)  # type: ignore[attr-defined]
        reconnects = sum(h.reconnects for m in markets.values() for h in m.feed.health)  # type: ignore[attr-defined]
        followed = sum(len(m.symbols) for m in markets.values())  # type: ignore[attr-defined]
        with open(stats_path, "w") as f:
            json.dump({"frames": frames, "refreshes": refreshes, "gcs": gcs, "ready": ready, "followed": followed,
                       "reconnects": reconnects}, f)

    watch_all._Market._on_frame = probed_on_frame  # type: ignore[method-assign]
    WatchScreen.body = probed_body  # type: ignore[method-assign]
    Live.update = probed_update  # type: ignore[method-assign]
    atexit.register(dump)
    cli.main(argv)


# -- this process: the terminal and the keys ----------------------------------------------------


class Terminal(threading.Thread):
    """Reads the pseudo-terminal's output as it comes; notes when an awaited text first shows."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.want: bytes | None = None
        self.want_from = 0
        self.seen = threading.Event()
        self.seen_at = 0.0

    def run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            now = time.perf_counter()
            with self.lock:
                start = max(self.want_from, len(self.buf) - 64)
                self.buf += data
                if self.want is not None and self.buf.find(self.want, start) >= 0:
                    self.want = None
                    self.seen_at = now
                    self.seen.set()
                if len(self.buf) > 1 << 22:  # keep the tail only
                    del self.buf[:len(self.buf) - (1 << 20)]
                    self.want_from = 0

    def expect(self, text: str) -> None:
        with self.lock:
            self.want = text.encode()
            self.want_from = len(self.buf)
            self.seen.clear()

    def tail(self, n: int = 20000) -> str:
        with self.lock:
            return self.buf[-n:].decode(errors="replace")


def _press(term: Terminal, fd: int, key: bytes, want: str, timeout: float = 10.0) -> float | None:
    """Write ``key``; ms until ``want`` came out of the terminal (None: not within ``timeout``)."""
    term.expect(want)
    t0 = time.perf_counter()
    os.write(fd, key)
    if not term.seen.wait(timeout):
        return None
    return (term.seen_at - t0) * 1e3


def _nominal_rate(symbols: list[str], seconds: int = 3) -> float:
    """Frames/s the simulator publishes for ``symbols`` (orderbook.50 + trades), computed offline
    with its defaults (what `serve --simulate` runs, per category)."""
    from bybitmon.sim.market import MarketSimulator

    sim = MarketSimulator(symbols, seed=1)
    return sum(1 for _ in sim.frames(seconds * 1000)) / seconds


def watch_all(args) -> None:
    n = args.symbols[-1] if args.symbols else 500
    symbols = bu.sim_symbols(n)
    load = os.getloadavg()
    t0 = time.perf_counter()
    sum(range(10**7))
    calib = (time.perf_counter() - t0) * 1e3
    print(f"# bybitmon watch --all: {n} linear symbols, drawn in a {args.width}x{args.height} terminal\n")
    print(bu.machine_line())
    print(f"machine load at start: loadavg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; calibration "
          f"sum(range(10**7)) {calib:.0f} ms (110-120 ms on this box when idle)\n", flush=True)
    nominal = _nominal_rate(symbols)
    # --serve-from FILE: the server replays a pre-generated capture instead of simulating, which
    # costs it far less CPU, so on a 2-core box the watch process gets a core of its own.
    source = ["--from", args.serve_from] if args.serve_from else ["--simulate", "--symbols", ",".join(symbols)]
    srv = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", *source, "--port", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = re.search(r"(ws://127\.0\.0\.1:\d+)", srv.stdout.readline()).group(1)  # type: ignore[union-attr]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", args.height, args.width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "BYBITMON_URL")}
    env["TERM"] = "xterm-256color"
    with tempfile.NamedTemporaryFile(prefix="bybitmon-watchall-", suffix=".json", delete=False) as f:
        stats_path = f.name
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale.py")
    watch = subprocess.Popen([sys.executable, here, "--child", stats_path, "--", "watch", "--all", "--url", url],
                             stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    term = Terminal(master)
    term.start()
    phases: dict[str, dict] = {}
    try:
        end = time.monotonic() + 180
        while f"{n} symbols" not in term.tail() or "sort: heat" not in term.tail():
            if time.monotonic() > end or watch.poll() is not None:
                sys.exit("watch --all never showed its table:\n" + term.tail(3000))
            time.sleep(0.2)
        time.sleep(args.settle)  # every book's snapshot in, the feed at its rate

        def phase(name: str, keys: list[tuple[bytes, str]]) -> None:
            c0, s0, t0 = _cpu_s(watch.pid), _cpu_s(srv.pid), time.monotonic()
            lat = []
            spacing = args.seconds / (len(keys) + 1)
            for key, want in keys:
                time.sleep(spacing)
                ms = _press(term, master, key, want)
                lat.append(float("inf") if ms is None else ms)
            time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
            t1 = time.monotonic()
            phases[name] = {"t0": t0, "t1": t1, "keys": lat, "cpu": (_cpu_s(watch.pid) - c0) / (t1 - t0) * 100,
                            "server_cpu": (_cpu_s(srv.pid) - s0) / (t1 - t0) * 100}

        from bybitmon.app.board import SORT_KEYS
        from bybitmon.core.screener import SCREEN_SORTS

        presses = max(4, int(args.seconds / 1.5))
        table_sorts = [SORT_KEYS[(SORT_KEYS.index("heat") + i + 1) % len(SORT_KEYS)] for i in range(presses)]
        phase("table", [(b"s", f"sort: {k}  ") for k in table_sorts])
        dens = list(SCREEN_SORTS)
        if _press(term, master, b"d", "dist%") is None:
            sys.exit("no density screen after d:\n" + term.tail(3000))
        time.sleep(1.0)
        phase("densities", [(b"s", f"sort: {dens[(i + 1) % len(dens)]}  ") for i in range(presses)])
        os.write(master, b"q")
        try:
            watch.wait(60)
        except subprocess.TimeoutExpired:
            sys.exit("watch --all did not exit on q within 60 s:\n" + term.tail(3000))
    finally:
        if watch.poll() is None:
            watch.kill()
        srv.terminate()
        srv.wait(10)
        os.close(master)
    with open(stats_path) as f:
        stats = json.load(f)
    os.unlink(stats_path)
    _report(stats, phases, nominal, n, args)


def _report(stats: dict, phases: dict, nominal: float, n: int, args) -> None:
    rows = []
    cols = {}
    for name, ph in phases.items():
        fr = [f for f in stats["frames"] if ph["t0"] <= f[0] <= ph["t1"]]
        mid = (ph["t0"] + ph["t1"]) / 2
        span = fr[-1][0] - fr[0][0] if len(fr) > 1 else float("nan")
        ref = [r for r in stats["refreshes"] if ph["t0"] <= r[0] <= ph["t1"] and r[1] == ("table" if name == "table" else "densities")]
        keys = sorted(ph["keys"])
        cols[name] = {
            "received": (fr[-1][1] - fr[0][1]) / span if len(fr) > 1 else float("nan"),
            "applied": (fr[-1][2] - fr[0][2]) / span if len(fr) > 1 else float("nan"),
            "lag99": _pct([f[3] for f in fr], 0.99), "lag50": _pct([f[3] for f in fr], 0.5),
            "age1": _pct([f[4] for f in fr if f[0] < mid], 0.5), "age2": _pct([f[4] for f in fr if f[0] >= mid], 0.5),
            "age99": _pct([f[4] for f in fr], 0.99),
            "cpu": ph["cpu"], "server_cpu": ph["server_cpu"],
            "build50": _pct([r[2] for r in ref], 0.5), "build99": _pct([r[2] for r in ref], 0.99),
            "draw50": _pct([r[3] for r in ref], 0.5), "draw99": _pct([r[3] for r in ref], 0.99),
            "refresh_per_s": len(ref) / (ph["t1"] - ph["t0"]),
            "key50": statistics.median(keys) if keys else float("nan"), "key95": _pct(keys, 0.95),
            "keymax": keys[-1] if keys else float("nan"), "presses": len(keys),
        }
        pauses = [g for g in stats["gcs"] if ph["t0"] <= g[0] <= ph["t1"]]
        cols[name].update({
            "gc_n": len(pauses) / (ph["t1"] - ph["t0"]),
            "gc2_n": sum(1 for g in pauses if g[1] == 2),
            "gc_max": max((g[2] for g in pauses), default=0.0),
            "gc2_max": max((g[2] for g in pauses if g[1] == 2), default=0.0),
        })

    def row(label: str, fmt: str, *keys: str) -> None:
        rows.append([label] + [fmt.format(*(cols[p][k] for k in keys)) for p in ("table", "densities")])

    row("frames/s received (client) / applied (Monitor)", "{:,.0f} / {:,.0f}", "received", "applied")
    row("lag p50 / p99 ms (applied - received)", "{:.2f} / {:.2f}", "lag50", "lag99")
    row("age p50 1st half / 2nd half, p99 ms", "{:.0f} / {:.0f}, {:.0f}", "age1", "age2", "age99")
    row("CPU % of one core: watch / serve", "{:.0f} / {:.0f}", "cpu", "server_cpu")
    row("refreshes/s (timer + keys)", "{:.1f}", "refresh_per_s")
    row("refresh: build body p50 / p99 ms", "{:.1f} / {:.1f}", "build50", "build99")
    row("refresh: draw (Live.update) p50 / p99 ms", "{:.1f} / {:.1f}", "draw50", "draw99")
    row("GC runs/s; full (gen 2) runs, longest pause ms", "{:.1f}; {:d}, {:.0f}", "gc_n", "gc2_n", "gc2_max")
    row("GC longest pause of any generation, ms", "{:.1f}", "gc_max")
    row("key s -> new sort on screen p50 / p95 / max ms", "{:.0f} / {:.0f} / {:.0f}", "key50", "key95", "keymax")
    print(f"books ready at the end: {stats['ready']} of {stats['followed']} followed; reconnects during the "
          f"run: {stats['reconnects']}; the simulator publishes {nominal:,.0f} frames/s for {n} symbols "
          f"(computed offline); {args.seconds:g} s per screen, {cols['table']['presses']} key presses each\n")
    bu.print_table(["", "symbol table", "density screen"], rows, align="lrr")
    load = os.getloadavg()
    print(f"\nloadavg at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
