"""Sockets and files: the WebSocket client, the live feed and recordings. No metrics logic."""

__all__: list[str] = []  # a folder of modules; import them by name
