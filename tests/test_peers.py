"""The real cryptofeed and ccxt.pro clients against ``serve``, each with its own default subscriptions.

Both are pointed at ``BybitServer`` on 127.0.0.1 at run time (their Bybit URLs overridden) and given
their instrument lists offline; every HTTP call they could make is patched to fail, so nothing goes
to the internet. Each rebuilds the books of two symbols its own way (cryptofeed: ``orderbook.200``,
its default on linear; ccxt.pro: ``orderbook.50``, its default limit), then the server's market is
paused and the client's best bid/ask must equal serve's true book. Skipped when the library is not
installed (``pip install -e '.[bench]'`` installs both).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import ssl
import time
from decimal import Decimal

import pytest

from bybitmon.testserver.app import BybitServer, SimulatedSource

from paths import TIMEOUT_FACTOR

T = 2.0 * TIMEOUT_FACTOR
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
# Bybit's instruments-info items for the two simulated linear perpetuals (tick sizes as simulated).
_TICK = {"BTCUSDT": "0.10", "ETHUSDT": "0.01"}
_QTY = {"BTCUSDT": "0.001", "ETHUSDT": "0.01"}


def instruments_reply() -> dict:
    """``GET /v5/market/instruments-info?category=linear`` as Bybit shapes it, for SYMBOLS."""
    items = [{
        "symbol": s, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": s[:-4], "quoteCoin": "USDT",
        "settleCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
        "priceScale": str(len(_TICK[s].split(".")[1])), "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                                                                         "leverageStep": "0.01"},
        "priceFilter": {"minPrice": _TICK[s], "maxPrice": "1999999.80", "tickSize": _TICK[s]},
        "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": _QTY[s], "qtyStep": _QTY[s],
                          "maxMktOrderQty": "500.000", "minNotionalValue": "5", "postOnlyMaxOrderQty": "1190.000"},
        "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoinPrecision": "", "copyTrading": "both",
        "upperFundingRate": "0.005", "lowerFundingRate": "-0.005", "isPreListing": False, "preListingInfo": None,
    } for s in SYMBOLS]
    return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "nextPageCursor": "", "list": items},
            "retExtInfo": {}, "time": int(time.time() * 1000)}


def tls_pair(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting only it).

    cryptofeed accepts only ``wss://`` addresses, so serve speaks TLS on loopback for it.
    """
    x509 = pytest.importorskip("cryptography.x509", reason="cryptography not installed (comes with ccxt)")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


def true_best(srv: BybitServer, symbol: str, depth: int) -> tuple[Decimal, Decimal]:
    bids, asks = srv.true_book(symbol, depth=depth)
    return Decimal(next(iter(bids))), Decimal(next(iter(asks)))


async def settle(srv: BybitServer, seconds: float) -> None:
    """Pause the market, then let every frame already sent reach the client."""
    await srv.pause_source()
    await asyncio.sleep(seconds)


