"""The seed's async library API (TradesAggregator, OrderBookManager, BybitWebSocketClient)."""

__all__: list[str] = []  # a folder of modules; import them by name
