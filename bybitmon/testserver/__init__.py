"""The Bybit-compatible server behind ``bybitmon serve``: sources, faults, sessions, websockets glue."""
