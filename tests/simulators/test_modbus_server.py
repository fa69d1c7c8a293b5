"""The Modbus TCP adapter on its own: a hand-made map, a dict of values, a real loopback socket."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from pumpwatch.core.config.models import PointSpec, RegisterMap
from pumpwatch.simulators.modbus_server import ModbusStationServer, UnitSpec
from tests.simulators import settle

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, GATEWAY_NO_RESPONSE = 1, 2, 0x0B

MAP = RegisterMap(
    name="test-map",
    word_order="ABCD",
    points=[
        PointSpec(name="alarm_a", table="discrete_input", address=0, type="bool"),
        PointSpec(name="alarm_b", table="discrete_input", address=17, type="bool"),  # second packed word
        PointSpec(name="level", table="input_register", address=0, type="int16", scale=0.01),
        PointSpec(name="flow", table="input_register", address=10, type="float32", word_order="CDAB"),
        PointSpec(name="hours", table="input_register", address=20, type="uint32"),
        PointSpec(name="dry_run", table="holding_register", address=3, type="bool", bit=4),
        PointSpec(name="high_water", table="holding_register", address=3, type="bool", bit=15),
        PointSpec(name="remote_run", table="coil", address=2, type="bool"),
    ],
)


@pytest.fixture
async def served(port: int) -> AsyncIterator[tuple[dict, dict, ModbusStationServer, AsyncModbusTcpClient]]:
    a = {"alarm_a": True, "alarm_b": True, "level": 1.23, "flow": 123456.0, "hours": 70000,
         "dry_run": True, "high_water": False, "remote_run": True}  # fmt: skip
    b = {**a, "level": -0.05, "alarm_a": False}
    server = ModbusStationServer(
        "127.0.0.1", port, [UnitSpec(1, MAP, lambda: a), UnitSpec(7, MAP, lambda: b)], name="test"
    )
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        yield a, b, server, client
    finally:
        client.close()
        await server.stop()


async def test_registers_bits_and_gaps(served):
    a, _, _, c = served
    r = await c.read_input_registers(0, count=22, device_id=1)
    assert not r.isError()
    words = r.registers
    assert words[0] == 123
    assert words[1:10] == [0] * 9  # the gap reads as zeros
    assert words[10:12] == [0x2000, 0x47F1]  # 123456.0, CDAB
    assert words[20:22] == [0x0001, 0x1170]  # 70000, ABCD
    r = await c.read_discrete_inputs(0, count=18, device_id=1)
    assert r.bits[0] is True and r.bits[17] is True and not any(r.bits[1:17])
    r = await c.read_holding_registers(3, count=1, device_id=1)
    assert r.registers == [1 << 4]
    r = await c.read_coils(0, count=3, device_id=1)
    assert r.bits[:3] == [False, False, True]


async def test_values_are_encoded_on_every_read(served):
    a, _, _, c = served
    assert (await c.read_input_registers(0, count=1, device_id=1)).registers == [123]
    a["level"] = 2.5
    a["high_water"] = True
    a["flow"] = 5.0
    assert (await c.read_input_registers(0, count=1, device_id=1)).registers == [250]
    assert (await c.read_holding_registers(3, count=1, device_id=1)).registers == [(1 << 4) | (1 << 15)]
    words = (await c.read_input_registers(10, count=2, device_id=1)).registers
    assert struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0] == 5.0


async def test_two_units_behind_one_address(served):
    _, _, _, c = served
    one = await c.read_input_registers(0, count=1, device_id=1)
    seven = await c.read_input_registers(0, count=1, device_id=7)
    assert one.registers == [123] and seven.registers == [0xFFFB]
    assert (await c.read_discrete_inputs(0, count=1, device_id=7)).bits[0] is False


async def test_unknown_unit_and_addresses(served):
    _, _, _, c = served
    r = await c.read_input_registers(0, count=1, device_id=3)
    assert r.isError() and r.exception_code == GATEWAY_NO_RESPONSE
    r = await c.read_input_registers(21, count=2, device_id=1)  # past the last register (21)
    assert r.isError() and r.exception_code == ILLEGAL_ADDRESS
    r = await c.read_holding_registers(0, count=4, device_id=1)
    assert not r.isError()


async def test_writes_are_refused(served):
    a, _, _, c = served
    for call in (
        c.write_register(3, 0, device_id=1),
        c.write_registers(0, [1, 2], device_id=1),
        c.write_coil(2, False, device_id=1),
        c.write_coils(0, [True, True], device_id=1),
    ):
        r = await call
        assert r.isError() and r.exception_code == ILLEGAL_FUNCTION
    assert (await c.read_holding_registers(3, count=1, device_id=1)).registers == [1 << 4]
    assert (await c.read_coils(2, count=1, device_id=1)).bits[0] is True
    assert a["remote_run"] is True


async def test_stop_drops_clients_and_start_binds_again(served):
    _, _, server, c = served
    assert server.running and server.address[1] == server.port
    await server.stop()
    await settle()
    with pytest.raises(ModbusException):  # the connection was dropped by the server
        await c.read_input_registers(0, count=1, device_id=1)
    fresh = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0, reconnect_delay=0)
    assert not await fresh.connect()
    fresh.close()
    await server.start()
    again = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0, reconnect_delay=0)
    assert await again.connect()
    assert (await again.read_input_registers(0, count=1, device_id=1)).registers == [123]
    again.close()


async def test_port_zero_reports_the_bound_port():
    server = ModbusStationServer("127.0.0.1", 0, [UnitSpec(1, MAP, dict)])
    await server.start()
    try:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        c = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
        assert await c.connect()
        assert (await c.read_input_registers(0, count=1, device_id=1)).registers == [0]  # no values: zeros
        c.close()
    finally:
        await server.stop()
    await asyncio.sleep(0)


def test_unit_ids_must_be_unique():
    with pytest.raises(ValueError):
        ModbusStationServer("127.0.0.1", 1502, [UnitSpec(1, MAP, dict), UnitSpec(1, MAP, dict)])
    with pytest.raises(ValueError):
        ModbusStationServer("127.0.0.1", 1502, [])
