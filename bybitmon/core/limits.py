"""Bybit's published numbers for the v5 public streams, in one place.

Client, server and CLI all read them from here. Sources: protocol notes
(``bybit-v5-public-ws.md``) and https://bybit-exchange.github.io/docs/v5/ws/connect,
https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook.
"""

from __future__ import annotations

__all__ = [
    "CATEGORIES",
    "SERVED_CATEGORIES",
    "BOOK_DEPTHS",
    "BOOK_PUSH_MS",
    "SPOT_ARGS_PER_REQUEST",
    "ARGS_CHARS_PER_CONN",
]

#: Every category of Bybit's v5 public WebSocket (``/v5/public/{category}``).
CATEGORIES = ("spot", "linear", "inverse", "option", "spread")
#: The categories bybitmon follows and ``bybitmon serve`` serves.
SERVED_CATEGORIES = ("spot", "linear", "inverse")
#: Book depths Bybit publishes for spot, linear and inverse (depth 500 was removed 2025-09-11).
BOOK_DEPTHS = (1, 50, 200, 1000)
#: Push interval of each book depth, ms, per category (spot 200 went 200 -> 100 ms on 2026-03-19).
#: Level 1 is snapshot-only.
BOOK_PUSH_MS = {
    "linear": {1: 10, 50: 20, 200: 100, 1000: 200},
    "inverse": {1: 10, 50: 20, 200: 100, 1000: 200},
    "spot": {1: 10, 50: 20, 200: 100, 1000: 200},
}
#: "Spot can input up to 10 args for each subscription request".
SPOT_ARGS_PER_REQUEST = 10
#: "the total length of the args array ... must not exceed 21,000 characters" (per connection).
ARGS_CHARS_PER_CONN = 21_000
