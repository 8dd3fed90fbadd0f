"""The seed's async library API (TradesAggregator, OrderBookManager, BybitWebSocketClient)."""
