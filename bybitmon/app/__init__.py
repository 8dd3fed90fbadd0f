"""The command loops behind watch, record, replay and export."""
