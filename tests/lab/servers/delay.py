"""Lab link delayer (netem is not in this kernel): holds NFQUEUE packets, then accepts them.

usage: python -m tests.lab.servers.delay QUEUE_NUM DELAY_MS
Each packet's verdict is issued later from an asyncio timer, so packets are not serialised
(lab.md §8). Bind it before the mangle-table NFQUEUE rules (which use --queue-bypass) exist.
Prints READY once bound.
"""

from __future__ import annotations

import asyncio
import sys

import netfilterqueue


async def main(queue: int, delay_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    nfq = netfilterqueue.NetfilterQueue()

    def on_packet(packet: netfilterqueue.Packet) -> None:
        loop.call_later(delay_seconds, packet.accept)

    nfq.bind(queue, on_packet, max_len=4096)
    loop.add_reader(nfq.get_fd(), lambda: nfq.run(block=False))
    print(f"READY delay queue {queue} by {delay_seconds * 1000:.1f} ms", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) / 1000))
