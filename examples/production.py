"""The seed report's "Production Usage - Error Handling" example, with the import line changed,
the source named as it is (Bybit, or the server BYBITMON_URL points at) and Ctrl-C ending it
cleanly (status 130, as the bybitmon commands). Unlike the seed, bybitmon never falls back to
simulated data: when the exchange is unreachable it says so and keeps reconnecting.

    BYBITMON_URL=ws://127.0.0.1:8765 python examples/production.py
"""
import asyncio
import sys

from bybitmon import TradesAggregator, OrderBookManager
from bybitmon.errors import printable
from bybitmon.transport.client import MAINNET, TESTNET


def source_name(url: str) -> str:
    """'Bybit' only when it is Bybit; any other server by its URL."""
    if url.startswith(MAINNET + "/"):
        return "Bybit"
    if url.startswith(TESTNET + "/"):
        return "Bybit testnet"
    return printable(url)

async def production_monitor():
    trades = TradesAggregator()
    orderbook = OrderBookManager()
    
    try:
        await trades.start()
        await orderbook.start()
        
        # Check if WebSocket connected
        if trades.bybit_ws and trades.bybit_ws.connected:
            print(f"✅ Real-time data from {source_name(trades.bybit_ws.url)}")
        else:
            print("⚠️  Not connected yet (no simulated data is shown); reconnecting in the background")
        
        await trades.subscribe('BTCUSDT')
        await orderbook.subscribe('BTCUSDT')
        
        # Monitor with health checks
        while True:
            await asyncio.sleep(10)
            
            # Check connection health
            if trades.bybit_ws:
                if not trades.bybit_ws.connected:
                    print("⚠️  WebSocket disconnected, waiting for reconnect...")
            
            # Get metrics
            snapshot = orderbook.get_snapshot('BTCUSDT')
            if snapshot:
                print(f"📊 Mid: {snapshot.mid_price:.2f}, Spread: {snapshot.spread_bps:.2f}bps")
    
    finally:
        # Ctrl-C cancels this task; stop the connections before asyncio.run re-raises it.
        print("Shutting down...")
        await trades.stop()
        await orderbook.stop()


if __name__ == "__main__":
    try:
        asyncio.run(production_monitor())
    except KeyboardInterrupt:
        sys.exit(130)
