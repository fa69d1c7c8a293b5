"""Tests of the simulators and of `pumpwatch.core.hydraulics`. Shared helpers (not fixtures) live here."""

from __future__ import annotations

import asyncio
import struct
from functools import lru_cache
from pathlib import Path

from pumpwatch.core.config.loader import Fleet, load_fleet
from pumpwatch.core.config.models import StationConfig
from tests.services import free_port

DEMO_FLEET = Path(__file__).resolve().parents[2] / "deploy" / "config" / "demo"
MIXED_FLEET = Path(__file__).resolve().parent / "fleets" / "mixed"  # one station of every kind, an RTU


def on_free_ports(fleet: Fleet) -> Fleet:
    """`fleet` with every Modbus controller moved to a free loopback port."""
    fleet.controllers = {
        cid: c.model_copy(update={"port": free_port(), "host": "127.0.0.1"}) if hasattr(c, "port") else c
        for cid, c in fleet.controllers.items()
    }
    return fleet


def demo_fleet_on_free_ports() -> Fleet:
    """The demo fleet with every controller moved to a free loopback port."""
    return on_free_ports(load_fleet(DEMO_FLEET))


def mixed_fleet_on_free_ports() -> Fleet:
    """tests/simulators/fleets/mixed with every Modbus controller on a free loopback port, and no broker:
    a test that wants its MQTT devices sets `fleet.mqtt` from the `mqtt_broker` fixture (never the machine's
    own broker, which other test runs share)."""
    fleet = on_free_ports(load_fleet(MIXED_FLEET))
    fleet.mqtt = None
    return fleet


@lru_cache  # read-only
def mixed_fleet() -> Fleet:
    return load_fleet(MIXED_FLEET)


def mixed_station(station_id: str) -> StationConfig:
    return mixed_fleet().stations[station_id]


@lru_cache  # read-only: tests that change a fleet load their own
def demo_fleet() -> Fleet:
    return load_fleet(DEMO_FLEET)


def station_config(station_id: str = "KITA-MP-01") -> StationConfig:
    """A station of the demo fleet (KITA-MP-01 is MPS-REF of docs/domain.md §1.2)."""
    return demo_fleet().stations[station_id]


async def settle(rounds: int = 5) -> None:
    """Let woken tasks run (after `FakeClock.advance`)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


# --- decoding words by hand (independent of simulators.registers and of the collector) ----------------------


def s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def u32(hi: int, lo: int) -> int:
    return hi << 16 | lo


def f32_abcd(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0]


def _words_value(words: list[int], spec, word_order: str) -> float | int | bool | None:
    """One point from its raw words, written from the Modbus conventions (docs/domain.md §2.3)."""
    if spec.bit is not None:
        return bool(words[0] >> spec.bit & 1)
    if len(words) == 2:
        (a, b), (c, d) = divmod(words[0], 256), divmod(words[1], 256)
        raw_bytes = {
            "ABCD": bytes([a, b, c, d]),
            "CDAB": bytes([c, d, a, b]),
            "BADC": bytes([b, a, d, c]),
            "DCBA": bytes([d, c, b, a]),
        }[word_order]
        raw = struct.unpack(">I", raw_bytes)[0]
    else:
        raw = words[0]
    if spec.not_available is not None and raw == spec.not_available:
        return None
    if spec.type == "float32":
        value = struct.unpack(">f", struct.pack(">I", raw))[0]
    elif spec.type == "int16":
        value = s16(raw)
    elif spec.type == "int32":
        value = raw - (1 << 32) if raw & 0x8000_0000 else raw
    else:
        value = raw
    return value * spec.scale + spec.offset


async def read_unit(client, register_map, unit_id: int) -> dict[str, float | int | bool | None]:
    """Read every table a register map uses (one request per table) and decode every point by hand."""
    rmap = register_map
    ends: dict[str, int] = {}
    for p in rmap.points:
        ends[p.table] = max(ends.get(p.table, 0), rmap.wire_address(p) + p.width)
    tables: dict[str, list] = {}
    for table, n in ends.items():
        call = {
            "coil": client.read_coils,
            "discrete_input": client.read_discrete_inputs,
            "holding_register": client.read_holding_registers,
            "input_register": client.read_input_registers,
        }[table]
        r = await call(0, count=n, device_id=unit_id)
        assert not r.isError(), (table, r)
        tables[table] = r.bits if table in ("coil", "discrete_input") else r.registers
    out: dict[str, float | int | bool | None] = {}
    for p in rmap.points:
        a = rmap.wire_address(p)
        if p.table in ("coil", "discrete_input"):
            out[p.name] = bool(tables[p.table][a])
        else:
            out[p.name] = _words_value(tables[p.table][a : a + p.width], p, rmap.point_word_order(p))
    return out


def assert_decodes_to(decoded: dict, values: dict, register_map) -> None:
    """Every point read over the wire equals the model's value, to the map's resolution."""
    for p in register_map.points:
        got, want = decoded[p.name], values.get(p.name)
        if p.is_state:
            assert got is bool(want), (p.name, got, want)
        elif want is None:
            assert got is None if p.not_available is not None else got == 0, (p.name, got)
        elif p.type == "float32":
            assert abs(got - want) <= 1e-6 * max(1.0, abs(want)), (p.name, got, want)
        else:
            assert abs(got - want) <= abs(p.scale) / 2 + 1e-9, (p.name, got, want)
