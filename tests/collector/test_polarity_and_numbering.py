"""Device polarity and vendor numbering as data (issue 12): a panel documented in Modicon notation
(10001, 30001, 40001, coil 1) that reports `MAINS OK` (1 = mains present) is configured only through the
map format (`address_base: modicon`, `invert: true`) and read over a real Modbus TCP socket from a server
written from the spec (tests/fakes.py, not pymodbus). Reads land on the right wire addresses (the server
answers distinct values around them), the inverted bit raises `power_failure` when mains is lost and not
while it is present, `pumps_not_restarted` works from it, and field writes use the same translation."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pumpwatch.app.system import System
from pumpwatch.collector.field_write import FieldWriter
from pumpwatch.collector.fleet import build_modbus_sources
from pumpwatch.core.clock import FakeClock, SystemClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.sample import Quality, Sample
from tests.clocked import poll_step
from tests.conftest import REPO
from tests.fakes import RawModbusServer

RULES = REPO / "deploy" / "config" / "rules" / "alarms.yaml"  # safety.yaml beside it is the catalogue
SID = "ACME-1"
START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)

# The ACME PS-2 panel as its manual lists it: 5-digit Modicon numbers, and a "MAINS OK" input.
ACME_MAP = """\
name: acme-ps2
description: ACME PS-2 pump panel, numbered as in its manual (Modicon)
address_base: modicon
points:
  - {name: mains_failed, table: discrete_input, address: 10001, type: bool, invert: true,
     description: "manual: 10001 MAINS OK (1 = mains present)"}
  - {name: pump1_running, table: discrete_input, address: 10002, type: bool}
  - {name: pump2_running, table: discrete_input, address: 10003, type: bool}
  - {name: pump1_faulted, table: discrete_input, address: 10004, type: bool}
  - {name: pump2_faulted, table: discrete_input, address: 10005, type: bool}
  - {name: hwl_float, table: discrete_input, address: 10006, type: bool}
  - {name: level_sensor_fault, table: discrete_input, address: 10007, type: bool}
  - {name: wet_well_level_m, table: input_register, address: 30001, type: int16, scale: 0.01, unit: m}
  - {name: pump1_current_a, table: input_register, address: 30002, type: int16, scale: 0.1, unit: A}
  - {name: pump2_current_a, table: input_register, address: 30003, type: int16, scale: 0.1, unit: A}
  - {name: stop_level_m, table: holding_register, address: 40001, type: int16, scale: 0.01, unit: m}
  - {name: door_open, table: holding_register, address: 40010, type: bool, bit: 3, invert: true,
     description: "manual: 40010 bit 3 DOOR CLOSED"}
  - {name: pump1_inhibited, table: coil, address: 2, type: bool, invert: true,
     description: "manual: 00002 P1 ENABLE (1 = enabled)"}
"""


def acme_fleet(tmp: Path, port: int, register_map: str = ACME_MAP, write_enabled: bool = False) -> Path:
    """A fleet as an integrator writes it: one station on the ACME panel, the project's alarm rules."""
    (tmp / "maps").mkdir(parents=True)
    (tmp / "maps" / "acme.yaml").write_text(register_map)
    (tmp / "tenants.yaml").write_text("tenants: [{id: kita, name: 北市}]\n")
    (tmp / "stations.yaml").write_text(
        f"""\
stations:
  - id: {SID}
    tenant: kita
    name: ACME 1
    kind: manhole_pump
    write_enabled: {str(write_enabled).lower()}
    wet_well: {{diameter_m: 1.5}}
    levels: {{lwl_m: 0.35, stop_m: 0.5, start_m: 1.0, lag_m: 1.2, hwl_m: 1.4, inlet_invert_m: 1.5,
              spill_m: 3.0}}
    pumps:
      - {{name: pump1, rated_flow_m3_min: 0.5, rated_current_a: 10}}
      - {{name: pump2, rated_flow_m3_min: 0.5, rated_current_a: 10}}
    catchment: {{population: 375}}
"""
    )
    (tmp / "controllers.yaml").write_text(
        f"controllers:\n  - {{id: acme-tu, host: 127.0.0.1, port: {port}, poll_interval_s: 5, timeout_s: 1,\n"
        f"     units: [{{unit_id: 1, station: {SID}, map: acme-ps2}}]}}\n"
    )
    (tmp / "fleet.yaml").write_text(
        "name: acme\ntenants: tenants.yaml\nstations: stations.yaml\ncontrollers: controllers.yaml\n"
        f"register_maps: maps\nalarm_rules: {RULES}\n"
    )
    return tmp


