"""A seeded simulated market that emits Bybit-shaped frames (sans-I/O)."""

from .market import MarketSimulator

__all__ = ["MarketSimulator"]
