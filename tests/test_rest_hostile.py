"""The REST client and discovery against a hostile server (tests/hostile_rest.py) on loopback:
huge and deeply nested replies, value bombs, slow drips, 100,000 instruments, cursor loops,
wrong types and evil symbol names. Each ends in a one-line RestError, or a safe skip, in
bounded time and memory; and through the real CLI (``watch --all``) in one ``error:`` line and
exit status 2.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from bybitmon.app import discovery
from bybitmon.app.discovery import discover
from bybitmon.errors import RestError
from bybitmon.transport.rest import MAX_JSON_VALUES, rest_get, rest_get_sync

from helpers import run
from hostile_rest import EVIL, HostileRest
from paths import TIMEOUT_FACTOR

PATH = "/v5/market/instruments-info"


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and "\x1b" not in msg and len(msg) < 300, msg
    return msg


def _get(mode: str, *, timeout_s: float = 5.0, category: str = "linear") -> RestError:
    with HostileRest(mode) as base:
        with pytest.raises(RestError) as info:
            run(rest_get(base, PATH, {"category": category}, timeout_s=timeout_s))
    return info.value


# -- the client ----------------------------------------------------------------------------------

def test_a_reply_nested_100000_deep_is_one_line_error():
    assert "nested too deeply" in _one_line(_get("deep"))


def test_a_value_nested_5000_deep_inside_an_instrument_is_refused():
    assert "nested too deeply" in _one_line(_get("deep-item"))


def test_a_value_bomb_is_refused_before_parsing():
    """400,000 empty objects in 1.2 MB would cost ~30 MB as Python objects (and 8 MiB of them
    ~300 MB): refused by counting, with almost no memory."""
    with HostileRest("values") as base:
        tracemalloc.start()
        try:
            with pytest.raises(RestError) as info:
                rest_get_sync(base, PATH, {"category": "linear"}, timeout_s=5)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert f"over {MAX_JSON_VALUES:,} JSON values" in _one_line(info.value)
    assert peak < 8 * 2**20, peak


def test_a_bybit_sized_page_is_well_within_the_value_bound():
    """1,000 instruments shaped as Bybit's linear ones count ~73,000 (a member counts its `:` and
    its `,`): a quarter of the bound."""
    from hostile_rest import envelope

    inst = {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "BTC",
            "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": "2", "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
            "lotSizeFilter": {"maxOrderQty": "100.000", "maxMktOrderQty": "100.000", "minOrderQty": "0.001",
                              "qtyStep": "0.001", "postOnlyMaxOrderQty": "1000.000", "minNotionalValue": "5"},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
            "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False,
            "preListingInfo": None, "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": ""}
    body = envelope({"category": "linear", "list": [inst] * 1000, "nextPageCursor": ""})
    values = sum(body.count(c) for c in (b"{", b"[", b",", b":"))
    assert 30_000 < values < MAX_JSON_VALUES / 3


def test_a_huge_reply_without_length_is_cut_at_the_byte_limit():
    with HostileRest("huge") as base:
        t0 = time.monotonic()
        with pytest.raises(RestError) as info:
            rest_get_sync(base, PATH, {"category": "linear"}, timeout_s=10, max_bytes=2**20)
    assert "over the 1,048,576-byte limit" in _one_line(info.value)
    assert time.monotonic() - t0 < 5 * TIMEOUT_FACTOR


@pytest.mark.parametrize("mode,words", [("drip-body", "no complete reply within 0.5 s"),
                                        ("drip-head", "no reply within 0.5 s")])
def test_a_slow_drip_is_given_up_at_the_deadline_by_the_call_itself(mode, words):
    """A byte every 50 ms keeps every single read under the socket timeout; the call still ends
    at its deadline (before, the blocking call ran as long as the drip), and its connection is
    closed (the server sees the client go)."""
    srv = HostileRest(mode)
    with srv as base:
        t0 = time.monotonic()
        with pytest.raises(RestError) as info:
            rest_get_sync(base, PATH, {"category": "linear"}, timeout_s=0.5)
        took = time.monotonic() - t0
        assert words in _one_line(info.value)
        assert took < 0.5 + 1.0 * TIMEOUT_FACTOR, took
        assert srv.closed_early.wait(2 * TIMEOUT_FACTOR), "the connection stayed open"


def test_a_slow_drip_leaves_no_thread_behind():
    """The async call gives up at its deadline, and so does its worker thread."""
    with HostileRest("drip-body") as base:
        before = {t.ident for t in threading.enumerate()}
        with pytest.raises(RestError, match="no complete reply within 0.5 s"):
            run(rest_get(base, PATH, {"category": "linear"}, timeout_s=0.5))
        deadline = time.monotonic() + 2 * TIMEOUT_FACTOR
        while any(t.name == "bybitmon-rest" and t.ident not in before for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the REST thread is still running"
            time.sleep(0.02)


# -- discovery -----------------------------------------------------------------------------------

def _discover(mode: str, category: str = "linear", timeout_s: float = 5.0):
    with HostileRest(mode) as base:
        try:
            return run(discover(category, base, timeout_s=timeout_s)), None
        except RestError as exc:
            return None, exc


def test_100k_spot_instruments_are_refused_in_one_line():
    found, exc = _discover("spot-100k", "spot")
    assert found is None and "JSON values" in _one_line(exc)


def test_20k_spot_instruments_are_over_the_instrument_bound():
    found, exc = _discover("spot-20k", "spot")
    assert found is None and "more than 10,000 spot instruments" in _one_line(exc)


def test_100k_linear_instruments_stop_at_the_instrument_bound_after_11_pages():
    srv = HostileRest("linear-100k")
    with srv as base:
        with pytest.raises(RestError) as info:
            run(discover("linear", base, timeout_s=5))
    assert "more than 10,000 linear instruments" in _one_line(info.value)
    assert srv.requests == 11  # the bound is checked page by page, not after all 100


def test_a_cursor_loop_between_two_cursors_is_an_error():
    found, exc = _discover("cursor-loop")
    assert found is None and "nextPageCursor repeats (a)" in _one_line(exc)


def test_endless_slow_pages_stop_at_the_listing_time_budget():
    """Every page answered in 0.3 s with a new cursor: under the 0.4 s call timeout, so only the
    listing's own budget (3 x 0.4 s) ends it, long before MAX_PAGES x 0.3 s."""
    t0 = time.monotonic()
    found, exc = _discover("endless", timeout_s=0.4)
    took = time.monotonic() - t0
    msg = _one_line(exc)
    assert found is None and ("took over 1.2 s" in msg or "no reply within" in msg), msg
    assert took < 1.2 + 1.5 * TIMEOUT_FACTOR, took
    assert discovery.MAX_PAGES * 0.3 > 10  # what the page bound alone would have allowed, in s


