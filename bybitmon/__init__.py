"""bybitmon: a terminal monitor for Bybit v5 public market data."""

from __future__ import annotations

from .activity import TradeActivity, TradeWindow, WindowStats, parse_window
from .book import OrderBook
from .densities import Density, DensityTracker
from .errors import (
    BookSequenceError,
    BybitmonError,
    FeedClosed,
    ProtocolError,
    RecordingError,
    SubscriptionError,
    UsageError,
)
from .events import BadFrame, BookUpdate, OtherTopic, Pong, SubscribeReply, Trade, TradeBatch, UnknownFrame
from .monitor import Monitor
from .protocol import parse_frame

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BadFrame",
    "BookSequenceError",
    "BookUpdate",
    "BybitmonError",
    "Density",
    "DensityTracker",
    "FeedClosed",
    "Monitor",
    "OrderBook",
    "OtherTopic",
    "Pong",
    "ProtocolError",
    "RecordingError",
    "SubscribeReply",
    "SubscriptionError",
    "Trade",
    "TradeActivity",
    "TradeBatch",
    "TradeWindow",
    "UnknownFrame",
    "UsageError",
    "WindowStats",
    "parse_frame",
    "parse_window",
]
