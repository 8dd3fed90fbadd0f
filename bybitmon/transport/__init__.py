"""Sockets and files: the WebSocket client, the live feed and recordings. No metrics logic."""
