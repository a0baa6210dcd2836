"""The network's round trip while a cycle runs: TCP connects to one address, one at a time.

usage (in the probe namespace): python -m benchmarks.rtt_probe HOST PORT
Connects every 50 ms until SIGTERM, then prints the connect times (ms) as one JSON list. One
connect is one round trip through the lab's uplink (the NFQUEUE delayer) and the web server's
accept: when the cycle loads the machine, this is what the network itself then allows.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time


async def probe(host: str, port: int) -> list[float]:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    out: list[float] = []
    while not stop.is_set():
        t0 = time.perf_counter()
        _, writer = await asyncio.open_connection(host, port)
        out.append(round((time.perf_counter() - t0) * 1000, 2))
        writer.close()
        await writer.wait_closed()
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except TimeoutError:
            pass
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1], int(sys.argv[2])))))
