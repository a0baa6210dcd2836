"""One socket to the resolver: a reply counts only if it answers the query in flight."""

from __future__ import annotations

import asyncio
import typing

import dns.message
import dns.rrset

from collector.census import exchange


class Liar(asyncio.DatagramProtocol):
    """Answers each query first with garbage, then with another question's answer under the
    same id, then with the right answer; remembers the source ports it was asked from."""

    def __init__(self, hold: int = 1) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.ports: set[int] = set()
        self.hold = hold  # answer once this many queries are in (all in flight at once)
        self.held: list[tuple[bytes, tuple[str, int]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.ports.add(addr[1])
        self.held.append((data, addr))
        if len(self.held) >= self.hold:
            for held in self.held:
                self.answer(*held)
            self.held = []

    def answer(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        query = dns.message.from_wire(data)
        other = dns.message.make_query("other.example", "A")
        other.id = query.id
        wrong = dns.message.make_response(other)
        wrong.answer.append(dns.rrset.from_text("other.example.", 60, "IN", "A", "6.6.6.6"))
        right = dns.message.make_response(query)
        name = query.question[0].name
        right.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "93.184.215.14"))
        for wire in (data[:2] + b"\x00" * 3, wrong.to_wire(), right.to_wire()):
            self.transport.sendto(wire, addr)


async def test_only_the_reply_to_the_question_asked_is_taken() -> None:
    loop = asyncio.get_running_loop()
    transport, liar = await loop.create_datagram_endpoint(Liar, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    exchanges = exchange.Exchanges("127.0.0.1", port)
    try:
        queries = [dns.message.make_query(f"n{i}.example", "A") for i in range(20)]
        replies = await asyncio.gather(*(exchanges.ask(q, 5.0) for q in queries))
        for query, reply in zip(queries, replies, strict=True):
            assert reply.question == query.question
            assert [rd.address for rd in reply.answer[0]] == ["93.184.215.14"]
        assert len(liar.ports) == 1  # one socket for all of them (20 < MAX_WAITING)
    finally:
        exchanges.close()
        transport.close()
        await asyncio.sleep(0)


async def test_a_socket_is_replaced_after_so_many_queries(monkeypatch: typing.Any) -> None:
    monkeypatch.setattr(exchange, "ROTATE_QUERIES", 3)
    loop = asyncio.get_running_loop()
    transport, liar = await loop.create_datagram_endpoint(Liar, local_addr=("127.0.0.1", 0))
    exchanges = exchange.Exchanges("127.0.0.1", transport.get_extra_info("sockname")[1])
    try:
        for i in range(7):
            await exchanges.ask(dns.message.make_query(f"n{i}.example", "A"), 5.0)
        assert len(liar.ports) == 3  # 3 + 3 + 1
    finally:
        exchanges.close()
        transport.close()
        await asyncio.sleep(0)


async def test_queries_past_max_waiting_go_to_another_socket(monkeypatch: typing.Any) -> None:
    monkeypatch.setattr(exchange, "MAX_WAITING", 4)
    loop = asyncio.get_running_loop()
    transport, liar = await loop.create_datagram_endpoint(
        lambda: Liar(hold=10), local_addr=("127.0.0.1", 0)
    )
    exchanges = exchange.Exchanges("127.0.0.1", transport.get_extra_info("sockname")[1])
    try:
        queries = [dns.message.make_query(f"n{i}.example", "A") for i in range(10)]
        replies = await asyncio.gather(*(exchanges.ask(q, 5.0) for q in queries))
        assert all(r.question == q.question for q, r in zip(queries, replies, strict=True))
        assert len(liar.ports) == 3  # 4 + 4 + 2 in flight at once
    finally:
        exchanges.close()
        transport.close()
        await asyncio.sleep(0)
