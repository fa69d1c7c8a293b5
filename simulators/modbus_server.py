"""Serve simulated stations over Modbus TCP with pymodbus's `ModbusTcpServer` and `SimDevice`.

One `ModbusStationServer` is one telemetry unit or gateway: one listening address, one or more unit ids, each
with its register map and a function returning the station's current point values.

Each unit is a `SimDevice` with four separate tables (coils, discrete inputs, holding, input registers), each
sized from the register map to cover every wire address from 0 to the highest one used, gaps included, so a
collector may read across them. Bit tables are packed 16 bits per register, LSB first (pymodbus's layout).
Values are encoded on read: the device's `action` hook, which pymodbus calls on every access, re-encodes the
whole table from the station's `point_values()` before pymodbus slices out the answer. There is no copy loop.

- Writes (FC 5/6/15/16/22/23) are refused with ILLEGAL_FUNCTION: the simulated panel is read-only.
- Addresses outside a table's block get ILLEGAL_ADDRESS (pymodbus); a table the map does not use is one
  invalid register (bit tables cannot be invalid in pymodbus: an unused one reads as 16 zero bits).
- Unknown unit ids get GATEWAY_NO_RESPONSE (0x0B), as a real gateway answers for an absent unit, from a
  catch-all device with id 0 (unless a unit really has id 0: then pymodbus answers DEVICE_FAILURE).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from pumpwatch.core.config.models import RegisterMap
from pumpwatch.simulators.registers import PointValue, encode_points, pack_bits, table_sizes

__all__ = ["ModbusStationServer", "UnitSpec", "build_device"]

log = logging.getLogger(__name__)

PointSource = Callable[[], Mapping[str, PointValue]]
WRITE_FUNCTION_CODES = frozenset({5, 6, 15, 16, 22, 23})
_FC_TABLE = {1: "coil", 2: "discrete_input", 3: "holding_register", 4: "input_register"}
_TUPLE_ORDER = ("coil", "discrete_input", "holding_register", "input_register")  # SimDevice's tuple order


@dataclass(frozen=True)
class UnitSpec:
    """One unit id behind a Modbus TCP address: its register map and where its values come from."""

    unit_id: int
    register_map: RegisterMap
    values: PointSource


def _blocks(sizes: Mapping[str, int]) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    out: list[list[SimData]] = []
    for table in _TUPLE_ORDER:
        n = sizes.get(table, 0)
        if table in ("coil", "discrete_input"):
            n_bits = max(16, -(-n // 16) * 16)
            out.append([SimData(0, count=n_bits, values=False, datatype=DataType.BITS)])
        elif n:
            out.append([SimData(0, count=n, values=0, datatype=DataType.REGISTERS)])
        else:
            out.append([SimData(0, count=1, datatype=DataType.INVALID)])
    return out[0], out[1], out[2], out[3]


def build_device(unit: UnitSpec) -> SimDevice:
    """A `SimDevice` serving `unit`, encoding its current values on every read and refusing writes."""
    rmap = unit.register_map
    sizes = table_sizes(rmap)
    # A poll reads several blocks of one instant: encode the values once, again only when they change.
    last: list = [None, None]  # [values, their encoding]

    async def action(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None or function_code in WRITE_FUNCTION_CODES:
            log.debug("unit %d: refused write FC%d at %d", unit.unit_id, function_code, address)
            return ExcCodes.ILLEGAL_FUNCTION
        table = _FC_TABLE.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        n = sizes[table]
        if n == 0:
            return None
        values = unit.values()
        if values != last[0]:
            last[0], last[1] = dict(values), encode_points(rmap, values)  # a copy: callers may reuse a dict
        encoded = last[1][table]
        # `registers` is the table's whole block from `start_address` (0 here: every block starts at wire
        # address 0); its last entry is pymodbus's end marker, left alone.
        if table in ("coil", "discrete_input"):
            n_words = -(-n // 16)
            registers[0:n_words] = pack_bits(encoded, n_words)
        else:
            words = [0] * n
            for addr, word in encoded.items():
                words[addr] = word
            registers[0:n] = words
        return None

    return SimDevice(id=unit.unit_id, simdata=_blocks(sizes), action=action)


def _catch_all(units: Sequence[UnitSpec]) -> SimDevice:
    sizes: dict[str, int] = {}
    for u in units:
        for table, n in table_sizes(u.register_map).items():
            sizes[table] = max(sizes.get(table, 0), n)

    async def action(*_: object) -> ExcCodes:
        return ExcCodes.GATEWAY_NO_RESPONSE

    return SimDevice(id=0, simdata=_blocks(sizes), action=action)


class ModbusStationServer:
    """A listening Modbus TCP endpoint for some units. `start()` binds, `stop()` closes it and its clients."""

    def __init__(self, host: str, port: int, units: Sequence[UnitSpec], *, name: str = "") -> None:
        if not units:
            raise ValueError("a Modbus server needs at least one unit")
        ids = [u.unit_id for u in units]
        if len(set(ids)) != len(ids):
            raise ValueError(f"unit ids must be unique: {ids}")
        self.host = host
        self.port = port
        self.units = list(units)
        self.name = name or f"{host}:{port}"
        self._server: ModbusTcpServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when constructed with port 0)."""
        if self._server is not None and self._server.transport is not None:
            sockets = getattr(self._server.transport, "sockets", None)
            if sockets:
                host, port = sockets[0].getsockname()[:2]
                return host, port
        return self.host, self.port

    async def start(self) -> None:
        if self._server is not None:
            return
        devices = [build_device(u) for u in self.units]
        if all(u.unit_id != 0 for u in self.units):
            devices.append(_catch_all(self.units))
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        await server.serve_forever(background=True)  # raises RuntimeError if the address cannot be bound
        self._server = server
        log.info(
            "modbus server %s listening on %s:%d, units %s",
            self.name,
            *self.address,
            [u.unit_id for u in self.units],
        )

    async def stop(self) -> None:
        """Stop listening and drop every open client connection."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.shutdown()
        log.info("modbus server %s stopped", self.name)
