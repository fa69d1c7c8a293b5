"""Recording TCP proxies on loopback: what the collector really sends to the field.

`ModbusTap` sits between the collector and a Modbus TCP server and parses every request frame the client
sends (MBAP header: transaction id, protocol id, length, unit id; then the PDU's function code).
`MqttTap` sits between the collector and the broker and parses every MQTT control packet the client sends
(fixed header, remaining length; for PUBLISH the topic and payload). Bytes are forwarded unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass

from tests.services import free_port

MODBUS_WRITES = {5, 6, 15, 16, 22, 23}  # write coil(s)/register(s), mask write, read/write multiple


class _Tap:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self.errors: list[str] = []

    async def __aenter__(self):
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        await self._server.wait_closed()

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(*self.upstream)
        except OSError:
            cw.close()
            return
        parser = self.parser()
        up = asyncio.create_task(self._pipe(cr, uw, parser))
        down = asyncio.create_task(self._pipe(ur, cw, None))
        self._tasks |= {up, down}
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (up, down):
                t.cancel()
                self._tasks.discard(t)
            for w in (cw, uw):
                w.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, parser) -> None:
        while data := await r.read(65536):
            if parser is not None:
                parser.send(data)
            w.write(data)
            await w.drain()

    def parser(self):
        gen = self._parse()
        next(gen)
        return gen

    def _parse(self):
        raise NotImplementedError


@dataclass
class ModbusFrame:
    transaction: int
    protocol: int
    unit: int
    function: int


class ModbusTap(_Tap):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.frames: list[ModbusFrame] = []

    def functions(self) -> Counter[int]:
        return Counter(f.function for f in self.frames)

    def _parse(self):
        buf = b""
        while True:
            buf += yield
            while len(buf) >= 8:
                tid, pid, length = (
                    int.from_bytes(buf[0:2]),
                    int.from_bytes(buf[2:4]),
                    int.from_bytes(buf[4:6]),
                )
                if length < 2 or len(buf) < 6 + length:
                    if length < 2:
                        self.errors.append(f"bad MBAP length {length}")
                        buf = b""
                    break
                self.frames.append(ModbusFrame(tid, pid, buf[6], buf[7]))
                buf = buf[6 + length :]


@dataclass
class MqttPacket:
    kind: int  # 1 CONNECT, 3 PUBLISH, 8 SUBSCRIBE, …
    topic: str | None = None
    payload: bytes = b""
    will_topic: str | None = None


class MqttTap(_Tap):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.packets = []

    def publishes(self) -> list[MqttPacket]:
        return [p for p in self.packets if p.kind == 3]

    def _parse(self):
        buf = b""
        while True:
            buf += yield
            while (head := _remaining(buf)) is not None and len(buf) >= head[1] + head[0]:
                n, i = head
                kind, flags, body = buf[0] >> 4, buf[0] & 0x0F, buf[i : i + n]
                buf = buf[i + n :]
                if kind == 3:
                    tl = int.from_bytes(body[0:2])
                    topic = body[2 : 2 + tl].decode("utf-8", "replace")
                    rest = body[2 + tl :]
                    if (flags >> 1) & 3:  # QoS > 0: a packet identifier
                        rest = rest[2:]
                    self.packets.append(MqttPacket(3, topic, rest))
                elif kind == 1:
                    self.packets.append(MqttPacket(1, will_topic=_will_topic(body)))
                else:
                    self.packets.append(MqttPacket(kind))


def _remaining(buf: bytes) -> tuple[int, int] | None:
    """(remaining length, fixed header length), or None while the header is incomplete."""
    mult, n = 1, 0
    for i in range(1, min(len(buf), 5)):
        n += (buf[i] & 0x7F) * mult
        mult *= 128
        if not buf[i] & 0x80:
            return n, i + 1
    return None


def _will_topic(body: bytes) -> str | None:
    """CONNECT (MQTT 3.1.1): protocol name, level, flags, keepalive, client id, then the will topic."""
    pl = int.from_bytes(body[0:2])
    flags = body[2 + pl + 1]
    p = 2 + pl + 4
    cl = int.from_bytes(body[p : p + 2])
    p += 2 + cl
    if not flags & 0x04:
        return None
    wl = int.from_bytes(body[p : p + 2])
    return body[p + 2 : p + 2 + wl].decode("utf-8", "replace")
