"""The sans-I/O core: frames in, events and metrics out.

Nothing here imports asyncio, websockets, rich, typer or ``time``; every clock is an argument.
"""

__all__: list[str] = []  # a folder of modules; import them by name
