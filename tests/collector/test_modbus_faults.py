"""Modbus links with faults over time (tests/fault_proxy.py): latency with jitter, answers in slices,
resets, a black hole. A gateway of three units goes through the proxy; another station is polled directly.

Every answer carries its unit's marker and the number of the request it answers (the server counts the
requests per unit and notes when it served each). The checker finds, for every sample: the unit it came
from (no value attributed to another unit) and the request it answered, served within one answer time
limit of the poll it is stamped with (no late answer taken for a later request's). Reconnection after each
fault ends within 10 s; the direct station's poll rate stays within ±1 %."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from pumpwatch.collector.registers import build_read_plan
from pumpwatch.collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config.models import ControllerConfig, RegisterMap
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.simulators.modbus_server import ModbusStationServer, UnitSpec
from tests.fault_proxy import FaultProxy
from tests.services import free_port

MAP = RegisterMap.model_validate(
    {
        "name": "stamped",
        "points": [
            {"name": "marker", "table": "input_register", "address": 0, "type": "uint16"},
            {"name": "request_no", "table": "input_register", "address": 1, "type": "uint32"},
            {"name": "marker_hr", "table": "holding_register", "address": 0, "type": "uint16"},
            {"name": "request_no_hr", "table": "holding_register", "address": 1, "type": "uint32"},
        ],
    }
)
PLAN = build_read_plan(MAP)
POLL_S = 0.5
TIMEOUT_S = 0.3


class StampedUnit:
    """Values that say which unit answered and to which of its requests."""

    def __init__(self, unit_id: int) -> None:
        self.unit_id = unit_id
        self.n = 0
        self.served: dict[int, datetime] = {}

    def values(self) -> dict:
        self.n += 1
        self.served[self.n] = datetime.now(UTC)
        m = 100 + self.unit_id
        return {"marker": m, "request_no": self.n, "marker_hr": m, "request_no_hr": self.n}


def controller(cid: str, port: int, units: list[int]) -> ControllerConfig:
    return ControllerConfig.model_validate(
        {
            "id": cid,
            "host": "127.0.0.1",
            "port": port,
            "poll_interval_s": POLL_S,
            "timeout_s": TIMEOUT_S,
            "comm_loss_after": 2,
            "reconnect_max_s": 2.0,
            "units": [{"unit_id": u, "station": f"{cid}-u{u}", "map": "stamped"} for u in units],
        }
    )


def check(samples: list[Sample], units: dict[str, StampedUnit]) -> dict[str, int]:
    """The checker: per sample, the unit and the request it answered."""
    out = {"good": 0, "wrong_unit": 0, "wrong_request": 0, "unknown_request": 0}
    by_poll: dict[tuple[str, datetime], dict[str, float]] = {}
    for s in samples:
        if s.quality is Quality.GOOD and s.value is not None:
            by_poll.setdefault((s.station, s.observed_at), {})[s.point] = s.value
    for (station, at), vals in by_poll.items():
        u = units[station]
        for marker, req in (("marker", "request_no"), ("marker_hr", "request_no_hr")):
            if marker not in vals:
                continue
            if vals[marker] != 100 + u.unit_id:
                out["wrong_unit"] += 1
                continue
            served = u.served.get(int(vals[req]))
            if served is None:
                out["unknown_request"] += 1
            elif abs((served - at).total_seconds()) > TIMEOUT_S + 0.1:
                out["wrong_request"] += 1
            else:
                out["good"] += 1
    return out


async def test_modbus_link_faults_attribute_nothing_wrongly_reconnect_and_spare_the_others(caplog) -> None:
    caplog.set_level(logging.ERROR)
    clock = SystemClock()
    gw_units = {1: StampedUnit(1), 2: StampedUnit(2), 3: StampedUnit(3)}
    direct = StampedUnit(7)
    gw = ModbusStationServer(
        "127.0.0.1", free_port(), [UnitSpec(u, MAP, su.values) for u, su in gw_units.items()], name="gw"
    )
    solo = ModbusStationServer("127.0.0.1", free_port(), [UnitSpec(7, MAP, direct.values)], name="solo")
    await gw.start()
    await solo.start()
    samples: list[Sample] = []
    emit = samples.extend
    try:
        async with FaultProxy("127.0.0.1", gw.port, seed=20) as proxy:
            cg = controller("gw", proxy.port, [1, 2, 3])
            cs = controller("solo", solo.port, [7])
            src_gw = ModbusSource(cg, [UnitPlan(u, f"gw-u{u}", PLAN) for u in (1, 2, 3)], clock, emit)
            src_solo = ModbusSource(cs, [UnitPlan(7, "solo-u7", PLAN)], clock, emit)
            tasks = [asyncio.create_task(src_gw.run()), asyncio.create_task(src_solo.run())]
            await asyncio.sleep(1.0)
            t0 = datetime.now(UTC)

            def good_after(station: str, t: datetime) -> bool:
                return any(
                    s.station == station and s.quality is Quality.GOOD and s.observed_at > t for s in samples
                )

            async def recovered(what: str) -> float:
                end = datetime.now(UTC)
                start = clock.monotonic()
                while not all(good_after(f"gw-u{u}", end) for u in (1, 2, 3)):
                    await asyncio.sleep(0.05)
                    assert clock.monotonic() - start <= 10, f"no answer 10 s after {what}"
                took = clock.monotonic() - start
                print(f"  {what}: answers again after {took:.2f} s")
                return took

            print("\nModbus link faults through the proxy:")
            proxy.latency_s, proxy.jitter_s = 0.12, 0.1  # answers late, some beyond the 0.3-s limit
            await asyncio.sleep(4)
            proxy.clear()
            await recovered("latency 120 ± 100 ms")
            proxy.slice_bytes, proxy.slice_delay_s = 1, 0.01  # answers byte by byte
            await asyncio.sleep(3)
            proxy.clear()
            await recovered("1-byte slices")
            for _ in range(4):  # resets at random moments
                await asyncio.sleep(0.37)
                proxy.reset()
            await recovered("4 resets")
            proxy.black_hole = True
            await asyncio.sleep(3)
            proxy.black_hole = False
            reconnect = await recovered("3-s black hole")
            proxy.refuse = True
            proxy.reset()
            await asyncio.sleep(2)
            proxy.refuse = False
            reconnect = max(reconnect, await recovered("2 s refused"))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await gw.stop()
        await solo.stop()

    result = check(samples, {**{f"gw-u{u}": su for u, su in gw_units.items()}, "solo-u7": direct})
    # the direct station's polls while the gateway's link went through its faults: its own timestamps
    solo_at = sorted(
        s.observed_at
        for s in samples
        if s.station == "solo-u7" and s.point == "marker" and s.observed_at >= t0
    )
    span = (solo_at[-1] - solo_at[0]).total_seconds()
    rate = (len(solo_at) - 1) * POLL_S / span
    print(f"  checker: {result}; proxy: {proxy.stats}")
    print(f"  direct station: {len(solo_at)} polls in {span:.1f} s = {rate:.4f} of its rate")
    assert result["wrong_unit"] == 0 and result["wrong_request"] == 0 and result["unknown_request"] == 0
    assert result["good"] > 100
    assert proxy.stats.resets >= 4 and proxy.stats.swallowed > 0  # the faults happened
    assert abs(rate - 1) <= 0.01
    comm_loss = [s for s in samples if s.quality is Quality.COMM_LOSS and s.station.startswith("gw")]
    assert comm_loss, "the black hole was never reported as a communication loss"
