"""ModbusSource over real loopback sockets against an independent Modbus server (tests/fakes.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pumpwatch.collector.registers import build_read_plan
from pumpwatch.collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config.models import ControllerConfig, RegisterMap
from pumpwatch.core.sample import Quality, Sample
from tests.fakes import RawModbusServer
from tests.services import free_port

MAP = RegisterMap.model_validate(
    {
        "name": "test-map",
        "points": [
            {"name": "mains_failed", "table": "discrete_input", "address": 0, "type": "bool"},
            {"name": "pump1_running", "table": "discrete_input", "address": 1, "type": "bool"},
            {
                "name": "wet_well_level_m",
                "table": "input_register",
                "address": 0,
                "type": "int16",
                "scale": 0.01,
            },
            {
                "name": "pump1_current_a",
                "table": "input_register",
                "address": 1,
                "type": "int16",
                "scale": 0.1,
            },
            {"name": "pump1_run_hours_h", "table": "input_register", "address": 4, "type": "uint32"},
            {
                "name": "flow_m3_min",
                "table": "input_register",
                "address": 100,
                "type": "float32",
                "word_order": "CDAB",
            },
        ],
    }
)
PLAN = build_read_plan(MAP)


def fill(server: RawModbusServer, unit_id: int, level_raw: int = 123) -> None:
    u = server.unit(unit_id)
    u.set("discrete_input", 0, [1, 0])
    u.set("input_register", 0, [level_raw, 95, 0, 0, 0x0001, 0x1170])
    u.set("input_register", 100, [0x0000, 0x40A0])  # 5.0 as CDAB


def controller(port: int, units: list[int], **kw) -> ControllerConfig:
    return ControllerConfig.model_validate(
        {
            "id": f"c{port}",
            "host": "127.0.0.1",
            "port": port,
            "poll_interval_s": kw.pop("poll_interval_s", 1.0),
            "timeout_s": kw.pop("timeout_s", 0.3),
            "comm_loss_after": kw.pop("comm_loss_after", 3),
            "reconnect_max_s": kw.pop("reconnect_max_s", 1.0),
            "units": [{"unit_id": u, "station": f"S{u}", "map": "test-map"} for u in units],
        }
    )


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(self, batch: list[Sample]) -> None:
        self.samples.extend(batch)

    def latest(self, station: str) -> dict[str, Sample]:
        return {s.point: s for s in self.samples if s.station == station}


def source(ctrl: ControllerConfig, rec: Recorder) -> ModbusSource:
    units = [UnitPlan(u.unit_id, u.station, PLAN) for u in ctrl.units]
    return ModbusSource(ctrl, units, SystemClock(), rec)


async def test_values_decode_to_the_maps_resolution() -> None:
    async with RawModbusServer() as srv:
        fill(srv, 1)
        rec = Recorder()
        src = source(controller(srv.port, [1]), rec)
        await src.poll_once()
        got = rec.latest("S1")
        assert {k: (v.value, v.quality) for k, v in got.items()} == {
            "mains_failed": (1.0, Quality.GOOD),
            "pump1_running": (0.0, Quality.GOOD),
            "wet_well_level_m": (1.23, Quality.GOOD),
            "pump1_current_a": (9.5, Quality.GOOD),
            "pump1_run_hours_h": (70000.0, Quality.GOOD),
            "flow_m3_min": (5.0, Quality.GOOD),
        }
        # one request per block: DI 0..1, IR 0..5, IR 100..101
        assert srv.unit(1).requests == 3
        assert set(srv.function_codes) == {2, 4}  # read-only: no write function code ever sent
        src._close()


async def test_dead_station_turns_comm_loss_after_configured_misses() -> None:
    rec = Recorder()
    src = source(controller(free_port(), [1], comm_loss_after=3), rec)  # nothing listens there
    for _ in range(2):
        await src.poll_once()
    assert rec.samples == []  # two misses: not yet
    await src.poll_once()
    lost = rec.latest("S1")
    assert set(lost) == set(PLAN.point_names)
    assert all(s.quality is Quality.COMM_LOSS and s.value is None for s in lost.values())
    n = len(rec.samples)
    await src.poll_once()
    assert len(rec.samples) == n  # reported once, not every poll


async def test_station_that_stops_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pumpwatch.collector")
    port = free_port()
    srv = await RawModbusServer(port=port).start()
    fill(srv, 1)
    rec = Recorder()
    src = source(controller(port, [1], comm_loss_after=2, reconnect_max_s=0.5), rec)
    await src.poll_once()
    assert rec.latest("S1")["wet_well_level_m"].quality is Quality.GOOD
    await srv.stop()
    for _ in range(2):
        await src.poll_once()
    assert rec.latest("S1")["wet_well_level_m"].quality is Quality.COMM_LOSS
    srv = await RawModbusServer(port=port).start()
    fill(srv, 1, level_raw=150)
    # The bounded backoff (≤ 0.5 s here) lets the next polls reconnect.
    for _ in range(20):
        await asyncio.sleep(0.1)
        await src.poll_once()
        if rec.latest("S1")["wet_well_level_m"].quality is Quality.GOOD:
            break
    assert rec.latest("S1")["wet_well_level_m"].value == 1.5
    assert "communication restored" in caplog.text
    src._close()
    await srv.stop()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("garbage", "malformed response frame"),
        ("exception", "exception response 2"),
        ("short", "answer has"),
    ],
)
async def test_bad_answers_become_bad_value_logged_once(mode: str, why: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pumpwatch.collector")
    async with RawModbusServer() as srv:
        fill(srv, 1)
        rec = Recorder()
        src = source(controller(srv.port, [1]), rec)
        srv.unit(1).mode = mode
        for _ in range(3):
            await src.poll_once()
        got = rec.latest("S1")
        assert all(s.quality is Quality.BAD_VALUE and s.value is None for s in got.values()), got
        assert src.state[1].lost is False  # the device answered: it is not a comm loss
        warnings = [r for r in caplog.records if why in r.getMessage()]
        assert len(warnings) == len(PLAN.blocks)  # once per block, not once per poll
        srv.unit(1).mode = "ok"
        await src.poll_once()
        assert rec.latest("S1")["wet_well_level_m"].quality is Quality.GOOD  # polling went on
        src._close()


async def test_silent_unit_behind_a_gateway_does_not_stop_the_others() -> None:
    async with RawModbusServer() as srv:
        for u in (1, 2, 3):
            fill(srv, u, level_raw=100 + u)
        srv.unit(2).mode = "silent"
        rec = Recorder()
        src = source(controller(srv.port, [1, 2, 3], timeout_s=0.2, comm_loss_after=2), rec)
        for _ in range(2):
            await src.poll_once()
        assert rec.latest("S1")["wet_well_level_m"].value == 1.01
        assert rec.latest("S3")["wet_well_level_m"].value == 1.03
        assert rec.latest("S2")["wet_well_level_m"].quality is Quality.COMM_LOSS
        assert srv.unit(1).requests == srv.unit(3).requests == 2 * len(PLAN.blocks)
        src._close()


async def test_one_dead_endpoint_does_not_slow_another() -> None:
    """Two endpoints polled concurrently at 0.2 s: the live one keeps its rate while the other is dead."""
    async with RawModbusServer() as srv:
        fill(srv, 1)
        live_rec, dead_rec = Recorder(), Recorder()
        live = source(controller(srv.port, [1], poll_interval_s=0.2, timeout_s=0.15), live_rec)
        dead = ModbusSource(
            controller(free_port(), [1], poll_interval_s=0.2, timeout_s=0.15),
            [UnitPlan(1, "DEAD", PLAN)],
            SystemClock(),
            dead_rec,
        )
        tasks = [asyncio.create_task(s.run(), name=s.name) for s in (live, dead)]
        await asyncio.sleep(2.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        polls = live.stats.answered
        assert 10 <= polls <= 12, polls  # 0.2 s interval over 2.1 s
        assert live.stats.late_cycles == 0
        assert dead_rec.latest("DEAD")["wet_well_level_m"].quality is Quality.COMM_LOSS
