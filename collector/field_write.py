"""Writing one value to the field, with a read-back: the only place the collector sends a Modbus write.

Only for a station whose configuration says `write_enabled: true`, only to a holding register holding a
16-bit value (int16/uint16, no bit field) or to a coil, and only when asked by the API's confirmed write
(engineer role, a second confirmation within 60 s, audit record first: `api/routes/field_writes.py`).
The write and its read-back share the link's lock with polling, so requests never interleave. What may be
written, and how a value becomes a register word, is the fleet's rule (pumpwatch/core/writable.py): the API
checks it before a write is even confirmed, in a process that may run no collector.
"""

from __future__ import annotations

from pymodbus.exceptions import ModbusException

from pumpwatch.collector.sources.modbus import ModbusSource
from pumpwatch.core.config import Fleet
from pumpwatch.core.writable import WriteError, from_raw, to_raw, writable_spec


class FieldWriter:
    """`await writer(station, point, value)` → the value read back after writing."""

    def __init__(self, fleet: Fleet, sources: list[ModbusSource]) -> None:
        self.fleet = fleet
        self.sources = {s.ctrl.id: s for s in sources}

    async def __call__(self, station: str, point: str, value: float) -> float:
        spec = writable_spec(self.fleet, station, point)
        sp = self.fleet.points[station][point]
        source = self.sources.get(sp.controller)
        if source is None:
            raise WriteError(503, f"controller {sp.controller} is not polled by this process")
        raw = to_raw(spec, value)
        unit = sp.unit_id
        assert unit is not None and sp.register_map is not None  # a Modbus point (writable_spec says so)
        # the same translation as the read plan's: `address` is in the map's address_base
        address = sp.register_map.wire_address(spec)
        try:
            if not await source._ensure_connected():
                raise WriteError(502, f"cannot connect to {source.ctrl.host}:{source.ctrl.port}")
            async with source.io_lock:
                client = source._client
                assert client is not None
                if spec.table == "coil":
                    rr = await client.write_coil(address, bool(raw), device_id=unit)
                else:
                    rr = await client.write_register(address, raw, device_id=unit)
                if rr.isError():
                    raise WriteError(502, f"the device refused the write (exception {rr.exception_code})")
                if spec.table == "coil":
                    back = await client.read_coils(address, count=1, device_id=unit)
                    got = None if back.isError() else int(back.bits[0])
                else:
                    back = await client.read_holding_registers(address, count=1, device_id=unit)
                    got = None if back.isError() or len(back.registers) != 1 else back.registers[0]
        except (ModbusException, TimeoutError, OSError) as exc:
            source._close()
            raise WriteError(502, f"write to {station}/{point} failed: {type(exc).__name__}: {exc}") from None
        if got is None:
            raise WriteError(502, "the read-back failed")
        read_back = from_raw(spec, got)
        if got != raw:
            raise WriteError(502, f"read back {read_back:g}, wrote {from_raw(spec, raw):g}")
        return read_back
