"""bybitmon: a terminal monitor for Bybit v5 public market data."""

from __future__ import annotations

from .core.activity import TradeActivity, TradeWindow, WindowStats, parse_window
from .core.book import OrderBook
from .core.densities import Density, DensityTracker
from .errors import (
    BybitmonError,
    FeedClosed,
    RecordingError,
    SubscriptionError,
    UsageError,
)
from .core.events import BadFrame, BookUpdate, OtherTopic, Pong, SubscribeReply, Trade, TradeBatch, UnknownFrame
from .core.monitor import Monitor
from .core.protocol import parse_frame

__version__ = "0.1.0"

# The seed's async API needs websockets; load it only when asked for, so the sans-I/O core
# imports without the I/O packages installed.
_COMPAT = ("BybitWebSocketClient", "OrderBookManager", "OrderBookSnapshot", "TradesAggregator")


def __getattr__(name: str):
    if name in _COMPAT:
        from .compat import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'bybitmon' has no attribute {name!r}")

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
