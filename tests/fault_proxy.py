"""A loopback TCP proxy with faults ("toxics"), for tests of links that misbehave over time.

Debian has no packaged Toxiproxy, so this is a small asyncio one. Settings apply to every connection, in
both directions, from the moment they are changed:

- `latency_s` ± `jitter_s`: each chunk is delivered that much later (order kept, as TCP does);
- `slice_bytes` / `slice_delay_s`: chunks are cut into slices of that many bytes, sent that far apart
  (a Modbus answer arriving in pieces);
- `black_hole`: data is swallowed in both directions, connections stay open, new ones are accepted and
  swallowed too (a link that silently stops passing anything, a dead radio hop);
- `reset()`: every open connection is reset (RST) now; `refuse`: new connections are reset at once.

`stats` counts connections, resets and bytes, so a test can say what the link went through.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass

from tests.services import free_port


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    bytes_up: int = 0  # client → server
    bytes_down: int = 0
    swallowed: int = 0  # bytes dropped in a black hole


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, seed: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.latency_s = 0.0
        self.jitter_s = 0.0
        self.slice_bytes = 0  # 0: whole chunks
        self.slice_delay_s = 0.0
        self.black_hole = False
        self.refuse = False
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.reset()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def clear(self) -> None:
        """No faults from now on."""
        self.latency_s = self.jitter_s = self.slice_delay_s = 0.0
        self.slice_bytes = 0
        self.black_hole = self.refuse = False

    def reset(self) -> None:
        for w in list(self._conns):
            w.transport.abort()
        if self._conns:
            self.stats.resets += 1
        self._conns.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.stats.connections += 1
        self._conns.update((writer, up_w))
        tasks = [
            asyncio.create_task(self._pipe(reader, up_w, up=True)),
            asyncio.create_task(self._pipe(up_r, writer, up=False)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            self._conns.discard(writer)
            self._conns.discard(up_w)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, *, up: bool) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while (item := await queue.get()) is not None:
                    at, data = item
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    n = self.slice_bytes or len(data)
                    for i in range(0, len(data), n):
                        if i and self.slice_delay_s:
                            await asyncio.sleep(self.slice_delay_s)
                        w.write(data[i : i + n])
                        await w.drain()
            w.transport.abort()

        sender = asyncio.create_task(deliver())
        last = 0.0
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
                while data := await r.read(65536):
                    if self.black_hole:
                        self.stats.swallowed += len(data)
                        continue
                    if up:
                        self.stats.bytes_up += len(data)
                    else:
                        self.stats.bytes_down += len(data)
                    delay = self.latency_s + (
                        self._rng.uniform(-1, 1) * self.jitter_s if self.jitter_s else 0
                    )
                    last = max(last, time.monotonic() + max(0.0, delay))
                    queue.put_nowait((last, data))
        finally:
            queue.put_nowait(None)
            await asyncio.gather(sender, return_exceptions=True)
