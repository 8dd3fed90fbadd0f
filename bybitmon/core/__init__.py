"""The sans-I/O core: frames in, events and metrics out.

Nothing here imports asyncio, websockets, rich, typer or ``time``; every clock is an argument.
"""
