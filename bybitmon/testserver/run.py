"""``bybitmon serve`` as a coroutine: build the source, listen, say what is served, report faults."""

from __future__ import annotations

from typing import Callable, Sequence

from ..core.limits import BOOK_PUSH_MS, SERVED_CATEGORIES
from ..errors import printable
from ..errors import UsageError
from .app import BybitServer
from .faults import FaultPlan
from .sources import FileSource, SimulatedSource, Source

__all__ = ["run_serve", "banner", "fault_summary"]


def banner(server: BybitServer, plan: FaultPlan | None) -> list[str]:
    """What ``serve`` prints when listening: the URL first (scripts read it from the first line),
    then categories, symbols, depths, faults, and a ``watch`` command that works against it."""
    info = server.source.describe()
    # Symbols may come from a file: never print them raw (terminal escapes).
    cats, syms, depths = info["categories"], [printable(s, 40) for s in info["symbols"]], info["depths"]
    shown = ", ".join(syms[:8]) + (f" (+{len(syms) - 8} more)" if len(syms) > 8 else "")
    cat = cats[0] if len(cats) == 1 else "linear"
    push = BOOK_PUSH_MS.get(cat, {})
    depth_text = ", ".join(f"{d} ({push[d]} ms)" if d in push and isinstance(server.source, SimulatedSource)
                           else str(d) for d in depths) or "none"
    hint_depth = 50 if 50 in depths else (depths[-1] if depths else 50)
    hint = f"try: bybitmon watch {' '.join(syms[:2]) or 'BTCUSDT'}"
    if cat != "linear":
        hint += f" --category {cat}"
    if hint_depth != 50:
        hint += f" --depth {hint_depth}"
    return [
        f"serving Bybit v5 public streams on {server.url}/v5/public/{{{','.join(cats)}}}",
        f"  categories: {', '.join(cats)}",
        f"  symbols: {shown} ({len(syms)})",
        f"  depths: {depth_text}; every depth of every symbol at once" if len(depths) > 1 else
        f"  depths: {depth_text} (others are refused)",
        f"  faults: {plan.describe() if plan is not None else 'none'}",
        f"  REST for discovery: {server.url.replace('ws://', 'http://', 1).replace('wss://', 'https://', 1)}"
        f"/v5/market/{{instruments-info,tickers}} (try: bybitmon watch --all --url {server.url})",
        f"{hint} --url {server.url}",
    ]


def fault_summary(server: BybitServer) -> str:
    """One line of fault counts for ``serve``'s exit, e.g. ``faults: drop=2 gap=31``."""
    counts = [f"{k}={n}" for k, n in server.fault_counts.items() if n]
    if server.overflow_drops:
        counts.append(f"overflow_drops={server.overflow_drops}")
    return "faults injected: " + (" ".join(counts) if counts else "none")


async def run_serve(host: str, port: int, *, simulate: bool, file: str | None, symbols: list[str],
                    seed: int, speed: float | None, faults: str | None, idle_timeout_s: float,
                    ready: Callable[[str], None] | None = None, say: Callable[[str], None] | None = None,
                    log: Callable[[str], None] | None = None, categories: Sequence[str] = SERVED_CATEGORIES) -> None:
    """``bybitmon serve``: serve a simulated market or a file until cancelled.

    Args:
        host, port: Where to listen (port 0 picks a free one).
        simulate: Serve a :class:`SimulatedSource` of ``symbols`` (exclusive with ``file``).
        file: Serve this recording / capture with a :class:`FileSource` (``symbols`` is then
            ignored: the file's own topics are served).
        symbols: Symbols of the simulated market.
        seed: Simulator and fault-plan seed.
        speed: Simulated or replay speed; ``None`` = 1 for a simulation, as fast as possible
            for a file.
        faults: A :class:`FaultPlan` spec, or None.
        idle_timeout_s: Idle cut-off, s (Bybit: 600).
        ready: Called once with ``ws://HOST:PORT`` when listening.
        say: Called with each line of the banner when listening (see :func:`banner`) and with
            the fault counts (:func:`fault_summary`) when stopping.
        log: ``--verbose``: called with a line per connection, subscription, refusal and fault.
        categories: Categories of the simulated market.

    Raises:
        UsageError: bad combination of arguments or a bad fault spec.
        RecordingError: the file cannot be read.
        OSError: the address cannot be bound.
    """
    if simulate == (file is not None):
        raise UsageError("give either a simulated market or a file to serve, not both or neither")
    plan = FaultPlan.parse(faults, seed=seed) if faults is not None else None
    source: Source
    if simulate:
        source = SimulatedSource(symbols, seed, speed, categories=categories)
    else:
        assert file is not None
        source = FileSource(file, None, speed)
    async with BybitServer(source, host=host, port=port, idle_timeout_s=idle_timeout_s, log=log) as server:
        if plan is not None:
            server.apply_plan(plan)
        if ready is not None:
            ready(server.url)
        if say is not None:
            for line in banner(server, plan):
                say(line)
        try:
            await server.serve_forever()
        finally:
            if say is not None:
                say(fault_summary(server))
