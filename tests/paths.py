"""Where the tests find their data.

* ``tests/data/`` (in the repository): Bybit's documentation examples, a slice of Bybit's own
  order-book history archive, captures of ``bybitmon serve --simulate`` and hand-built frames.
  ``tests/data/SOURCES.md`` says where each file came from.
* Optional real captures, kept outside the repository because of their licence (cryptofeed's
  recordings of Bybit's live streams are AGPL-3.0, and quoted frames carry no licence): read from
  the directory named by the environment variable ``BYBITMON_REAL_CAPTURES``. A test that needs
  one is skipped, with a reason naming the variable, when the variable is unset; when it is set,
  a missing file fails the test (CI sets it, so CI never skips a capture silently).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["CAPTURES_ENV", "DATA", "TIMEOUT_FACTOR", "capture_path", "captures_dir", "data_path",
           "fixture_lines", "fixture_path", "is_capture", "recv_times_ns"]

DATA = Path(__file__).resolve().parent / "data"
CAPTURES_ENV = "BYBITMON_REAL_CAPTURES"
# Files only the optional capture directory holds (never committed: see the module docstring).
_CAPTURE_PREFIXES = ("cryptofeed_", "readme_quoted_", "issue_quoted_")
# Timeouts in tests scale from one constant (slow machines: raise the factor).
TIMEOUT_FACTOR = float(os.environ.get("BYBITMON_TESTS_TIMEOUT_FACTOR", "1"))


def is_capture(name: str) -> bool:
    """Whether ``name`` is one of the optional real captures (read from ``BYBITMON_REAL_CAPTURES``)."""
    return name.startswith(_CAPTURE_PREFIXES)


def captures_dir() -> Path | None:
    """The directory of the optional real captures, or None when ``BYBITMON_REAL_CAPTURES`` is unset."""
    value = os.environ.get(CAPTURES_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def capture_path(name: str) -> Path:
    """Path of the optional real capture ``name``; skips the calling test when there are none."""
    if not is_capture(name):
        pytest.fail(f"{name} is not an optional capture: it belongs in tests/data (use data_path)")
    where = captures_dir()
    if where is None:
        pytest.skip(f"optional real capture {name}: set {CAPTURES_ENV} to the directory holding it")
    path = where / name
    if not path.is_file():
        pytest.fail(f"{CAPTURES_ENV}={where} has no {name} (unset the variable to skip real-capture tests)")
    return path


def data_path(name: str) -> Path:
    """Path of ``tests/data/name``; a missing file fails the test (the repository must carry it)."""
    path = DATA / name
    if not path.is_file():
        pytest.fail(f"test data missing: {path} (tests/data/SOURCES.md lists what belongs there)")
    return path


def fixture_path(name: str) -> Path:
    """``name`` from the optional captures (see :func:`capture_path`) or else from tests/data."""
    return capture_path(name) if is_capture(name) else data_path(name)


def fixture_lines(name: str) -> list[bytes]:
    """The non-blank lines of :func:`fixture_path`, without their line terminators (LF or CRLF)."""
    return [line for line in fixture_path(name).read_bytes().splitlines() if line.strip()]


def recv_times_ns(name: str) -> list[int] | None:
    """Receive times (ns) of ``name``'s frames from its ``.recv_ts.txt``, or None if it has none."""
    ts = fixture_path(name).with_name(name.replace(".ndjson", ".recv_ts.txt"))
    if not ts.is_file():
        return None
    return [int(float(s) * 1e9) for s in ts.read_text().split()]
