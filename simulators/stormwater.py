"""Physics of a stormwater pump station, 雨水ポンプ場 (docs/domain.md §4.2): pure, deterministic, no I/O.

Reference station (est. where not said): 2 × φ900 vertical mixed-flow pumps, 96 m³/min each (192 m³/min,
3.2 m³/s; Sōja's φ900 does 100 m³/min [S53]), diesel-engine driven (≈150 kW each, 990 L day tank — just
under the 1 000 L 指定数量 for light oil — at 0.25 L/kWh), an electric auxiliary bus (cooling-water, fuel
transfer, gate motor, screen, starting-air compressor) on the grid or on a small standby generator, and a
gravity outlet to the river through a motorised discharge gate (樋門).

Per sub-step (1 s by default, on the grid of `StationModel`):
- Rainfall intensity i (mm/h): `set_rain(mm_h)` or a hyetograph (`set_hyetograph`, one intensity per
  interval). Runoff by the rational method, Q = C·i·A/360 (m³/s, A in ha: `drainage`), routed through a
  linear reservoir with time constant `concentration_time_s` (est. 15 min), plus a small dry-weather base flow
  (groundwater seepage, lognormal noise). A rain gauge logs the rain per minute: 10-min and 60-min
  intensities (mm/h) over the last complete minutes, and the cumulative rain of the event (reset after
  `rain_event_gap_s` without rain).
- Outer (river) level: `set_river_level(m)`, or (None) a hydrograph that follows the rain through a linear
  reservoir with time constant `river_lag_s`: base + gain × filtered intensity (est. 0.08 m per mm/h).
- Discharge gate: closes when outer ≥ `river.gate_close_m` and outer > inner (back-flow), reopens when outer
  falls below inner; moves at 100 % per `gate_travel_s` while the auxiliary bus has power; a faulty gate
  stays where it is. Open, it drains the pump well by gravity above the sill while inner > outer:
  Q = 0.6·A·(position)·√(2g·Δh) (est. 2 m² opening, sill at the first start level).
- Pumps: `StagedPumpControl` on the inner level (`control.stages` or `derive_stages`). Engine-driven pumps
  (`drive: engine`) keep running in a grid outage; starting one needs auxiliary power (grid or generator)
  and starting air (each start uses 0.4 MPa of a 2.9 MPa receiver, which the compressor refills while the
  auxiliary bus has power; below 1.5 MPa no start). Electric pumps need the bus. A started engine ramps to
  full flow over `engine_ramp_s`. Engines burn their day tank; an empty tank stops the engine.
- Curtailment (運転調整, §4.2): every pump stops when the outer level reaches `river.stop_pumps_m`; pumping
  resumes when it falls below `river.resume_pumps_m` (`curtailment_active`). It overrides the HWL float.
- Engine state: cooling water 25 → 82 °C (10 min) when running, back with 30 min; lube-oil pressure builds to
  0.45 MPa within 10 s of a start (est.).
- Inner spill at `levels.spill_m` recorded like the manhole model (`spilled_at`, `overflow_m3`).
- 重故障 `major_fault`: no pump can run automatically. 軽故障 `minor_fault`: a pump unavailable, gate or
  screen fault, fuel low, starting air low, generator fault.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime, tzinfo

from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import StageStorage
from pumpwatch.simulators.generator import StandbyGenerator
from pumpwatch.simulators.inflow import lognormal
from pumpwatch.simulators.pumps import PumpControls, StagedPumpControl, derive_stages, pumps_from_config
from pumpwatch.simulators.station_model import PointValues, StationModel

__all__ = ["StormwaterPumpStation"]

G = 9.81
GATE_CD = 0.6  # discharge coefficient of a sluice opening (est.)
LUBE_OIL_MPA = 0.45
COOLANT_RUN_C = 82.0


def _relax(x: float, target: float, dt: float, tau: float) -> float:
    """First-order step toward `target` (exact for a constant target over dt)."""
    return target + (x - target) * math.exp(-dt / tau) if tau > 0 else target


class StormwaterPumpStation(PumpControls, StationModel):
    """One simulated stormwater pump station. `step(now)` moves it on; `point_values()` reads the panel."""

    kind = "stormwater_pump"

    def __init__(
        self,
        cfg: StationConfig,
        seed: int,
        start: datetime,
        *,
        timezone: str | tzinfo = "Asia/Tokyo",
        substep_s: float = 1.0,
        initial_level_m: float | None = None,
        initial_counters: bool = True,
        noise_sigma: float = 0.1,
        noise_period_s: float = 600.0,
        base_flow_m3_min: float = 0.2,
        concentration_time_s: float = 900.0,
        river_base_m: float | None = None,
        river_gain_m_per_mm_h: float = 0.08,
        river_lag_s: float = 3600.0,
        rain_event_gap_s: float = 6 * 3600.0,
        restart_delay_s: float = 5.0,
        stagger_s: float = 30.0,
        engine_ramp_s: float = 30.0,
        float_differential_m: float = 0.05,
        hwl_min_run_s: float = 120.0,
        gate_travel_s: float = 120.0,
        gate_area_m2: float = 2.0,
        gate_sill_m: float | None = None,
        generator_kw: float = 100.0,
        generator_start_delay_s: float = 15.0,
        fuel_day_tank_l: float = 990.0,
        fuel_l_per_kwh: float = 0.25,
        starting_air_mpa: float = 2.9,
        start_air_use_mpa: float = 0.4,
        start_air_min_mpa: float = 1.5,
        compressor_mpa_s: float = 0.005,
        ambient_temp_c: float = 25.0,
    ) -> None:
        super().__init__(cfg, seed, start, timezone=timezone, substep_s=substep_s)
        assert cfg.levels is not None and cfg.river is not None  # guaranteed by StationConfig
        self.levels = cfg.levels
        self.river = cfg.river
        self.storage = StageStorage.from_station(cfg)
        self.area_ha = cfg.drainage.area_ha if cfg.drainage else 0.0
        self.runoff_coefficient = cfg.drainage.runoff_coefficient if cfg.drainage else 0.0
        self.base_flow_m3_min = base_flow_m3_min
        self.noise_sigma = noise_sigma
        self.noise_period_s = noise_period_s
        self.concentration_time_s = concentration_time_s
        self.river_base_m = self.levels.stop_m if river_base_m is None else river_base_m
        self.river_gain_m_per_mm_h = river_gain_m_per_mm_h
        self.river_lag_s = river_lag_s
        self.rain_event_gap_s = rain_event_gap_s
        self.restart_delay_s = restart_delay_s
        self.engine_ramp_s = engine_ramp_s
        self.float_differential_m = float_differential_m
        self.hwl_min_run_s = hwl_min_run_s
        self.gate_travel_s = gate_travel_s
        self.gate_area_m2 = gate_area_m2
        self.fuel_l_per_kwh = fuel_l_per_kwh
        self.start_air_use_mpa = start_air_use_mpa
        self.start_air_min_mpa = start_air_min_mpa
        self.starting_air_max_mpa = starting_air_mpa
        self.compressor_mpa_s = compressor_mpa_s
        self.ambient_temp_c = ambient_temp_c

        setup = self.rng("setup")
        self._base_rng = self.rng("inflow")
        self._noise_rng = self.rng("noise")
        self.pumps = pumps_from_config(cfg, setup, self.start, initial_counters=initial_counters)
        self.stages = derive_stages(cfg)
        self.gate_sill_m = self.stages[0][0] if gate_sill_m is None else gate_sill_m
        self.control = StagedPumpControl(self.stages, len(self.pumps), self._ticks(stagger_s))
        self.generator = StandbyGenerator(
            rated_kw=generator_kw,
            start_delay_s=generator_start_delay_s,
            tank_l=490.0,
            fuel_l=490.0 * setup.uniform(0.85, 0.98),
            idle_l_h=3.0,
            full_load_l_h=25.0,
        )
        n = len(self.pumps)
        self.fuel_tank_l = fuel_day_tank_l
        self.fuel_l = [fuel_day_tank_l * setup.uniform(0.8, 0.95) for _ in range(n)]
        self.coolant_c = [ambient_temp_c] * n
        self.lube_oil_mpa = [0.0] * n
        self.starting_air_mpa = starting_air_mpa

        lv = self.levels
        if initial_level_m is None:
            initial_level_m = lv.stop_m + (lv.start_m - lv.stop_m) * setup.uniform(0.1, 0.6)
        self.volume_m3 = self.storage.volume(initial_level_m)
        self.level_m = self.storage.level(self.volume_m3)
        self.spill_volume_m3 = self.storage.volume(lv.spill_m)
        self.overflow_m3 = 0.0
        self.spilled_at: datetime | None = None
        self.spilling = False
        self.pumped_m3 = 0.0
        if initial_counters:
            years = [p.install_year for p in cfg.pumps if p.install_year is not None]
            if years:
                self.pumped_m3 = max(0.0, (self.start.year - min(years))) * setup.uniform(2e5, 6e5)

        # rain and river
        self.rain_mm_h = 0.0
        self._schedule: list[float] = []
        self._schedule_start = 0
        self._schedule_step = 1
        self._minutes: deque[float] = deque(maxlen=60)
        self._minute_mm = 0.0
        self._dry_ticks = self._ticks(rain_event_gap_s)
        self.rain_total_mm = 0.0
        self.runoff_m3_s = 0.0
        self.base_m3_s = base_flow_m3_min / 60.0
        self.inflow_m3_s = self.base_m3_s
        self._river_rain = 0.0
        self.river_override_m: float | None = None
        self.outer_level_m = self.river_base_m

        # panel and site state
        self.bus_powered = True
        self.gate_position_pct = 100.0
        self.gate_closing = False
        self.gate_fault = False
        self.screen_fault = False
        self.screen_running = False
        self.curtailment_active = False
        self.hwl_float = False
        self.lwl_float = lv.lwl_m is not None and self.level_m < lv.lwl_m
        self.gravity_m3_s = 0.0
        self._dead_since: int | None = None
        self._hwl_run_until = -1
        self._next_base_tick = 0
        self._base_noise = 1.0
        self._inner_noise = 0.0
        self._outer_noise = 0.0

    # --- rain and river -----------------------------------------------------------------------------------

    def set_rain(self, mm_h: float) -> None:
        """Constant rainfall intensity from now on (cancels a hyetograph)."""
        if mm_h < 0:
            raise ValueError("rainfall intensity must be >= 0")
        self._schedule = []
        self.rain_mm_h = mm_h

    def set_hyetograph(
        self, intensities_mm_h: Sequence[float], *, start: datetime | None = None, interval_s: float = 600.0
    ) -> None:
        """Rain from `start` (default: now): intensities_mm_h[k] during the k-th `interval_s`; dry after."""
        if any(i < 0 for i in intensities_mm_h):
            raise ValueError("rainfall intensities must be >= 0")
        begin = self.now if start is None else start
        self._schedule = list(intensities_mm_h)
        self._schedule_start = math.floor((begin - self.start).total_seconds() / self.substep_s + 1e-9)
        self._schedule_step = max(1, self._ticks(interval_s))
        self.rain_mm_h = 0.0

    def set_river_level(self, level_m: float | None) -> None:
        """Hold the outer level at `level_m` (None: follow the rain again)."""
        self.river_override_m = level_m
        if level_m is not None:
            self.outer_level_m = level_m

    def _rain_now(self, tick: int) -> float:
        if self._schedule:
            k = (tick - self._schedule_start) // self._schedule_step
            if tick < self._schedule_start:
                return 0.0
            if k >= len(self._schedule):
                self._schedule = []
                self.rain_mm_h = 0.0
                return 0.0
            self.rain_mm_h = self._schedule[k]
        return self.rain_mm_h

    def _rain_gauge(self, i_mm_h: float, dt: float) -> None:
        mm = i_mm_h * dt / 3600.0
        if i_mm_h > 0:
            if self._dry_ticks >= self._ticks(self.rain_event_gap_s):
                self.rain_total_mm = 0.0
            self._dry_ticks = 0
        else:
            self._dry_ticks += 1
        self.rain_total_mm += mm
        self._minute_mm += mm

    def _close_minute(self) -> None:
        per_minute = self._ticks(60.0)
        if self._tick % per_minute == 0:
            self._minutes.append(self._minute_mm)
            self._minute_mm = 0.0

    @property
    def rain_10min_mm_h(self) -> float:
        return sum(list(self._minutes)[-10:]) * 6.0

    @property
    def rain_60min_mm_h(self) -> float:
        return sum(self._minutes)

    # --- the model ----------------------------------------------------------------------------------------

    def _draw_noise(self) -> None:
        rng = self._noise_rng
        self._inner_noise = rng.gauss(0.0, 0.005)
        self._outer_noise = rng.gauss(0.0, 0.01)

    def _update_floats(self) -> None:
        lv, z, diff = self.levels, self.level_m, self.float_differential_m
        self.hwl_float = z >= lv.hwl_m - diff if self.hwl_float else z >= lv.hwl_m
        if lv.lwl_m is None:
            self.lwl_float = False
        else:
            self.lwl_float = z < lv.lwl_m + diff if self.lwl_float else z < lv.lwl_m

    @property
    def measured_inner_m(self) -> float:
        return self.level_m + self._inner_noise

    def _can_keep(self, i: int) -> bool:
        p = self.pumps[i]
        if p.faulted or not p.auto:
            return False
        return self.fuel_l[i] > 0 if p.engine else self.bus_powered

    def _can_start(self, i: int) -> bool:
        if not self._can_keep(i) or not self.bus_powered:  # engines need auxiliary power to start
            return False
        return not self.pumps[i].engine or self.starting_air_mpa >= self.start_air_min_mpa

    def _gate(self, dt: float) -> None:
        inner, outer = self.level_m, self.outer_level_m
        close_at = self.river.gate_close_m
        if close_at is not None and outer >= close_at and outer > inner:
            self.gate_closing = True
        elif outer < inner:
            self.gate_closing = False
        if self.gate_fault or not self.bus_powered:
            return
        move = 100.0 * dt / self.gate_travel_s
        if self.gate_closing:
            self.gate_position_pct = max(0.0, self.gate_position_pct - move)
        else:
            self.gate_position_pct = min(100.0, self.gate_position_pct + move)

    def _gravity(self, dt: float) -> float:
        inner, floor = self.level_m, max(self.outer_level_m, self.gate_sill_m)
        if self.gate_position_pct <= 0 or self.gate_area_m2 <= 0 or inner <= floor:
            return 0.0
        area = self.gate_area_m2 * self.gate_position_pct / 100.0
        q = GATE_CD * area * math.sqrt(2 * G * (inner - floor))
        return min(q, (self.volume_m3 - self.storage.volume(floor)) / dt)

    def _substep(self) -> None:
        dt = self.substep_s
        tick = self._tick
        self._draw_noise()

        # rain, runoff, river
        i = self._rain_now(tick)
        self._rain_gauge(i, dt)
        q_rational = self.runoff_coefficient * i * self.area_ha / 360.0
        self.runoff_m3_s = _relax(self.runoff_m3_s, q_rational, dt, self.concentration_time_s)
        if tick >= self._next_base_tick:
            self._base_noise = lognormal(self._base_rng, self.noise_sigma)
            self._next_base_tick = tick + max(1, self._ticks(self.noise_period_s))
        self.base_m3_s = self.base_flow_m3_min / 60.0 * self._base_noise
        self.inflow_m3_s = self.runoff_m3_s + self.base_m3_s
        self._river_rain = _relax(self._river_rain, i, dt, self.river_lag_s)
        if self.river_override_m is None:
            self.outer_level_m = self.river_base_m + self.river_gain_m_per_mm_h * self._river_rain
        else:
            self.outer_level_m = self.river_override_m

        # power (auxiliary bus)
        self.generator.update(tick, self.mains_ok, self._ticks)
        powered = self.mains_ok or self.generator.running
        if powered and not self.bus_powered:
            self._dead_since = None
            self.control.start_not_before = tick + self._ticks(self.restart_delay_s)
        elif not powered and self.bus_powered:
            self._dead_since = tick
        self.bus_powered = powered

        # curtailment, gate, pumps
        outer = self.outer_level_m
        if outer >= self.river.stop_pumps_m:
            self.curtailment_active = True
        elif outer < self.river.resume_pumps_m:
            self.curtailment_active = False
        self._gate(dt)
        self._update_floats()
        demand = self.control.demand(self.measured_inner_m)
        if self.hwl_float:
            self._hwl_run_until = tick + self._ticks(self.hwl_min_run_s)
        forced = self.hwl_float or tick < self._hwl_run_until
        want: int | None = None if forced else demand
        if self.lwl_float or self.curtailment_active:
            want = 0
        started = self.control.run(tick, self.pumps, want, self._can_keep, self._can_start)
        if started is not None and self.pumps[started].engine:
            self.starting_air_mpa = max(0.0, self.starting_air_mpa - self.start_air_use_mpa)

        # water balance
        ramp = max(1, self._ticks(self.engine_ramp_s))
        out = 0.0
        for k, p in enumerate(self.pumps):
            if p.running:
                frac = min(1.0, (tick - p.started_tick + 1) / ramp) if p.engine else 1.0
                out += p.flow_m3_s * frac
                p.run_s += dt
                if p.engine:
                    burn = self.fuel_l_per_kwh * p.power_draw_kw * dt / 3600.0
                    self.fuel_l[k] = max(0.0, self.fuel_l[k] - burn)
        self.gravity_m3_s = self._gravity(dt)
        self.pumped_m3 += out * dt
        v = max(0.0, self.volume_m3 + (self.inflow_m3_s - out - self.gravity_m3_s) * dt)
        self.spilling = v > self.spill_volume_m3
        if self.spilling:
            self.overflow_m3 += v - self.spill_volume_m3
            v = self.spill_volume_m3
            if self.spilled_at is None:
                self.spilled_at = self._time_at(tick + 1)
        self.volume_m3 = v
        self.level_m = self.storage.level(v)

        # engines, starting air, screen
        for k, p in enumerate(self.pumps):
            if not p.engine:
                continue
            if p.running:
                self.coolant_c[k] = _relax(self.coolant_c[k], COOLANT_RUN_C, dt, 600.0)
                since = (tick - p.started_tick + 1) * dt
                self.lube_oil_mpa[k] = LUBE_OIL_MPA * min(1.0, since / 10.0)
            else:
                self.coolant_c[k] = _relax(self.coolant_c[k], self.ambient_temp_c, dt, 1800.0)
                self.lube_oil_mpa[k] = 0.0
        if powered:
            self.starting_air_mpa = min(
                self.starting_air_max_mpa, self.starting_air_mpa + self.compressor_mpa_s * dt
            )
        self.screen_running = powered and not self.screen_fault and any(p.running for p in self.pumps)
        aux_kw = 20.0 + 10.0 * sum(p.running for p in self.pumps)  # est.: cooling water, ventilation, screen
        self.generator.burn(aux_kw if not self.mains_ok else 0.0, dt)

        self._end_substep(True)
        self._close_minute()
        self.control.forget_before(self._tick - self._ticks(3600.0))

    # --- scenario controls --------------------------------------------------------------------------------

    def set_generator_fault(self, faulted: bool = True) -> None:
        self.generator.faulted = faulted

    def set_gate_fault(self, faulted: bool = True) -> None:
        """The gate drive fails: the gate stays where it is."""
        self.gate_fault = faulted

    def set_screen_fault(self, faulted: bool = True) -> None:
        self.screen_fault = faulted

    def set_fuel(self, pump: int | str, pct: float) -> None:
        """Set an engine's day tank to `pct` % (refuelling, or a leak)."""
        if not 0 <= pct <= 100:
            raise ValueError("fuel level is a percentage 0..100")
        self.fuel_l[self._pump_index(pump)] = self.fuel_tank_l * pct / 100.0

    def set_level(self, level_m: float) -> None:
        """Put the true inner level somewhere (test set-ups)."""
        self.volume_m3 = self.storage.volume(level_m)
        self.level_m = self.storage.level(self.volume_m3)
        self._update_floats()

    # --- read-outs ----------------------------------------------------------------------------------------

    @property
    def site_power_ok(self) -> bool:
        return self.bus_powered

    @property
    def spill_level_m(self) -> float:
        return self.levels.spill_m

    def pump_available(self, i: int) -> bool:
        """Can the panel run pump i (0-based), now or once the generator has picked up the auxiliaries?"""
        p = self.pumps[i]
        if p.faulted or not p.auto:
            return False
        aux = self.bus_powered or (not self.generator.faulted and self.generator.fuel_l > 0)
        if p.engine:
            return self.fuel_l[i] > 0 and (
                p.running or (aux and self.starting_air_mpa >= self.start_air_min_mpa)
            )
        return aux

    @property
    def major_fault(self) -> bool:
        """No pump can run automatically (faulted, in manual, out of fuel or, electric, without power)."""
        return not any(self.pump_available(i) for i in range(len(self.pumps)))

    @property
    def minor_fault(self) -> bool:
        return (
            any(not self.pump_available(i) for i in range(len(self.pumps)))
            or self.gate_fault
            or self.screen_fault
            or any(self.fuel_low(i) for i in range(len(self.pumps)))
            or self.starting_air_mpa < self.start_air_min_mpa
            or self.generator.faulted
        )

    def fuel_low(self, i: int) -> bool:
        return self.pumps[i].engine and self.fuel_l[i] < 0.25 * self.fuel_tank_l

    def point_values(self) -> PointValues:
        """Every point of deploy/config/maps/storm-canonical.yaml and metrics/storm-metrics.yaml."""
        rv = self.river
        values: PointValues = {
            "mains_failed": not self.mains_ok,
            "generator_running": self.generator.running,
            "generator_fault": self.generator.faulted,
            "discharge_gate_open": self.gate_position_pct >= 99.5,
            "discharge_gate_closed": self.gate_position_pct <= 0.5,
            "discharge_gate_fault": self.gate_fault,
            "curtailment_active": self.curtailment_active,
            "hwl_float": self.hwl_float,
            "screen_running": self.screen_running,
            "screen_fault": self.screen_fault,
            "major_fault": self.major_fault,
            "minor_fault": self.minor_fault,
            "inner_level_m": self.measured_inner_m,
            "outer_level_m": self.outer_level_m + self._outer_noise,
            "discharge_gate_position_pct": self.gate_position_pct,
            "rain_10min_mm_h": self.rain_10min_mm_h,
            "rain_60min_mm_h": self.rain_60min_mm_h,
            "rain_total_mm": self.rain_total_mm,
            "starting_air_pressure_mpa": self.starting_air_mpa,
            "pumps_running": sum(p.running for p in self.pumps),
            "heartbeat": self.heartbeat,
            "pumped_volume_m3": int(self.pumped_m3),
            "gate_close_level_m": rv.gate_close_m if rv.gate_close_m is not None else 0.0,
            "curtail_stop_level_m": rv.stop_pumps_m,
            "curtail_resume_level_m": rv.resume_pumps_m,
            "hwl_level_m": self.levels.hwl_m,
        }
        for k, (start, stop) in enumerate(self.stages, start=1):
            values[f"stage{k}_start_m"] = start
            values[f"stage{k}_stop_m"] = stop
        for k, p in enumerate(self.pumps, start=1):
            i = k - 1
            values[f"pump{k}_running"] = p.running
            values[f"pump{k}_faulted"] = p.faulted
            values[f"pump{k}_ready"] = not p.running and self._can_start(i)
            values[f"pump{k}_run_hours_h"] = int(p.run_s // 3600)
            values[f"pump{k}_starts"] = p.starts
            values[f"pump{k}_fuel_low"] = self.fuel_low(i)
            values[f"pump{k}_engine_fuel_pct"] = (
                100.0 * self.fuel_l[i] / self.fuel_tank_l if p.engine else None
            )
            values[f"pump{k}_cooling_water_temp_c"] = self.coolant_c[i] if p.engine else None
            values[f"pump{k}_lube_oil_pressure_mpa"] = self.lube_oil_mpa[i] if p.engine else None
        return values

    def snapshot(self) -> dict[str, object]:
        """Internal state for determinism checks and debugging."""
        return {
            "tick": self._tick,
            "volume_m3": self.volume_m3,
            "overflow_m3": self.overflow_m3,
            "spilled_at": self.spilled_at,
            "runoff_m3_s": self.runoff_m3_s,
            "outer_level_m": self.outer_level_m,
            "gate_position_pct": self.gate_position_pct,
            "fuel_l": list(self.fuel_l),
            "air": self.starting_air_mpa,
            "rain_total_mm": self.rain_total_mm,
            "minutes": list(self._minutes),
            "pumps": [(p.running, p.faulted, p.run_s, p.starts) for p in self.pumps],
            "points": self.point_values(),
        }
