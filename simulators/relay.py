"""Physics of a relay (sewage) pump station, 汚水中継ポンプ場 (docs/domain.md §4.1): pure, deterministic,
no I/O.

Reference station (est. where not said): 4 pumps × 2.7 m³/min (3 duty + 1 standby, 8.1 m³/min), 15 kW each,
6.6 kV receiving, a 600 PS (441 kW) diesel standby generator with a 4 000 L tank (Minoh/Kayano [S50]), a
pump well of some tens of m² fed by a trunk sewer from a catchment of tens of thousands of people.

Per sub-step (1 s by default, on the grid of `StationModel`):
- Inflow = `DiurnalInflow` (catchment, noise σ 0.08 by default: a large catchment averages out, est.)
  × `rain_factor` + `upstream_inflow_m3_min` (e.g. a manhole pump station or another relay station). With the
  inflow gate closed the sewage is held upstream (`held_m3`) and let in again, at most 1.5 × the station
  capacity, when the gate opens.
- Power: `mains_ok` (the 6.6 kV line) and the receiving breaker (tripped by `set_hv_fault`) give mains on the
  bus; otherwise the generator starts after `generator_start_delay_s` (10–30 s) and carries the bus. When
  mains returns the bus changes back with a `retransfer_break_s` gap (non-synchronised changeover, est.);
  the generator cools down unloaded, then stops. Every time the bus is energised the pumps restart after
  `restart_delay_s`, one start per `stagger_s`. A generator fault (or an empty tank) during an outage leaves
  the bus dead: no pump runs.
- Two level gauges read the true level + noise (one can be biased, frozen or dead: `set_gauge_fault`). The
  panel controls on the higher of the gauges not flagged faulty (conservative against overflow, est.); with
  both dead it has no level and runs pumps only on the HWL float.
- `StagedPumpControl` with one stage per duty pump (`control.stages`, completed by `derive_stages`): starts in
  rotation, the standby pump only in place of a duty pump that cannot run (faulted or in manual). The HWL
  float forces every available pump on for at least `hwl_min_run_s`; the LWL float blocks running.
- Volume balance on the `StageStorage` (pump well + trunk sewer); spill at `levels.spill_m` recorded like the
  manhole model (`spilled_at`, `overflow_m3`).
- Force main: flow = Σ running pumps (electromagnetic meter, ±0.5 %); discharge pressure
  = ρg(H_static + H_friction·(Q/Q_capacity)²) (est. 12 m + 6 m), the static head held by the check valves
  while stopped.
- Screen: runs `screen_run_s` every `screen_interval_s` while powered; while it does not run (fault) the
  screen blinds (fully in 2 h) and the inflow channel level rises by up to 0.4 m (est.).
- H₂S in the pump well: ≈ 3 ppm × (Q_avg / Q_in)^1.5, first-order 10 min (est.: low night flows and long
  force-main retention give more sulphide); a spare sensor is not fitted (`h2s_spare_ppm` None).
- Energy meter (kWh) counts grid energy: pump power + `aux_load_kw` while on mains.
- 重故障 `major_fault`: no pump can run automatically (every pump faulted or in manual, the bus dead for
  longer than `major_after_s`, both level gauges dead, or the pump room flooded).
- 軽故障 `minor_fault`: reduced capacity or redundancy (a pump faulted or in manual, screen fault, a gauge
  dead or the two disagreeing, generator fault or fuel low, an HV protection trip).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import StageStorage
from pumpwatch.simulators.gauges import LevelGauge
from pumpwatch.simulators.generator import StandbyGenerator
from pumpwatch.simulators.inflow import DiurnalInflow, catchment_q_avg_m3_min
from pumpwatch.simulators.pumps import PumpControls, StagedPumpControl, derive_stages, pumps_from_config
from pumpwatch.simulators.station_model import PointValues, StationModel

__all__ = ["HV_VOLTAGE_KV", "RelayPumpStation"]

HV_VOLTAGE_KV = 6.6
RHO_G_MPA_PER_M = 0.00981  # 1 m of water ≈ 9.81 kPa
GAUGE_NOISE_M = 0.003


class RelayPumpStation(PumpControls, StationModel):
    """One simulated relay pump station. `step(now)` moves it on; `point_values()` reads the panel."""

    kind = "relay_pump"

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
        diurnal: bool = True,
        noise_sigma: float = 0.08,
        noise_period_s: float = 300.0,
        rain_factor: float = 1.0,
        upstream_inflow_m3_min: float = 0.0,
        restart_delay_s: float = 5.0,
        stagger_s: float = 10.0,
        float_differential_m: float = 0.05,
        hwl_min_run_s: float = 120.0,
        generator_kw: float = 441.0,
        generator_start_delay_s: float = 20.0,
        generator_cooldown_s: float = 300.0,
        fuel_tank_l: float = 4000.0,
        fuel_full_load_l_h: float = 100.0,
        retransfer_break_s: float = 2.0,
        aux_load_kw: float = 15.0,
        static_head_m: float = 12.0,
        friction_head_m: float = 6.0,
        screen_interval_s: float = 900.0,
        screen_run_s: float = 120.0,
        gauge_deviation_m: float = 0.15,
        major_after_s: float = 60.0,
    ) -> None:
        super().__init__(cfg, seed, start, timezone=timezone, substep_s=substep_s)
        assert cfg.levels is not None
        self.levels = cfg.levels
        self.storage = StageStorage.from_station(cfg)
        self.q_avg_m3_min = catchment_q_avg_m3_min(cfg)
        self.rain_factor = rain_factor
        self.upstream_inflow_m3_min = upstream_inflow_m3_min
        self.restart_delay_s = restart_delay_s
        self.float_differential_m = float_differential_m
        self.hwl_min_run_s = hwl_min_run_s
        self.retransfer_break_s = retransfer_break_s
        self.aux_load_kw = aux_load_kw
        self.static_head_m = static_head_m
        self.friction_head_m = friction_head_m
        self.screen_interval_s = screen_interval_s
        self.screen_run_s = screen_run_s
        self.gauge_deviation_m = gauge_deviation_m
        self.major_after_s = major_after_s

        setup = self.rng("setup")
        self._inflow = DiurnalInflow(
            self.q_avg_m3_min,
            self.rng("inflow"),
            diurnal=diurnal,
            noise_sigma=noise_sigma,
            noise_period_ticks=self._ticks(noise_period_s),
        )
        self._noise_rng = self.rng("noise")
        self.pumps = pumps_from_config(cfg, setup, self.start, initial_counters=initial_counters)
        self.stages = derive_stages(cfg)
        self.control = StagedPumpControl(self.stages, len(self.pumps), self._ticks(stagger_s))
        self.capacity_m3_min = sum(p.rated_flow_m3_min for p in self.pumps if not p.standby)
        self.generator = StandbyGenerator(
            rated_kw=generator_kw,
            start_delay_s=generator_start_delay_s,
            cooldown_s=generator_cooldown_s,
            tank_l=fuel_tank_l,
            fuel_l=fuel_tank_l * setup.uniform(0.85, 0.98),
            full_load_l_h=fuel_full_load_l_h,
        )
        lv = self.levels
        if initial_level_m is None:
            initial_level_m = lv.stop_m + (lv.start_m - lv.stop_m) * setup.uniform(0.1, 0.9)
        self.volume_m3 = self.storage.volume(initial_level_m)
        self.level_m = self.storage.level(self.volume_m3)
        self.gauges = [LevelGauge(last_m=self.level_m), LevelGauge(last_m=self.level_m)]
        self.spill_volume_m3 = self.storage.volume(lv.spill_m)
        self.overflow_m3 = 0.0
        self.spilled_at: datetime | None = None
        self.spilling = False
        self.inflow_m3_s = 0.0
        self.held_m3 = 0.0
        self.pumped_m3 = 0.0
        self.energy_kwh = 0.0
        if initial_counters:
            years = [p.install_year for p in cfg.pumps if p.install_year is not None]
            if years:
                age_days = max(0.0, (self.start.year - min(years)) * 365.25)
                self.energy_kwh = age_days * 24 * setup.uniform(20.0, 40.0)
                self.pumped_m3 = age_days * self.q_avg_m3_min * 1440 * setup.uniform(0.9, 1.1)

        # site state and scenario flags
        self.breaker_closed = True
        self.hv_earth_fault = False
        self.hv_overcurrent = False
        self.inflow_gate_open = True
        self.screen_fault = False
        self.screen_running = False
        self.flooding = False
        self.intrusion = False
        self.hwl_float = False
        self.lwl_float = lv.lwl_m is not None and self.level_m < lv.lwl_m
        self.bus_source: str | None = "mains"  # "mains", "generator" or None (dead)
        self.h2s_ppm = 3.0
        self.load_kw = 0.0
        self.gauge_readings = [self.level_m, self.level_m]
        self.control_level_m: float | None = self.level_m

        self._retransfer_until = 0
        self._dead_since: int | None = None
        self._hwl_run_until = -1
        self._blinding = 0.0
        self._flow_noise = 0.0
        self._pressure_noise = 0.0
        self._hv_noise = 0.0

    # --- the model ----------------------------------------------------------------------------------------

    @property
    def mains_available(self) -> bool:
        """The grid reaches the bus: line live and receiving breaker closed."""
        return self.mains_ok and self.breaker_closed

    @property
    def site_power_ok(self) -> bool:
        return self.bus_source is not None

    def _draw_noise(self) -> None:
        rng = self._noise_rng
        for g in self.gauges:
            g.noise_m = rng.gauss(0.0, GAUGE_NOISE_M)
        for p in self.pumps:
            p.current_noise = max(-0.03, min(0.03, rng.gauss(0.0, 0.01)))
        self._flow_noise = rng.gauss(0.0, 0.005)
        self._pressure_noise = rng.gauss(0.0, 0.002)
        self._hv_noise = rng.gauss(0.0, 0.005)

    def _update_power(self, tick: int) -> None:
        mains = self.mains_available
        self.generator.update(tick, mains, self._ticks)
        before = self.bus_source
        if mains:
            if before == "generator":
                self._retransfer_until = tick + self._ticks(self.retransfer_break_s)
            source = "mains" if tick >= self._retransfer_until else None
        else:
            source = "generator" if self.generator.running else None
        if source is None and before is not None:
            self._dead_since = tick
        elif source is not None and before is None:
            self._dead_since = None
            self.control.start_not_before = tick + self._ticks(self.restart_delay_s)
        self.bus_source = source

    def _update_floats(self) -> None:
        lv, z, diff = self.levels, self.level_m, self.float_differential_m
        self.hwl_float = z >= lv.hwl_m - diff if self.hwl_float else z >= lv.hwl_m
        if lv.lwl_m is None:
            self.lwl_float = False
        else:
            self.lwl_float = z < lv.lwl_m + diff if self.lwl_float else z < lv.lwl_m

    def _control(self, tick: int) -> None:
        self.gauge_readings = [g.read(self.level_m) for g in self.gauges]
        valid = [r for g, r in zip(self.gauges, self.gauge_readings, strict=True) if not g.fault_flag]
        self.control_level_m = max(valid) if valid else None
        demand = self.control.demand(self.control_level_m)
        if self.hwl_float:
            self._hwl_run_until = tick + self._ticks(self.hwl_min_run_s)
        forced = self.hwl_float or tick < self._hwl_run_until
        want: int | None = None if forced else demand
        if self.lwl_float:
            want = 0
        powered = self.bus_source is not None
        pumps = self.pumps

        def can_run(i: int) -> bool:
            return powered and not pumps[i].faulted and pumps[i].auto

        self.control.run(tick, pumps, want, can_run, can_run)

    def _substep(self) -> None:
        dt = self.substep_s
        tick = self._tick
        self._draw_noise()
        q_in = self._inflow.m3_s(tick, self._local_seconds_of_day(tick * dt)) * self.rain_factor
        q_in += self.upstream_inflow_m3_min / 60.0
        self.inflow_m3_s = q_in
        if self.inflow_gate_open:
            release = min(self.held_m3 / dt, 1.5 * self.capacity_m3_min / 60.0) if self.held_m3 > 0 else 0.0
            self.held_m3 -= release * dt
            to_well = q_in + release
        else:
            self.held_m3 += q_in * dt
            to_well = 0.0

        self._update_power(tick)
        self._update_floats()
        self._control(tick)

        out = 0.0
        for p in self.pumps:
            if p.running:
                out += p.flow_m3_s
                p.run_s += dt
        self.pumped_m3 += out * dt
        v = max(0.0, self.volume_m3 + (to_well - out) * dt)
        self.spilling = v > self.spill_volume_m3
        if self.spilling:
            self.overflow_m3 += v - self.spill_volume_m3
            v = self.spill_volume_m3
            if self.spilled_at is None:
                self.spilled_at = self._time_at(tick + 1)
        self.volume_m3 = v
        self.level_m = self.storage.level(v)

        # screen, deodorizer, H2S
        powered = self.bus_source is not None
        interval = max(1, self._ticks(self.screen_interval_s))
        self.screen_running = (
            powered and not self.screen_fault and tick % interval < self._ticks(self.screen_run_s)
        )
        if self.screen_running:
            self._blinding = max(0.0, self._blinding - dt / 60.0)
        else:
            self._blinding = min(1.0, self._blinding + dt / 7200.0)
        ratio = max(q_in * 60.0 / self.q_avg_m3_min, 0.05) if self.q_avg_m3_min > 0 else 1.0
        target = min(30.0, 3.0 * ratio**-1.5)
        self.h2s_ppm += (target - self.h2s_ppm) * dt / 600.0

        # energy and fuel
        self.load_kw = sum(p.power_draw_kw for p in self.pumps) + (self.aux_load_kw if powered else 0.0)
        if self.bus_source == "mains":
            self.energy_kwh += self.load_kw * dt / 3600.0
        self.generator.burn(self.load_kw if self.bus_source == "generator" else 0.0, dt)

        self._end_substep(True)
        self.control.forget_before(self._tick - self._ticks(3600.0))

    # --- scenario controls --------------------------------------------------------------------------------

    def set_generator_fault(self, faulted: bool = True) -> None:
        self.generator.faulted = faulted

    def refuel(self, litres: float | None = None) -> None:
        """Fill the generator's tank (to full, or by `litres`)."""
        g = self.generator
        g.fuel_l = g.tank_l if litres is None else min(g.tank_l, g.fuel_l + litres)

    def set_hv_fault(self, kind: str, faulted: bool = True) -> None:
        """A 6.6 kV protection relay (`"earth"`: ground fault GR, `"overcurrent"`: OCR) trips the receiving
        breaker; clearing every fault recloses it."""
        if kind == "earth":
            self.hv_earth_fault = faulted
        elif kind == "overcurrent":
            self.hv_overcurrent = faulted
        else:
            raise ValueError("HV fault kind is 'earth' or 'overcurrent'")
        self.breaker_closed = not (self.hv_earth_fault or self.hv_overcurrent)

    def set_gauge_fault(self, gauge: int, mode: str | None = "freeze", *, bias_m: float = 0.0) -> None:
        """Level gauge 1 or 2: `"bias"` (reads + bias_m), `"freeze"`, `"dead"` (reads 0, flagged), None."""
        if gauge not in (1, 2):
            raise KeyError(f"station {self.id} has level gauges 1 and 2, not {gauge}")
        self.gauges[gauge - 1].set_fault(mode, bias_m)

    def set_inflow_gate(self, open_: bool) -> None:
        self.inflow_gate_open = open_

    def set_screen_fault(self, faulted: bool = True) -> None:
        self.screen_fault = faulted

    def set_level(self, level_m: float) -> None:
        """Put the true level somewhere (test set-ups)."""
        self.volume_m3 = self.storage.volume(level_m)
        self.level_m = self.storage.level(self.volume_m3)
        self._update_floats()

    # --- read-outs ----------------------------------------------------------------------------------------

    @property
    def spill_level_m(self) -> float:
        return self.levels.spill_m

    @property
    def starts_last_hour(self) -> int:
        return len(self.control.start_ticks)

    @property
    def gauge_deviation(self) -> bool:
        a, b = self.gauge_readings
        return abs(a - b) > self.gauge_deviation_m

    @property
    def major_fault(self) -> bool:
        no_pump = not any(not p.faulted and p.auto for p in self.pumps)
        dead = self._dead_since is not None and self._tick - self._dead_since >= self._ticks(
            self.major_after_s
        )
        gauges_lost = all(g.fault_flag for g in self.gauges)
        return no_pump or dead or gauges_lost or self.flooding

    @property
    def minor_fault(self) -> bool:
        return (
            any(p.faulted or not p.auto for p in self.pumps)
            or self.screen_fault
            or any(g.fault_flag for g in self.gauges)
            or self.gauge_deviation
            or self.generator.faulted
            or self.generator.fuel_low
            or self.hv_earth_fault
            or self.hv_overcurrent
        )

    @property
    def force_main_flow_m3_min(self) -> float:
        q = sum(p.flow_m3_s for p in self.pumps if p.running) * 60.0
        return q * (1.0 + self._flow_noise) if q > 0 else 0.0

    @property
    def discharge_pressure_mpa(self) -> float:
        q = sum(p.flow_m3_s for p in self.pumps if p.running) * 60.0
        head = self.static_head_m + self.friction_head_m * (q / self.capacity_m3_min) ** 2
        return RHO_G_MPA_PER_M * head + self._pressure_noise

    @property
    def inflow_channel_level_m(self) -> float:
        lv = self.levels
        depth = 0.5 * (self.inflow_m3_s * 60.0 / self.capacity_m3_min) ** 0.6 + 0.05 + 0.4 * self._blinding
        return max(self.level_m, lv.inlet_invert_m + depth)

    def point_values(self) -> PointValues:
        """Every point of deploy/config/maps/relay-canonical.yaml and metrics/relay-metrics.yaml."""
        lv = self.levels
        powered = self.bus_source is not None
        values: PointValues = {
            "mains_failed": not self.mains_ok,
            "hv_receiving_ok": self.mains_available,
            "hv_earth_fault": self.hv_earth_fault,
            "hv_overcurrent": self.hv_overcurrent,
            "generator_running": self.generator.running,
            "generator_fault": self.generator.faulted,
            "generator_fuel_low": self.generator.fuel_low,
            "on_generator_power": self.bus_source == "generator",
            "hwl_float": self.hwl_float,
            "lwl_float": self.lwl_float,
            "level_gauge_1_fault": self.gauges[0].fault_flag,
            "level_gauge_2_fault": self.gauges[1].fault_flag,
            "level_gauge_deviation": self.gauge_deviation,
            "inflow_gate_open": self.inflow_gate_open,
            "inflow_gate_closed": not self.inflow_gate_open,
            "screen_running": self.screen_running,
            "screen_fault": self.screen_fault,
            "deodorizer_running": powered,
            "flooding": self.flooding,
            "intrusion": self.intrusion,
            "major_fault": self.major_fault,
            "minor_fault": self.minor_fault,
            "well_level_1_m": self.gauge_readings[0],
            "well_level_2_m": self.gauge_readings[1],
            "inflow_channel_level_m": self.inflow_channel_level_m,
            "discharge_pressure_mpa": self.discharge_pressure_mpa,
            "force_main_flow_m3_min": self.force_main_flow_m3_min,
            "hv_voltage_kv": HV_VOLTAGE_KV * (1.0 + self._hv_noise) if self.mains_ok else 0.0,
            "receiving_power_kw": self.load_kw if self.bus_source == "mains" else 0.0,
            "generator_fuel_pct": self.generator.fuel_pct,
            "h2s_ppm": self.h2s_ppm,
            "h2s_spare_ppm": None,  # spare sensor not fitted: the map's not_available word
            "pumps_running": sum(p.running for p in self.pumps),
            "starts_last_hour": self.starts_last_hour,
            "heartbeat": self.heartbeat,
            "energy_kwh": int(self.energy_kwh),
            "pumped_volume_m3": int(self.pumped_m3),
            "hwl_level_m": lv.hwl_m,
            "lwl_level_m": lv.lwl_m if lv.lwl_m is not None else 0.0,
            "spill_level_m": lv.spill_m,
        }
        for k, (start, stop) in enumerate(self.stages, start=1):
            values[f"stage{k}_start_m"] = start
            values[f"stage{k}_stop_m"] = stop
        for k, p in enumerate(self.pumps, start=1):
            values[f"pump{k}_running"] = p.running
            values[f"pump{k}_faulted"] = p.faulted
            values[f"pump{k}_auto"] = p.auto
            values[f"pump{k}_current_a"] = p.current_a
            values[f"pump{k}_run_hours_h"] = int(p.run_s // 3600)
            values[f"pump{k}_starts"] = p.starts
        return values

    def snapshot(self) -> dict[str, object]:
        """Internal state for determinism checks and debugging."""
        return {
            "tick": self._tick,
            "volume_m3": self.volume_m3,
            "overflow_m3": self.overflow_m3,
            "spilled_at": self.spilled_at,
            "fuel_l": self.generator.fuel_l,
            "energy_kwh": self.energy_kwh,
            "next_pump": self.control.next_pump,
            "stage_on": list(self.control.stage_on),
            "pumps": [(p.running, p.faulted, p.run_s, p.starts) for p in self.pumps],
            "points": self.point_values(),
        }
