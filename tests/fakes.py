"""A small Modbus TCP server written from the spec, independent of pymodbus and of our simulators.

It answers FC1-4 from per-unit tables and can misbehave on request: stay silent, send garbage, answer
with an exception code or with fewer registers than asked. Real sockets on a loopback port.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

TABLE_OF_FC = {1: "coil", 2: "discrete_input", 3: "holding_register", 4: "input_register"}


@dataclass
class Unit:
    tables: dict[str, dict[int, int]] = field(default_factory=dict)
    mode: str = "ok"  # ok | silent | garbage | exception | short | tid0 (answers transaction id 0)
    requests: int = 0

    def set(self, table: str, address: int, values: list[int]) -> None:
        t = self.tables.setdefault(table, {})
        for i, v in enumerate(values):
            t[address + i] = v


class RawModbusServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.units: dict[int, Unit] = {}
        self.function_codes: list[int] = []  # every function code received, for "read-only" checks
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def unit(self, unit_id: int) -> Unit:
        return self.units.setdefault(unit_id, Unit())

    async def start(self) -> RawModbusServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RawModbusServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _pid, length, unit_id = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                fc = pdu[0]
                self.function_codes.append(fc)
                reply = self._answer(unit_id, fc, pdu)
                if reply is None:
                    continue
                if reply.startswith(b"GARBAGE"):
                    writer.write(b"\x13\x37garbage")
                else:
                    answer_tid = 0 if self.units.get(unit_id, Unit()).mode == "tid0" else tid
                    writer.write(struct.pack(">HHHB", answer_tid, 0, len(reply) + 1, unit_id) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # client went away, or the server is shutting down
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, unit_id: int, fc: int, pdu: bytes) -> bytes | None:
        unit = self.units.get(unit_id)
        if unit is None:
            return bytes([fc | 0x80, 0x0B])  # gateway target device failed to respond
        unit.requests += 1
        if unit.mode == "silent":
            return None
        if unit.mode == "garbage":
            return b"GARBAGE"
        if unit.mode == "exception" or fc not in TABLE_OF_FC:
            return bytes([fc | 0x80, 0x02 if fc in TABLE_OF_FC else 0x01])
        address, count = struct.unpack(">HH", pdu[1:5])
        table = unit.tables.get(TABLE_OF_FC[fc], {})
        values = [table.get(address + i, 0) for i in range(count)]
        if unit.mode == "short" and fc in (3, 4):
            values = values[: max(0, count - 1)]
        if fc in (1, 2):
            data = bytearray((len(values) + 7) // 8 - (1 if unit.mode == "short" else 0))
            for i, v in enumerate(values):
                if v and i // 8 < len(data):
                    data[i // 8] |= 1 << (i % 8)
            return bytes([fc, len(data)]) + bytes(data)
        return bytes([fc, 2 * len(values)]) + struct.pack(f">{len(values)}H", *values)
