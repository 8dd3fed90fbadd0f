from __future__ import annotations

import os

import pytest

from paths import CAPTURES_ENV, captures_dir


def pytest_collection_modifyitems(config, items):
    if os.environ.get("BYBITMON_LIVE") == "1":
        return
    skip = pytest.mark.skip(reason="live exchange test: set BYBITMON_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    where = captures_dir()
    if where is None:
        return f"real captures: none ({CAPTURES_ENV} unset; tests that need them are skipped)"
    return f"real captures: {where} ({CAPTURES_ENV})"


def pytest_terminal_summary(terminalreporter):
    """One line saying how many tests were skipped for want of the optional real captures."""
    skipped = terminalreporter.stats.get("skipped", [])
    n = sum(1 for rep in skipped if CAPTURES_ENV in str(rep.longrepr))
    if n:
        terminalreporter.write_line(f"{n} skipped for want of the optional real captures "
                                    f"(set {CAPTURES_ENV} to run them)")
