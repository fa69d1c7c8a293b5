"""Modbus in the field's shape: gateways polled one request at a time, per-unit timeouts, workarounds."""

from __future__ import annotations

import asyncio
import time

from pumpwatch.collector.registers import build_read_plan
from pumpwatch.collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config.models import ControllerConfig
from pumpwatch.core.sample import Quality
from tests.collector.test_modbus_source import MAP, PLAN, Recorder, fill
from tests.fakes import RawModbusServer


class TimedServer(RawModbusServer):
    """Records when each request arrives and how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, int]] = []

    def _answer(self, unit_id, fc, pdu):
        self.arrivals.append((time.monotonic(), unit_id))
        return super()._answer(unit_id, fc, pdu)


def gateway(port: int, units: list[dict], **kw) -> ControllerConfig:
    return ControllerConfig.model_validate(
        {
            "id": "gw",
            "host": "127.0.0.1",
            "port": port,
            "poll_interval_s": kw.pop("poll_interval_s", 0.5),
            "timeout_s": kw.pop("timeout_s", 0.3),
            "units": units,
            **kw,
        }
    )


def units(n: int, extra: dict[int, dict] | None = None) -> list[dict]:
    extra = extra or {}
    return [
        {"unit_id": u, "station": f"S{u}", "map": "test-map", **extra.get(u, {})} for u in range(1, n + 1)
    ]


def source(ctrl: ControllerConfig, rec: Recorder, plan=PLAN) -> ModbusSource:
    return ModbusSource(
        ctrl, [UnitPlan(u.unit_id, u.station, plan, u.timeout_s) for u in ctrl.units], SystemClock(), rec
    )


async def run_for(src: ModbusSource, seconds: float) -> None:
    task = asyncio.create_task(src.run(), name=src.name)
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_dead_unit_behind_a_gateway_keeps_the_others_poll_rate() -> None:
    async with RawModbusServer() as srv:
        for u in (1, 2, 3):
            fill(srv, u)
        base = source(gateway(srv.port, units(3)), Recorder())
        await run_for(base, 3.05)
        per_unit_base = base.stats.answered / 3
        srv.unit(2).mode = "silent"
        rec = Recorder()
        # the silent unit has a short timeout of its own, so it costs the cycle little
        src = source(gateway(srv.port, units(3, {2: {"timeout_s": 0.1}})), rec)
        await run_for(src, 3.05)
        others = src.stats.answered / 2
        assert abs(others - per_unit_base) <= max(1, 0.05 * per_unit_base), (others, per_unit_base)
        assert src.stats.late_cycles == 0
        assert rec.latest("S2")["wet_well_level_m"].quality is Quality.COMM_LOSS
        assert rec.latest("S1")["wet_well_level_m"].quality is Quality.GOOD


async def test_requests_to_a_gateway_never_overlap_and_keep_the_pause() -> None:
    srv = TimedServer()
    async with srv:
        for u in (1, 2, 3):
            fill(srv, u)
        ctrl = gateway(srv.port, units(3), workarounds={"pause_between_requests_s": 0.05})
        src = source(ctrl, Recorder())
        await src.poll_once()
        times = [t for t, _ in srv.arrivals]
        assert len(times) == 3 * len(PLAN.blocks)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.045  # one request at a time, each after the pause
        assert [u for _, u in srv.arrivals] == sorted(u for _, u in srv.arrivals)  # unit by unit, in order
        src._close()


async def test_max_registers_and_close_after_poll() -> None:
    async with RawModbusServer() as srv:
        fill(srv, 1)
        ctrl = gateway(
            srv.port,
            units(1),
            workarounds={"max_registers_per_request": 2, "close_connection_after_poll": True},
        )
        plan = build_read_plan(MAP, max_registers=2)
        rec = Recorder()
        src = source(ctrl, rec, plan)
        await src.poll_once()
        assert all(b.count <= 2 for b in plan.blocks)
        assert srv.unit(1).requests == len(plan.blocks) > len(PLAN.blocks)
        assert src._client is None  # closed after the poll
        await src.poll_once()
        assert src.stats.connects == 2
        assert rec.latest("S1")["pump1_run_hours_h"].value == 70000.0  # a uint32 is never split


async def test_a_unit_returning_after_a_long_outage_is_polled_within_the_backoff() -> None:
    from tests.services import free_port

    port = free_port()
    rec = Recorder()
    src = source(gateway(port, units(1), reconnect_max_s=1.0, poll_interval_s=0.2, timeout_s=0.1), rec)
    task = asyncio.create_task(src.run(), name=src.name)
    await asyncio.sleep(4)  # a long outage: the backoff has grown to its ceiling
    assert src._connect_failures >= 3
    srv = await RawModbusServer(port=port).start()
    fill(srv, 1)
    back = time.monotonic()
    while (
        rec.latest("S1").get("wet_well_level_m") is None
        or rec.latest("S1")["wet_well_level_m"].quality is not Quality.GOOD
    ):
        await asyncio.sleep(0.02)
        assert time.monotonic() - back < 1.0 + 0.2 + 0.5, "not polled again within reconnect_max_s"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await srv.stop()


async def test_devices_that_answer_transaction_id_zero_are_read() -> None:
    async with RawModbusServer() as srv:
        fill(srv, 1, level_raw=222)
        srv.unit(1).mode = "tid0"
        rec = Recorder()
        src = source(gateway(srv.port, units(1)), rec)
        for _ in range(3):  # transaction ids 1, 2, 3 … all answered as 0
            await src.poll_once()
        assert rec.latest("S1")["wet_well_level_m"].value == 2.22
        assert rec.latest("S1")["wet_well_level_m"].quality is Quality.GOOD
        assert src.stats.missed == 0
        src._close()
