"""Where the shared, read-only fixtures live: ../shared beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "bybit-real"
# Timeouts in tests scale from one constant (slow machines: raise the factor).
TIMEOUT_FACTOR = float(os.environ.get("BYBITMON_TESTS_TIMEOUT_FACTOR", "1"))


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"shared fixture missing: {path} (run with ../shared beside the checkout)")
    return path


def fixture_lines(name: str) -> list[bytes]:
    return [line for line in fixture_path(name).read_bytes().splitlines() if line.strip()]
