"""bybitmon: a terminal monitor for Bybit v5 public market data."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as True)

__version__ = "0.1.0"

# Every public name is loaded when first used (PEP 562), so `import bybitmon` costs nothing:
# the command line installs its Ctrl-C handler before the core and typer are imported, and
# the sans-I/O core imports without the I/O packages (the seed's facade needs websockets).
_LAZY: dict[str, str] = {
    **dict.fromkeys(("TradeActivity", "TradeWindow", "WindowStats", "parse_window"), "core.activity"),
    "OrderBook": "core.book",
    **dict.fromkeys(("Density", "DensityTracker"), "core.densities"),
    **dict.fromkeys(("BybitmonError", "FeedClosed", "RecordingError", "SubscriptionError", "UsageError"), "errors"),
    **dict.fromkeys(("BadFrame", "BookUpdate", "OtherTopic", "Pong", "SubscribeReply", "Trade", "TradeBatch",
                     "UnknownFrame"), "core.events"),
    "Monitor": "core.monitor",
    "parse_frame": "core.protocol",
    **dict.fromkeys(("BybitWebSocketClient", "OrderBookManager", "OrderBookSnapshot", "TradesAggregator"),
                    "compat.facade"),
}
_SUBPACKAGES = ("app", "cli", "compat", "core", "errors", "sim", "testserver", "transport", "ui")

if TYPE_CHECKING:
    from .compat.facade import BybitWebSocketClient, OrderBookManager, OrderBookSnapshot, TradesAggregator
    from .core.activity import TradeActivity, TradeWindow, WindowStats, parse_window
    from .core.book import OrderBook
    from .core.densities import Density, DensityTracker
    from .core.events import (BadFrame, BookUpdate, OtherTopic, Pong, SubscribeReply, Trade, TradeBatch,
                              UnknownFrame)
    from .core.monitor import Monitor
    from .core.protocol import parse_frame
    from .errors import BybitmonError, FeedClosed, RecordingError, SubscriptionError, UsageError


def __getattr__(name: str):
    from importlib import import_module

    where = _LAZY.get(name)
    if where is not None:
        value = getattr(import_module(f".{where}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bybitmon' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

__all__ = [
    "__version__",
    "BadFrame",
    "BookUpdate",
    "BybitWebSocketClient",
    "BybitmonError",
    "Density",
    "DensityTracker",
    "FeedClosed",
    "Monitor",
    "OrderBook",
    "OrderBookManager",
    "OrderBookSnapshot",
    "OtherTopic",
    "Pong",
    "RecordingError",
    "SubscribeReply",
    "SubscriptionError",
    "Trade",
    "TradeActivity",
    "TradeBatch",
    "TradesAggregator",
    "TradeWindow",
    "UnknownFrame",
    "UsageError",
    "WindowStats",
    "parse_frame",
    "parse_window",
]
