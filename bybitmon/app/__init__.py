"""The command loops behind watch, record, replay and export."""

__all__: list[str] = []  # a folder of modules; import them by name
