"""The floor: a minimal raw-asyncio Modbus TCP client (FC3, one request in flight per connection),
polling N connections at the same pace and with the same blocks as the collector, decoding the words
with `struct` and handing them to a sink. What pumpwatch's collector is compared with."""

from __future__ import annotations

import asyncio
import struct
import time


class _Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.tid = 0

    def connection_made(self, transport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= 9:
            length = struct.unpack_from(">H", self.buf, 4)[0]
            if len(self.buf) >= 6 + length:
                frame, self.buf = self.buf[: 6 + length], self.buf[6 + length :]
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(frame)

    async def read(self, unit: int, start: int, count: int) -> tuple[int, ...]:
        self.tid = (self.tid + 1) & 0xFFFF
        self.waiter = asyncio.get_running_loop().create_future()
        self.t.write(struct.pack(">HHHBBHH", self.tid, 0, 6, unit, 3, start, count))
        async with asyncio.timeout(2.0):  # (3.11's wait_for can swallow a cancellation)
            frame = await self.waiter
        return struct.unpack_from(f">{count}h", frame, 9)


class FloorStats:
    def __init__(self) -> None:
        self.polls = 0
        self.late = 0


async def poll_forever(port: int, interval: float, offset: float, stats: FloorStats, sink) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(offset)  # staggered, like the collector's sources
    _, proto = await loop.create_connection(_Client, "127.0.0.1", port)
    next_at = time.monotonic()
    while True:
        words = await proto.read(1, 0, 20)
        sink(words)
        stats.polls += 1
        next_at += interval
        now = time.monotonic()
        if next_at < now:
            stats.late += 1
            next_at = now + interval - ((now - next_at) % interval)
        await asyncio.sleep(next_at - now)
