"""The seed report's "Basic Usage" example; only the import line differs.

Run it against a local simulated market:
    bybitmon serve --simulate --port 8765 &
    BYBITMON_URL=ws://127.0.0.1:8765 python examples/basic.py
"""
import asyncio
from bybitmon import TradesAggregator, OrderBookManager

async def main():
    # Initialize
    trades = TradesAggregator()
    orderbook = OrderBookManager()
    
    # Start (connects to Bybit)
    await trades.start()
    await orderbook.start()
    
    # Subscribe
    await trades.subscribe('BTCUSDT')
    await orderbook.subscribe('BTCUSDT')
    
    # Wait for data
    await asyncio.sleep(10)
    
    # Get metrics
    print(f"TPM: {trades.get_tpm('BTCUSDT', '60s')}")
    print(f"Imbalance: {orderbook.get_imbalance('BTCUSDT')}")
    
    # Cleanup
    await trades.stop()
    await orderbook.stop()

asyncio.run(main())