class PanelServer(RawModbusServer):
    """The fake panel, answering distinct values around each right address, and taking writes (FC5/6)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int, int, int]] = []  # (function code, wire address, value)

    def _answer(self, unit_id: int, fc: int, pdu: bytes) -> bytes | None:
        if fc in (5, 6):
            address, value = struct.unpack(">HH", pdu[1:5])
            self.writes.append((fc, address, value))
            table = "coil" if fc == 5 else "holding_register"
            self.unit(unit_id).set(table, address, [int(value == 0xFF00) if fc == 5 else value])
            return pdu[:5]
        return super()._answer(unit_id, fc, pdu)


def panel(mains_ok: bool = True, level_raw: int = 123) -> PanelServer:
    srv = PanelServer()
    u = srv.unit(1)
    #   wire 0..6: MAINS OK, P1/P2 run, P1/P2 fault, HWL float, level sensor fault
    u.set("discrete_input", 0, [int(mains_ok), 0, 0, 0, 0, 0, 0])
    u.set("input_register", 0, [level_raw, 95, 0])  # 1.23 m, 9.5 A, 0 A
    u.set("holding_register", 0, [50, 77])  # stop 0.50 m at wire 0; 77 one register off
    u.set("holding_register", 9, [0b1000])  # 40010: DOOR CLOSED (bit 3)
    u.set("coil", 1, [1])  # 00002: P1 ENABLE
    # What a literal or off-by-one reading would get instead: never these.
    u.set("discrete_input", 10000, [0, 0])
    u.set("input_register", 30000, [999, 888])
    u.set("holding_register", 40000, [4444, 5555])
    return srv


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(self, batch: list[Sample]) -> None:
        self.samples.extend(batch)

    def latest(self) -> dict[str, tuple[float | None, Quality]]:
        return {s.point: (s.value, s.quality) for s in self.samples}


async def test_modicon_numbers_are_read_at_their_wire_addresses_and_inverted_bits_flip(
    tmp_path: Path,
) -> None:
    async with panel() as srv:
        fleet = load_fleet(acme_fleet(tmp_path, srv.port))
        rmap = fleet.register_maps["acme-ps2"]
        assert [rmap.wire_address(p) for p in rmap.points[:1] + rmap.points[7:]] == [0, 0, 1, 2, 0, 9, 1]
        rec = Recorder()
        (src,) = build_modbus_sources(fleet, SystemClock(), rec)
        await src.poll_once()
        got = rec.latest()
        assert got["wet_well_level_m"] == (1.23, Quality.GOOD)
        assert got["pump1_current_a"] == (9.5, Quality.GOOD)
        assert got["stop_level_m"] == (0.5, Quality.GOOD)
        assert got["mains_failed"] == (0.0, Quality.GOOD)  # MAINS OK = 1: mains has not failed
        assert got["door_open"] == (0.0, Quality.GOOD)  # DOOR CLOSED bit set
        assert got["pump1_inhibited"] == (0.0, Quality.GOOD)  # P1 ENABLE = 1
        srv.unit(1).set("discrete_input", 0, [0])  # mains lost: MAINS OK drops to 0
        srv.unit(1).set("holding_register", 9, [0])
        await src.poll_once()
        assert rec.latest()["mains_failed"] == (1.0, Quality.GOOD)
        assert rec.latest()["door_open"] == (1.0, Quality.GOOD)
        assert srv.writes == [] and set(srv.function_codes) <= {1, 2, 3, 4}  # reads only
        src._close()


async def test_an_inverted_mains_ok_raises_power_failure_only_when_mains_is_lost(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Through collector → analyzers → alarm rules, as `pumpwatch run` wires them (coverage required)."""
    clock = FakeClock(START)
    async with panel(mains_ok=True, level_raw=80) as srv:
        fleet = load_fleet(acme_fleet(tmp_path, srv.port))
        system = await System.prepare(fleet, sqlite_url, clock, require_coverage=True)
        assert system.coverage is not None and system.coverage.ok
        sc = system.coverage.stations[SID]
        assert sc.row("power_failure").state == "armed"
        assert sc.row("no_restart_after_power").armed_by[0].points[0] == "mains_failed"
        await system.start_collecting()
        try:

            async def advance(seconds: float) -> list[str]:
                for _ in range(int(seconds // 5)):
                    await poll_step(clock, system.sources, 5)
                await system.alarms.drain()
                return [a["name"] for a in system.alarms.active_by_station().get(SID, []) if a["active"]]

            assert "power_failure" not in await advance(60)  # mains present (MAINS OK = 1) for a minute
            assert system.live.station(SID)["mains_failed"].value == 0.0
            assert system.live.station(SID)["pumps_not_restarted"].quality is Quality.GOOD  # known, not n/a

            srv.unit(1).set("discrete_input", 0, [0])  # the outage; the level rises above start (1.0 m)
            srv.unit(1).set("input_register", 0, [110])
            active = await advance(10)
            assert "power_failure" in active
            assert "pumps_not_restarted" not in active

            srv.unit(1).set("discrete_input", 0, [1])  # mains back, but no pump restarts
            active = await advance(30)
            assert "power_failure" not in active  # cleared after its 10 s off-delay
            assert "pumps_not_restarted" not in active  # still within the 60 s restart grace
            active = await advance(60)
            assert "pumps_not_restarted" in active, active
        finally:
            await system.stop()


DOC_MAP = """\
name: acme-ps2
address_base: {base}
points:
  - {{name: stop_level_m, table: holding_register, address: {hr}, type: int16, scale: 0.01, unit: m}}
  - {{name: start_level_m, table: holding_register, address: {hr2}, type: int16, scale: 0.01, unit: m}}
  - {{name: pump1_inhibited, table: coil, address: {coil}, type: bool, invert: true}}
"""


@pytest.mark.parametrize(
    ("base", "hr", "coil"), [(0, 0, 1), (1, 1, 2), ("modicon", 40001, 2)], ids=["wire", "base1", "modicon"]
)
async def test_field_writes_use_the_same_address_translation_as_reads(
    tmp_path: Path, base: object, hr: int, coil: int
) -> None:
    """Holding register `hr` is wire 0 and coil `coil` is wire 1 in each notation (the latent bug: a
    write went to `address` itself, one register off under address_base 1)."""
    async with panel() as srv:
        text = DOC_MAP.format(base=base, hr=hr, hr2=hr + 1, coil=coil)
        fleet = load_fleet(acme_fleet(tmp_path, srv.port, register_map=text, write_enabled=True))
        sources = build_modbus_sources(fleet, SystemClock(), lambda batch: None)
        write = FieldWriter(fleet, sources)
        assert await write(SID, "stop_level_m", 0.45) == pytest.approx(0.45)
        assert srv.writes == [(6, 0, 45)]
        assert srv.unit(1).tables["holding_register"][1] == 77  # its neighbour untouched
        # an inverted coil: "inhibited" true is ENABLE = 0 on the wire, read back as true
        assert await write(SID, "pump1_inhibited", 1) == 1.0
        assert srv.writes[-1] == (5, 1, 0x0000)
        rec = Recorder()
        (src,) = build_modbus_sources(fleet, SystemClock(), rec)
        await src.poll_once()
        assert rec.latest()["stop_level_m"] == (0.45, Quality.GOOD)  # the read sees what was written
        assert rec.latest()["start_level_m"] == (0.77, Quality.GOOD)
        assert rec.latest()["pump1_inhibited"] == (1.0, Quality.GOOD)
        for s in (*sources, src):
            s._close()


async def test_the_simulator_serves_an_inverted_modicon_map_as_the_device_would(tmp_path: Path) -> None:
    """simulators/ encodes from the same map (independently of the collector): mains failed is MAINS OK = 0
    at wire 0, and the collector reads it back as mains_failed through pymodbus's server."""
    from pumpwatch.simulators.modbus_server import ModbusStationServer, UnitSpec
    from pumpwatch.simulators.registers import encode_points

    fleet = load_fleet(acme_fleet(tmp_path, 1))
    rmap = fleet.register_maps["acme-ps2"]
    values = {"mains_failed": True, "door_open": False, "wet_well_level_m": 1.5, "pump1_inhibited": True}
    enc = encode_points(rmap, values)
    assert enc["discrete_input"] == {0: 0} and enc["coil"] == {1: 0}
    assert enc["holding_register"] == {9: 0b1000} and enc["input_register"] == {0: 150}
    server = ModbusStationServer("127.0.0.1", 0, [UnitSpec(1, rmap, lambda: values)])
    await server.start()
    try:
        port = server.address[1]
        fleet = load_fleet(acme_fleet(tmp_path / "b", port))
        rec = Recorder()
        (src,) = build_modbus_sources(fleet, SystemClock(), rec)
        await src.poll_once()
        got = rec.latest()
        assert got["mains_failed"] == (1.0, Quality.GOOD) and got["door_open"] == (0.0, Quality.GOOD)
        assert got["wet_well_level_m"] == (1.5, Quality.GOOD) and got["pump1_inhibited"] == (
            1.0,
            Quality.GOOD,
        )
        src._close()
    finally:
        await server.stop()