def test_cryptofeed_default_subscriptions_rebuild_serves_books(monkeypatch, tmp_path):
    cf_bybit = pytest.importorskip("cryptofeed.exchanges.bybit", reason="cryptofeed not installed (bench extra)")
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.symbols import Symbols

    Bybit = cf_bybit.Bybit

    def no_http(*args, **kwargs):
        raise AssertionError(f"cryptofeed tried the network: {args[:2]}")

    monkeypatch.setattr(Bybit.http_sync, "read", no_http)
    syms, info = Bybit._parse_symbol_data([instruments_reply()])
    Symbols.set(Bybit.id, syms, info)  # the instrument list, offline
    std = {"BTC-USDT-PERP": "BTCUSDT", "ETH-USDT-PERP": "ETHUSDT"}
    server_tls, client_tls = tls_pair(tmp_path)

    async def scenario():
        source = SimulatedSource(SYMBOLS, 6, categories=("linear",), trade_rate=10.0)
        async with BybitServer(source, ssl=server_tls) as srv:
            ep = Bybit.websocket_endpoints[0]
            linear = dataclasses.replace(ep, address=srv.url_for("linear"), sandbox=srv.url_for("linear"),
                                         options={**ep.options, "ssl": client_tls})
            monkeypatch.setattr(Bybit, "websocket_endpoints", [linear])
            books: dict[str, object] = {}
            topics: set[str] = set()
            trades: list[object] = []

            async def on_book(book, receipt):
                books[book.symbol] = book
                topics.add(book.raw["topic"])

            async def on_trade(trade, receipt):
                trades.append(trade)

            feed = Bybit(symbols=list(std), channels=[L2_BOOK, TRADES],
                         callbacks={L2_BOOK: on_book, TRADES: on_trade})
            feed.start(asyncio.get_running_loop())
            try:
                deadline = time.monotonic() + 5 * T
                while (len(books) < 2 or len(trades) < 5) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5 * T)  # some deltas on top of the snapshots
                await settle(srv, 0.5 * T)
                assert topics == {"orderbook.200.BTCUSDT", "orderbook.200.ETHUSDT"}  # its default depth
                assert trades, "no trades reached cryptofeed"
                for name, sym in std.items():
                    book = books[name].book
                    assert len(book.bids) == 200 and len(book.asks) == 200
                    best = (book.bids.index(0)[0], book.asks.index(0)[0])
                    assert best == true_best(srv, sym, 200), name
            finally:
                await feed.shutdown()

    asyncio.run(scenario())


def test_ccxt_pro_default_subscriptions_rebuild_serves_books(monkeypatch):
    ccxtpro = pytest.importorskip("ccxt.pro", reason="ccxt not installed (bench extra)")

    async def scenario():
        async with BybitServer(SimulatedSource(SYMBOLS, 8, categories=("linear",), trade_rate=10.0)) as srv:
            ex = ccxtpro.bybit({"options": {"fetchMarkets": {"types": ["linear"]}}})

            async def no_http(*args, **kwargs):
                raise AssertionError(f"ccxt tried the network: {args[:2]}")

            async def instruments(params=None, *args, **kwargs):
                assert (params or {}).get("category") == "linear"
                return instruments_reply()

            ex.fetch = no_http
            ex.publicGetV5MarketInstrumentsInfo = instruments  # the instrument list, offline
            ex.urls["api"]["ws"]["public"]["linear"] = srv.url_for("linear")
            try:
                await ex.load_markets()
                symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
                deadline = time.monotonic() + 5 * T
                seen: set[str] = set()
                while len(seen) < 2 and time.monotonic() < deadline:
                    ob = await asyncio.wait_for(ex.watch_order_book_for_symbols(symbols), T)
                    seen.add(ob["symbol"])
                trades = await asyncio.wait_for(ex.watch_trades_for_symbols(symbols), 3 * T)
                assert trades and trades[0]["symbol"] in symbols
                end = time.monotonic() + 0.5 * T
                while time.monotonic() < end:  # keep reading deltas
                    try:
                        await asyncio.wait_for(ex.watch_order_book_for_symbols(symbols), 0.2)
                    except asyncio.TimeoutError:
                        pass
                await srv.pause_source()
                with pytest.raises(asyncio.TimeoutError):  # drain until nothing more arrives
                    while True:
                        await asyncio.wait_for(ex.watch_order_book_for_symbols(symbols), 0.5 * T)
                for symbol, sym in zip(symbols, SYMBOLS):
                    ob = ex.orderbooks[symbol]
                    assert len(ob["bids"]) == 50 and len(ob["asks"]) == 50  # its default limit
                    best = (Decimal(str(ob["bids"][0][0])), Decimal(str(ob["asks"][0][0])))
                    assert best == true_best(srv, sym, 50), symbol
                client = next(iter(ex.clients.values()))
                assert client.url == srv.url_for("linear")
            finally:
                await ex.close()

    asyncio.run(scenario())
