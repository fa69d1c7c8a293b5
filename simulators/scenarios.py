"""Scripted faults for a `SimulatedFleet`, applied at clock times.

Each function returns a list of `ScenarioEvent` (start, and end when a `duration` is given). `run_scenario`
schedules them on the fleet, which applies each one while stepping, exactly at its time (stations are stepped
to it, the change is applied, stepping goes on), and sleeps on the clock until the last one has been applied.

    events = [
        *power_outage(Area("kita-feeder-1"), at=t0 + timedelta(minutes=5), duration=timedelta(hours=2)),
        *pump_fault("KITA-MP-04", 1, at=t0 + timedelta(minutes=30)),
        *rain(2.0, at=t0, duration=timedelta(hours=3)),
        *river_level("STORM-1", 6.6, at=t0 + timedelta(hours=1), duration=timedelta(minutes=40)),
        *generator_fault("RELAY-1", at=t0 + timedelta(minutes=10)),
    ]
    await run_scenario(sim, clock, events)

Rain acts by kind: sanitary inflow × `factor` at manhole and relay stations and plants (infiltration/inflow),
rainfall `mm_h` at stormwater stations (rational-method runoff) and on the plants' rain gauge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pumpwatch.core.clock import Clock
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.station_model import StationModel

__all__ = [
    "Area",
    "ScenarioEvent",
    "blower_fault",
    "clog",
    "gauge_fault",
    "generator_fault",
    "hv_fault",
    "hyetograph",
    "power_outage",
    "pump_fault",
    "rain",
    "river_level",
    "run_scenario",
    "sensor_stuck_low",
    "toxic_shock",
]

MM_H_PER_RAIN_FACTOR = 20.0  # est.: inflow ×2 at a sanitary station ≈ 20 mm/h of rain; at most ×3


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


def _setter(station: StationModel, name: str) -> Callable[..., None]:
    """The station's scenario setter `name`, or a TypeError naming the station's kind."""
    fn = getattr(station, name, None)
    if fn is None:
        raise TypeError(f"station {station.id} ({station.kind}) has no {name}()")
    return fn


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


def _set_rain(station: StationModel, factor: float, mm_h: float) -> None:
    if station.kind == "stormwater_pump":
        _setter(station, "set_rain")(mm_h)
    elif station.kind == "treatment_plant":
        _setter(station, "set_rain")(mm_h)
        station.rain_factor = factor  # type: ignore[attr-defined]  # the models with rain_factor
    else:
        station.rain_factor = factor  # type: ignore[attr-defined]  # the models with rain_factor


def rain(
    factor: float | None = None,
    at: datetime | None = None,
    duration: timedelta | None = None,
    *,
    stations: Sequence[str] | None = None,
    mm_h: float | None = None,
) -> list[ScenarioEvent]:
    """Wet weather from `at` (all stations unless `stations`), dry again after `duration`: sanitary inflow
    × `factor`, rainfall `mm_h` (mm/h) at stormwater stations and plants. Give either or both; the other
    follows (est.): mm_h = 20·(factor − 1), factor = 1 + mm_h/20 (at most 3)."""
    if at is None:
        raise TypeError("rain() needs `at`")
    if factor is None and mm_h is None:
        raise TypeError("rain() needs a factor or mm_h")
    if (factor is not None and factor < 0) or (mm_h is not None and mm_h < 0):
        raise ValueError("rain factor and mm_h must be >= 0")
    f = factor if factor is not None else 1.0 + min(2.0, (mm_h or 0.0) / MM_H_PER_RAIN_FACTOR)
    i = mm_h if mm_h is not None else max(0.0, MM_H_PER_RAIN_FACTOR * (f - 1.0))

    def set_rain(value: float, intensity: float) -> Apply:
        def apply(sim: SimulatedFleet) -> None:
            for sid in stations if stations is not None else list(sim.stations):
                _set_rain(sim.stations[sid], value, intensity)

        return apply

    label = f"rain ×{f:g}" if mm_h is None else f"rain {i:g} mm/h (×{f:g})"
    events = [ScenarioEvent(at, label, set_rain(f, i))]
    if duration is not None:
        events.append(ScenarioEvent(at + duration, "rain over", set_rain(1.0, 0.0)))
    return events


def hyetograph(
    intensities_mm_h: Sequence[float],
    at: datetime,
    *,
    interval: timedelta = timedelta(minutes=10),
    stations: Sequence[str] | None = None,
) -> list[ScenarioEvent]:
    """A storm as a hyetograph: `intensities_mm_h[k]` mm/h during the k-th `interval` from `at`, dry after
    (each step is a `rain(mm_h=…)` event)."""
    if interval <= timedelta(0):
        raise ValueError("interval must be > 0")
    events: list[ScenarioEvent] = []
    for k, i in enumerate(intensities_mm_h):
        events += rain(at=at + k * interval, mm_h=i, stations=stations)
    end = rain(1.0, at + len(intensities_mm_h) * interval, mm_h=0.0, stations=stations)
    return events + [ScenarioEvent(e.at, "rain over", e.apply) for e in end]


def river_level(
    station: str, level: float | None, at: datetime, *, duration: timedelta | None = None
) -> list[ScenarioEvent]:
    """The outer (river) level of a stormwater station is `level` m from `at` (None: it follows the rain);
    after `duration` it follows the rain again."""
    shown = "follows the rain" if level is None else f"{level:g} m"
    events = [
        _station_event(
            at, f"river level {shown}: {station}", station, lambda st: _setter(st, "set_river_level")(level)
        )
    ]
    if duration is not None:
        events.append(
            _station_event(
                at + duration,
                f"river level follows the rain: {station}",
                station,
                lambda st: _setter(st, "set_river_level")(None),
            )
        )
    return events


def generator_fault(station: str, at: datetime, *, duration: timedelta | None = None) -> list[ScenarioEvent]:
    """The standby generator of a relay or stormwater station or a plant fails at `at` (repaired after
    `duration`)."""
    events = [
        _station_event(
            at, f"generator fault: {station}", station, lambda st: _setter(st, "set_generator_fault")(True)
        )
    ]
    if duration is not None:
        events.append(
            _station_event(
                at + duration,
                f"generator repaired: {station}",
                station,
                lambda st: _setter(st, "set_generator_fault")(False),
            )
        )
    return events


def blower_fault(
    station: str, blower: int | str, at: datetime, *, faulted: bool = True
) -> list[ScenarioEvent]:
    """An aeration blower of a plant trips (or, with `faulted=False`, is reset) at `at`."""
    word = "fault" if faulted else "reset"
    return [
        _station_event(
            at,
            f"blower {word}: {station} {blower}",
            station,
            lambda st: _setter(st, "set_blower_fault")(blower, faulted),
        )
    ]


def gauge_fault(
    station: str,
    gauge: int,
    at: datetime,
    *,
    mode: str | None = "freeze",
    bias_m: float = 0.0,
    duration: timedelta | None = None,
) -> list[ScenarioEvent]:
    """Level gauge 1 or 2 of a relay station goes wrong at `at`: "freeze", "bias" (reads + bias_m) or "dead"
    (reads 0, loop fault flagged); repaired after `duration`."""
    events = [
        _station_event(
            at,
            f"level gauge {gauge} {mode}: {station}",
            station,
            lambda st: _setter(st, "set_gauge_fault")(gauge, mode, bias_m=bias_m),
        )
    ]
    if duration is not None:
        events.append(
            _station_event(
                at + duration,
                f"level gauge {gauge} repaired: {station}",
                station,
                lambda st: _setter(st, "set_gauge_fault")(gauge, None),
            )
        )
    return events


def hv_fault(
    station: str, kind: str, at: datetime, *, duration: timedelta | None = None
) -> list[ScenarioEvent]:
    """A 6.6 kV protection trip at a relay station ("earth" or "overcurrent"): the receiving breaker opens
    and the generator takes over; reset and reclosed after `duration`."""
    if kind not in ("earth", "overcurrent"):
        raise ValueError("HV fault kind is 'earth' or 'overcurrent'")
    events = [
        _station_event(
            at, f"HV {kind} fault: {station}", station, lambda st: _setter(st, "set_hv_fault")(kind, True)
        )
    ]
    if duration is not None:
        events.append(
            _station_event(
                at + duration,
                f"HV {kind} fault reset: {station}",
                station,
                lambda st: _setter(st, "set_hv_fault")(kind, False),
            )
        )
    return events


def toxic_shock(station: str, severity: float, at: datetime) -> list[ScenarioEvent]:
    """A toxic discharge reaches a plant at `at`: biomass activity drops to 1 − severity and recovers over a
    day; effluent BOD rises over the following hours."""
    if not 0 <= severity < 1:
        raise ValueError("toxic shock severity must be in [0, 1)")
    return [
        _station_event(
            at,
            f"toxic shock {severity:g}: {station}",
            station,
            lambda st: _setter(st, "set_toxic_shock")(severity),
        )
    ]


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
