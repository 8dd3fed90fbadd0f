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
from .facade import BybitWebSocketClient, OrderBookManager, OrderBookSnapshot, TradesAggregator
from .monitor import Monitor
from .protocol import parse_frame

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BadFrame",
    "BookSequenceError",
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
    "ProtocolError",
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
