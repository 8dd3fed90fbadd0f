"""The Bybit-compatible server behind ``bybitmon serve``: sources, faults, sessions, websockets glue."""

__all__: list[str] = []  # a folder of modules; import them by name
