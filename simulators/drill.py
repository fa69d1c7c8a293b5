"""A drill scenario file (`pumpwatch.core.config.scenario`) as timed changes on a `SimulatedFleet`.

`compile_scenario(scenario, start)` builds on `simulators.scenarios`: each event of the file becomes the
scenario functions' events (fault, and its end when it has a duration), each tagged with the drill, and an
undo that puts the fault right at once (`DrillPlan.undo`), for a drill stopped before its faults end.

A comm loss stops a Modbus controller's server, which is asynchronous: the change starts a task on the
running loop (`SimulatedFleet.stop_controller` / `start_controller`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pumpwatch.core.config.scenario import (
    CommLoss,
    FloatStuck,
    GeneratorFault,
    PowerOutage,
    PumpClog,
    PumpFault,
    Rain,
    RiverLevel,
    Scenario,
    SensorStuckLow,
)
from pumpwatch.simulators import scenarios as sc
from pumpwatch.simulators.fleet import SimulatedFleet

__all__ = ["DrillChange", "DrillPlan", "compile_scenario"]

log = logging.getLogger(__name__)

Apply = Callable[[SimulatedFleet], None]


@dataclass(frozen=True)
class DrillChange:
    """A scheduled change of one drill (a `TimedChange`): `drill` tags it, so a stop can drop the rest."""

    at: datetime
    label: str
    apply_fn: Apply
    drill: str

    def apply(self, sim: SimulatedFleet) -> None:
        self.apply_fn(sim)


@dataclass
class DrillPlan:
    drill: str
    start: datetime
    changes: list[DrillChange] = field(default_factory=list)
    undos: list[tuple[str, Apply]] = field(default_factory=list)

    def undo(self, sim: SimulatedFleet) -> list[str]:
        """Drop this drill's pending changes and put every fault it may have caused right, now."""
        sim.unschedule(lambda c: getattr(c, "drill", None) == self.drill)
        sim.step_now()
        done = []
        for label, fn in self.undos:
            try:
                fn(sim)
                done.append(label)
            except Exception:  # one undo failing must not leave the others undone
                log.exception("drill %s: undo %r failed", self.drill, label)
        return done


def _controller(cid: str, running: bool) -> Apply:
    def apply(sim: SimulatedFleet) -> None:
        coro = sim.start_controller(cid) if running else sim.stop_controller(cid)
        try:
            asyncio.get_running_loop().create_task(coro, name=f"drill.controller[{cid}]")
        except RuntimeError:  # stepped without a loop (pure tests): nothing serves anyway
            coro.close()

    return apply


def _events(ev_at: datetime, spec: object) -> tuple[list[sc.ScenarioEvent], list[tuple[str, Apply]]]:
    """The scenario functions' events for one action, and how to undo it."""
    if isinstance(spec, PowerOutage):
        target = sc.Area(spec.area) if spec.area is not None else list(spec.stations or [])
        evs = sc.power_outage(target, ev_at, spec.duration)
        name = spec.area or ", ".join(spec.stations or [])

        def mains_on(sim: SimulatedFleet) -> None:
            ids = sim.stations_in_power_area(spec.area) if spec.area else list(spec.stations or [])
            sim.set_mains(ids, True, step=False)

        return evs, [(f"power restored: {name}", mains_on)]
    if isinstance(spec, Rain):
        stations = spec.stations
        if spec.hyetograph_mm_h is not None:
            evs = sc.hyetograph(spec.hyetograph_mm_h, ev_at, interval=spec.interval, stations=stations)
        else:
            evs = sc.rain(spec.factor, ev_at, spec.duration, stations=stations, mm_h=spec.mm_h)
        dry = sc.rain(1.0, ev_at, stations=stations, mm_h=0.0)[0]
        return evs, [("rain over", dry.apply)]
    if isinstance(spec, PumpClog):
        evs = sc.clog(spec.station, spec.pump, spec.severity, ev_at)
        return evs, [(f"clog cleared: {spec.station}", sc.clog(spec.station, spec.pump, 0.0, ev_at)[0].apply)]
    if isinstance(spec, PumpFault):
        evs = sc.pump_fault(spec.station, spec.pump, ev_at)
        reset = sc.pump_fault(spec.station, spec.pump, ev_at, faulted=False)[0]
        return evs, [(reset.label, reset.apply)]
    if isinstance(spec, SensorStuckLow):
        evs = sc.sensor_stuck_low(spec.station, ev_at, duration=spec.duration, fault_flag=spec.fault_flag)
        fix = sc.sensor_stuck_low(spec.station, ev_at, duration=timedelta(0))[-1]
        return evs, [(fix.label, fix.apply)]
    if isinstance(spec, FloatStuck):
        state = spec.state == "tripped"
        word = f"{spec.float.upper()} float stuck {spec.state}"

        def stick(value: bool | None) -> Apply:
            def apply(sim: SimulatedFleet) -> None:
                sim.stations[spec.station].set_float_stuck(spec.float, value)  # type: ignore[attr-defined]

            return apply

        evs = [sc.ScenarioEvent(ev_at, f"{word}: {spec.station}", stick(state))]
        if spec.duration is not None:
            evs.append(sc.ScenarioEvent(ev_at + spec.duration, f"float freed: {spec.station}", stick(None)))
        return evs, [(f"float freed: {spec.station}", stick(None))]
    if isinstance(spec, CommLoss):
        evs = [sc.ScenarioEvent(ev_at, f"comm loss: {spec.controller}", _controller(spec.controller, False))]
        if spec.duration is not None:
            evs.append(
                sc.ScenarioEvent(
                    ev_at + spec.duration, f"comm back: {spec.controller}", _controller(spec.controller, True)
                )
            )
        return evs, [(f"comm back: {spec.controller}", _controller(spec.controller, True))]
    if isinstance(spec, GeneratorFault):
        evs = sc.generator_fault(spec.station, ev_at, duration=spec.duration)
        fix = sc.generator_fault(spec.station, ev_at, duration=timedelta(0))[-1]
        return evs, [(fix.label, fix.apply)]
    if isinstance(spec, RiverLevel):
        evs = sc.river_level(spec.station, spec.level_m, ev_at, duration=spec.duration)
        back = sc.river_level(spec.station, None, ev_at)[0]
        return evs, [(back.label, back.apply)]
    raise TypeError(f"no simulator change for {type(spec).__name__}")


def compile_scenario(scenario: Scenario, start: datetime, *, drill: str | None = None) -> DrillPlan:
    """The scenario's changes at `start` + each event's time, tagged `drill` (default: its name)."""
    tag = drill or scenario.name
    plan = DrillPlan(tag, start)
    for ev in scenario.events:
        evs, undos = _events(start + ev.at, ev.spec)
        for e in evs:
            label = f"{ev.label}: {e.label}" if ev.label else e.label
            plan.changes.append(DrillChange(e.at, label, e.apply, tag))
        plan.undos.extend(undos)
    plan.changes.sort(key=lambda c: c.at)
    return plan
