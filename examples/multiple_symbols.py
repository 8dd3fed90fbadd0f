"""The seed report's "Advanced Usage - Multiple Symbols" example; only the import line differs
(and the two lines that run it, which the report left out).

    BYBITMON_URL=ws://127.0.0.1:8765 python examples/multiple_symbols.py
"""
import asyncio
from bybitmon import TradesAggregator, OrderBookManager

async def monitor_multiple_symbols():
    trades = TradesAggregator()
    orderbook = OrderBookManager()
    
    await trades.start()
    await orderbook.start()
    
    symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT']
    
    # Subscribe to all
    for symbol in symbols:
        await trades.subscribe(symbol)
        await orderbook.subscribe(symbol)
    
    # Monitor loop
    while True:
        await asyncio.sleep(5)
        
        for symbol in symbols:
            tpm = trades.get_tpm(symbol, '60s')
            imb = orderbook.get_imbalance(symbol)
            
            if tpm > 100 and abs(imb) > 0.3:
                print(f"🔥 {symbol}: High activity (TPM={tpm:.0f}, Imb={imb:.2f})")

asyncio.run(monitor_multiple_symbols())
