"""The seed report's "Production Usage - Error Handling" example; only the import line differs
(and the line that runs it). Unlike the seed, bybitmon never falls back to simulated data: when
the exchange is unreachable it says so and keeps reconnecting.

    BYBITMON_URL=ws://127.0.0.1:8765 python examples/production.py
"""
import asyncio
from bybitmon import TradesAggregator, OrderBookManager

async def production_monitor():
    trades = TradesAggregator()
    orderbook = OrderBookManager()
    
    try:
        await trades.start()
        await orderbook.start()
        
        # Check if WebSocket connected
        if trades.bybit_ws and trades.bybit_ws.connected:
            print("✅ Real-time data from Bybit")
        else:
            print("⚠️  Simulation mode (WebSocket unavailable)")
        
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
    
    except KeyboardInterrupt:
        print("Shutting down...")
    finally:
        await trades.stop()
        await orderbook.stop()

asyncio.run(production_monitor())
