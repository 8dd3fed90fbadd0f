"""What the commands write: safe outputs, the emit-on-interval rule, JSON snapshots and alerts.

The app layer never prints: it writes to the streams the CLI hands it, through :class:`Output`,
which turns any write failure into :class:`~bybitmon.errors.OutputError` (a closed pipe into
:class:`~bybitmon.errors.OutputClosed`). An output error ends the command; it is never mistaken
for a network fault, because the live loops catch it before it can reach the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable, TextIO

import orjson

from ..core.monitor import Monitor
from ..errors import printable
from ..errors import OutputClosed, OutputError

if TYPE_CHECKING:
    from ..core.screener import ScreenFilter

__all__ = ["Every", "Output", "AlertSink", "JsonEmitter", "status_line", "densities_line"]


class Every:
    """The emit-on-interval rule, on the pipeline clock (exchange ms).

    The first time seen sets the first boundary (the next multiple of ``interval_ms``); the first
    time reaching a boundary is due, and the next boundary is the one after that time. ``replay
    --json``, ``watch --json``, alerts and ``export --book`` all sample with this rule, so the
    same file gives the same rows everywhere.
    """

    __slots__ = ("interval_ms", "next_ms")

    def __init__(self, interval_ms: int) -> None:
        if not interval_ms > 0:
            raise ValueError(f"interval must be positive, got {interval_ms!r}")
        self.interval_ms = interval_ms
        self.next_ms: int | None = None

    def due(self, now_ms: int | None) -> bool:
        """True when ``now_ms`` reached the next boundary (which then moves past ``now_ms``)."""
        if now_ms is None:
            return False
        nxt = self.next_ms
        if nxt is not None and now_ms < nxt:
            return False
        self.next_ms = (now_ms // self.interval_ms + 1) * self.interval_ms
        return nxt is not None


class Output:
    """A binary stream whose write errors end the command.

    Args:
        stream: an open binary stream (``sys.stdout.buffer``, a file).
        name: how errors name it (``stdout``, the path).
        flush: flush after every write (live output, read as it comes).
    """

    def __init__(self, stream: BinaryIO, name: str, *, flush: bool = False) -> None:
        self.stream = stream
        self.name = name
        self.autoflush = flush
        self.error: OutputError | None = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        try:
            self.stream.write(data)
            if self.autoflush:
                self.stream.flush()
        except (OSError, ValueError) as exc:
            raise self._fail(exc) from None

    def flush(self) -> None:
        if self.error is not None:
            raise self.error
        try:
            self.stream.flush()
        except (OSError, ValueError) as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        """Flush and close (a file); a failure is raised once, as for a write."""
        try:
            if self.error is None:
                self.flush()
        finally:
            try:
                self.stream.close()
            except (OSError, ValueError):
                pass

    def _fail(self, exc: BaseException) -> OutputError:
        if isinstance(exc, BrokenPipeError):
            self.error = OutputClosed(f"{self.name}: closed by its reader")
        else:
            why = getattr(exc, "strerror", None) or str(exc)
            self.error = OutputError(f"{self.name}: write failed ({why})")
        return self.error


def status_line(symbol: str, topic: str, state: str, error: str, ts_ms: int | None) -> bytes:
    """A ``{"type":"status",...}`` NDJSON line, e.g. a subscription the server refused.

    The texts come from the server: control characters are escaped as on the terminal (JSON
    escapes C0 controls itself, but not the C1 ones some terminals obey).
    """
    return orjson.dumps({"type": "status", "v": 1, "ts": ts_ms, "symbol": printable(symbol), "topic": printable(topic),
                         "state": state, "error": printable(error)}) + b"\n"


def densities_line(monitor: Monitor, flt: ScreenFilter, symbols: list[str] | None = None) -> bytes:
    """The ``{"type":"densities"}`` NDJSON line of ``monitor``'s density screen (of ``symbols``,
    default all) that ``--json`` writes after each interval's snapshots; empty before any data."""
    from ..core.screener import rows_json, screen_densities  # watch's, not replay's: loaded when used

    if monitor.now_ms is None:
        return b""
    rows = screen_densities(monitor, flt=flt, symbols=symbols)
    return orjson.dumps(rows_json(rows, monitor.now_ms, monitor.category, flt)) + b"\n"


class AlertSink:
    """Evaluates alert rules on snapshots (pipeline clock) and writes the events.

    Each event is an NDJSON ``{"type":"alert",...}`` line to ``file`` (the ``--alerts-out`` file)
    and ``stdout`` (with ``--json``); ``bell`` gets ``\\a`` once per firing.
    """

    def __init__(self, rules: list[str], *, file: Output | None = None, stdout: Output | None = None,
                 bell: TextIO | None = None) -> None:
        from ..core.alerts import AlertEngine

        self.engine = AlertEngine(rules)
        self.file = file
        self.stdout = stdout
        self.bell = bell
        self.events = 0

    def check(self, monitor: Monitor) -> list[dict]:
        out = self.engine.evaluate_monitor(monitor)
        if out:
            self.events += len(out)
            data = b"".join(orjson.dumps(e) + b"\n" for e in out)
            if self.file is not None:
                self.file.write(data)
            if self.stdout is not None:
                self.stdout.write(data)
            if self.bell is not None and any(e["state"] == "firing" for e in out):
                try:
                    self.bell.write("\a")
                    self.bell.flush()
                except (OSError, ValueError):
                    pass  # a bell that cannot ring is not worth ending the command for
        return out

    def firing(self, symbols: list[str]) -> set[str]:
        return {s for s in symbols if self.engine.firing(s)}

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class JsonEmitter:
    """Version-1 snapshot lines (and alert checks) every ``interval_ms`` of pipeline clock.

    Args:
        monitor: the pipeline.
        interval_ms: the :class:`Every` interval.
        out: where snapshot lines go (``None``: alerts only).
        alerts: rules checked at the same moments.
    """

    def __init__(self, monitor: Monitor, interval_ms: int, out: Output | Callable[[bytes], None] | None,
                 alerts: AlertSink | None = None) -> None:
        self.monitor = monitor
        self.every = Every(interval_ms)
        self.write = out.write if isinstance(out, Output) else out
        self.alerts = alerts

    @property
    def interval_ms(self) -> int:
        return self.every.interval_ms

    def maybe_emit(self) -> None:
        if self.every.due(self.monitor.now_ms):
            self.emit_all()

    def emit_all(self) -> None:
        m = self.monitor
        if self.write is not None:
            self.write(b"".join([m.snapshot_json(s, True) for s in m.symbols]))
        if self.alerts is not None:
            self.alerts.check(m)
