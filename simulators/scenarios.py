"""Scripted faults for a `SimulatedFleet`, applied at clock times.

Each function returns a list of `ScenarioEvent` (start, and end when a `duration` is given). `run_scenario`
schedules them on the fleet, which applies each one while stepping, exactly at its time (stations are stepped
to it, the change is applied, stepping goes on), and sleeps on the clock until the last one has been applied.

    events = [
        *power_outage(Area("kita-feeder-1"), at=t0 + timedelta(minutes=5), duration=timedelta(hours=2)),
        *pump_fault("KITA-MP-04", 1, at=t0 + timedelta(minutes=30)),
        *rain(2.0, at=t0, duration=timedelta(hours=3)),
    ]
    await run_scenario(sim, clock, events)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pumpwatch.clock import Clock
from simulators.fleet import SimulatedFleet

__all__ = [
    "Area",
    "ScenarioEvent",
    "clog",
    "power_outage",
    "pump_fault",
    "rain",
    "run_scenario",
    "sensor_stuck_low",
]


Apply = Callable[[SimulatedFleet], None]


@dataclass(frozen=True)
class Area:
    """A power area (feeder), as the target of `power_outage`."""

    name: str


@dataclass(frozen=True)
class ScenarioEvent:
    at: datetime
    label: str
    apply: Apply


def _station_event(at: datetime, label: str, station: str, change: Callable[..., None]) -> ScenarioEvent:
    def apply(sim: SimulatedFleet) -> None:
        change(sim.stations[station])

    return ScenarioEvent(at, label, apply)


def power_outage(
    target: Area | Iterable[str], at: datetime, duration: timedelta | None = None
) -> list[ScenarioEvent]:
    """Mains lost at `at` in a power area (`Area("...")`) or at some station ids; back after `duration`."""
    if isinstance(target, str):
        raise TypeError("give Area('name') for a power area or a list of station ids, not a bare string")
    ids = None if isinstance(target, Area) else list(target)
    name = f"area {target.name}" if isinstance(target, Area) else ", ".join(ids or [])

    def switch(ok: bool) -> Apply:
        def apply(sim: SimulatedFleet) -> None:
            if isinstance(target, Area):
                sim.power_area_outage(target.name, ok, step=False)
            else:
                sim.set_mains(ids or [], ok, step=False)

        return apply

    events = [ScenarioEvent(at, f"power outage: {name}", switch(False))]
    if duration is not None:
        events.append(ScenarioEvent(at + duration, f"power restored: {name}", switch(True)))
    return events


def pump_fault(station: str, pump: int | str, at: datetime, *, faulted: bool = True) -> list[ScenarioEvent]:
    """A pump trips (or, with `faulted=False`, is reset) at `at`. `pump`: number from 1, or name."""
    word = "fault" if faulted else "reset"
    return [
        _station_event(
            at, f"pump {word}: {station} {pump}", station, lambda st: st.set_pump_fault(pump, faulted)
        )
    ]


def clog(station: str, pump: int | str, factor: float, at: datetime) -> list[ScenarioEvent]:
    """Rags on an impeller from `at`: `factor` is the clog severity 0..1 (+0..30 % current, −0..40 % flow)."""
    if not 0 <= factor <= 1:
        raise ValueError("clog factor is a severity in 0..1")
    return [
        _station_event(
            at, f"clog {factor:g}: {station} {pump}", station, lambda st: st.set_clog(pump, factor)
        )
    ]


def sensor_stuck_low(
    station: str, at: datetime, *, duration: timedelta | None = None, fault_flag: bool = True
) -> list[ScenarioEvent]:
    """The level transmitter reads 0 m from `at` (the panel stops the pumps; only the HWL float runs them)."""
    events = [
        _station_event(
            at,
            f"level sensor stuck low: {station}",
            station,
            lambda st: st.set_sensor_stuck_low(True, fault_flag=fault_flag),
        )
    ]
    if duration is not None:
        events.append(
            _station_event(
                at + duration,
                f"level sensor repaired: {station}",
                station,
                lambda st: st.set_sensor_stuck_low(False),
            )
        )
    return events


def rain(
    factor: float, at: datetime, duration: timedelta | None = None, *, stations: Sequence[str] | None = None
) -> list[ScenarioEvent]:
    """Wet weather: inflow × `factor` from `at` (all stations unless `stations`), ×1 after `duration`."""
    if factor < 0:
        raise ValueError("rain factor must be >= 0")

    def set_factor(value: float) -> Apply:
        def apply(sim: SimulatedFleet) -> None:
            for sid in stations if stations is not None else list(sim.stations):
                sim.stations[sid].rain_factor = value

        return apply

    events = [ScenarioEvent(at, f"rain ×{factor:g}", set_factor(factor))]
    if duration is not None:
        events.append(ScenarioEvent(at + duration, "rain over", set_factor(1.0)))
    return events


async def run_scenario(
    fleet_sim: SimulatedFleet, clock: Clock, events: Iterable[ScenarioEvent]
) -> list[ScenarioEvent]:
    """Schedule `events` on the fleet and sleep on `clock` until the last is applied; returns them in time
    order. Events already due are applied at once (late, at the stations' current time)."""
    ordered = sorted(events, key=lambda e: e.at)
    fleet_sim.schedule(ordered)
    for event in ordered:
        while (delay := (event.at - clock.now()).total_seconds()) > 0:
            await clock.sleep(delay)
        fleet_sim.step_now()  # applies every event due (a no-op if the physics task got there first)
    return ordered