def test_wrong_types_in_instrument_fields_are_skipped_safely(caplog):
    with caplog.at_level(logging.WARNING, logger="bybitmon.discovery"):
        found, exc = _discover("wrong-types")
    assert exc is None
    assert [(i.symbol, i.base_coin, i.quote_coin) for i in found] == [
        ("AUSDT", "A", "USDT"), ("EUSDT", "", ""), ("FUSDT", "", ""), ("GUSDT", "A", "USDT")]
    assert any("5 linear instruments with unusable symbol names skipped" in r.getMessage() for r in caplog.records)


def test_evil_symbol_names_are_skipped_and_the_warning_is_clipped_and_printable(caplog):
    with caplog.at_level(logging.WARNING, logger="bybitmon.discovery"):
        found, exc = _discover("evil-names")
    assert exc is None and [i.symbol for i in found] == ["AUSDT", "BTC-26DEC25"]
    (rec,) = [r for r in caplog.records if "unusable symbol names" in r.getMessage()]
    msg = rec.getMessage()
    assert msg.startswith("4 linear instruments with unusable symbol names skipped")
    assert len(msg) < 200 and msg.isprintable() and EVIL not in msg


# -- through the real CLI ------------------------------------------------------------------------

@pytest.mark.parametrize("mode,category,words", [
    ("deep", "linear", "nested too deeply"),
    ("values", "linear", "JSON values"),
    ("drip-body", "linear", "no complete reply within 1 s"),
    ("spot-20k", "spot", "more than 10,000 spot instruments"),
    ("cursor-loop", "linear", "nextPageCursor repeats"),
])
def test_watch_all_against_a_hostile_rest_server_is_one_error_line_and_exit_2(mode, category, words):
    with HostileRest(mode) as base:
        ws = base.replace("http://", "ws://")
        p = subprocess.run([sys.executable, "-m", "bybitmon", "watch", "--all", "--category", category, "--json",
                            "--url", ws, "--rest-timeout", "1s", "--duration", "20s"],
                           capture_output=True, text=True, timeout=60 * TIMEOUT_FACTOR)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], p.stderr
    assert p.stdout == ""


def test_tickers_with_wrong_types_give_no_turnover_and_no_error():
    from bybitmon.app.discovery import fetch_turnover

    with HostileRest("wrong-types") as base:
        assert run(fetch_turnover("linear", base, timeout_s=5)) == {}
        assert run(discover("linear", base, min_turnover=0.0, timeout_s=5)) == []
