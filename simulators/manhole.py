"""The simulated manhole pump station (docs/domain.md §1.2–§1.5): pure, deterministic, no I/O.

`ManholePumpStation` (§1.2–§1.5), per sub-step:
- Inflow from `DiurnalInflow` (catchment population × L/person/day) × `rain_factor`.
- Volume balance on the `StageStorage` of the station (wet well + upstream sewers); level = storage.level(V)
  below the inlet invert, above it the level of the `FlowTable` at the mean inflow when the level rose past
  the invert (the flow already in the pipes is not storage).
  At the spill level the volume is capped and the excess counted as overflow (`overflow_m3`, `spilled_at`).
- The panel (§1.4) controls on the *measured* level: lead pump at start, second at lag, all stop at stop; the
  lead alternates every cycle; faulted pumps are skipped (standby pumps only replace faulted duty pumps).
  The HWL float (true level ≥ hwl, 5 cm differential) forces every available pump on for at least
  `hwl_min_run_s`; the LWL float (true level < lwl) blocks running. Mains failure or phase loss stops all
  pumps; when power returns they restart after `restart_delay_s`, never two starts within `stagger_s`.
- Pumps deliver rated flow × (1 − wear) × (1 − 0.4·clog) and draw rated current × load (0.92–1.0, ±1 %
  noise) × (1 + 0.3·clog) while running. `clog` is a severity 0..1 (+0..30 % current, −0..40 % flow).
- Counters: run seconds and starts per pump, starts in the last hour (station), a heartbeat that counts
  seconds while the telemetry unit has power (mains or battery), wrapping at 65536.
- Mains voltage ≈ 200 V (σ 1 V) or 0; telemetry battery 13.6 V on charge, on battery 12.8 V → 10.5 V
  over `battery_hours` (flat battery: the unit stops, the heartbeat freezes), `battery_low` below 11.5 V.

Scenario knobs are plain attributes or setters (`set_mains`, `set_pump_fault`, `set_clog`, `set_wear`,
`set_sensor_stuck_low`, `rain_factor`, and the panel flags `earth_leakage`, `door_open`, …). Apply them after
stepping to the time they take effect.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta, tzinfo

from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import FlowTable, StageStorage
from pumpwatch.simulators.inflow import DiurnalInflow, catchment_q_avg_m3_min, diurnal_factor
from pumpwatch.simulators.pumps import PumpControls, pumps_from_config
from pumpwatch.simulators.rtu import BATTERY_EMPTY_V, BATTERY_FLOAT_V, BATTERY_FULL_V, BATTERY_LOW_V
from pumpwatch.simulators.station_model import PointValues, StationModel

__all__ = ["ManholePumpStation"]

SUPPLY_VOLTAGE_V = 200.0


class ManholePumpStation(PumpControls, StationModel):
    """One simulated manhole pump station. `step(now)` moves it on; `point_values()` reads the panel."""

    kind = "manhole_pump"

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
        noise_sigma: float = 0.3,
        noise_period_s: float = 120.0,
        rain_factor: float = 1.0,
        restart_delay_s: float = 2.0,
        stagger_s: float = 5.0,
        float_differential_m: float = 0.05,
        hwl_min_run_s: float = 60.0,
        battery_hours: float = 6.0,
        battery_recharge_hours: float = 4.0,
    ) -> None:
        super().__init__(cfg, seed, start, timezone=timezone, substep_s=substep_s)
        assert cfg.levels is not None  # guaranteed by StationConfig for pumping kinds
        self.levels = cfg.levels
        self.storage = StageStorage.from_station(cfg)
        self.diurnal = diurnal
        self.noise_sigma = noise_sigma
        self.noise_period_s = noise_period_s
        self.rain_factor = rain_factor
        self.restart_delay_s = restart_delay_s
        self.stagger_s = stagger_s
        self.float_differential_m = float_differential_m
        self.hwl_min_run_s = hwl_min_run_s
        self.battery_hours = battery_hours
        self.battery_recharge_hours = battery_recharge_hours

        self.q_avg_m3_min = catchment_q_avg_m3_min(cfg)

        # Independent random streams: a scenario that changes one thing does not shift the others.
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

        lv = self.levels
        if initial_level_m is None:
            initial_level_m = lv.stop_m + (lv.start_m - lv.stop_m) * setup.uniform(0.1, 0.9)
        self.volume_m3 = self.storage.volume(initial_level_m)
        self.level_m = self.storage.level(self.volume_m3)  # true (physical) level
        self.spill_volume_m3 = self.storage.volume(lv.spill_m)
        # Above the inlet invert the sewer fills only above the flow already in it (hydraulics.FlowTable):
        # the table for the mean inflow when the level rose past the invert, kept until it falls below.
        self._inlet_volume_m3 = self.storage.volume(lv.inlet_invert_m)
        self._flow_table: FlowTable | None = None
        self.overflow_m3 = 0.0
        self.spilled_at: datetime | None = None
        self.spilling = False
        self.inflow_m3_s = 0.0

        # panel and site state
        self.earth_leakage = False
        self.phase_loss = False
        self.level_sensor_fault = False
        self.sensor_stuck_low = False
        self.door_open = False
        self.local_mode = False
        self.spd_tripped = False
        self.panel_overtemp = False
        self.hwl_float = False
        self.lwl_float = lv.lwl_m is not None and self.level_m < lv.lwl_m
        self.float_stuck: dict[str, bool] = {}  # "hwl"/"lwl" -> the state it is stuck in (scenarios)
        self.battery_soc = 1.0
        self.battery_voltage_v = BATTERY_FLOAT_V
        self.supply_voltage_v = SUPPLY_VOLTAGE_V

        self._demand = 0
        self._lead = 0
        self._cycle_lead = 0
        self._powered = True
        self._start_not_before = 0
        self._last_start_tick: int | None = None
        self._hwl_run_until = -1
        self._start_ticks: deque[int] = deque()
        self._level_noise = 0.0
        self._voltage_noise = 0.0
        self._battery_noise = 0.0

    # --- the model ----------------------------------------------------------------------------------------

    def _inflow_m3_s(self, t_s: float) -> float:
        return self._inflow.m3_s(self._tick, self._local_seconds_of_day(t_s)) * self.rain_factor

    def _draw_noise(self) -> None:
        rng = self._noise_rng
        self._level_noise = rng.gauss(0.0, 0.002)
        self._voltage_noise = rng.gauss(0.0, 1.0)
        self._battery_noise = rng.gauss(0.0, 0.01)
        for p in self.pumps:
            p.current_noise = max(-0.03, min(0.03, rng.gauss(0.0, 0.01)))

    @property
    def measured_level_m(self) -> float:
        """What the level transmitter reports (0 when stuck low)."""
        return 0.0 if self.sensor_stuck_low else self.level_m + self._level_noise

    def _update_floats(self) -> None:
        lv, z, diff = self.levels, self.level_m, self.float_differential_m
        self.hwl_float = z >= lv.hwl_m - diff if self.hwl_float else z >= lv.hwl_m
        if lv.lwl_m is None:
            self.lwl_float = False
        else:
            self.lwl_float = z < lv.lwl_m + diff if self.lwl_float else z < lv.lwl_m
        if "hwl" in self.float_stuck:
            self.hwl_float = self.float_stuck["hwl"]
        if "lwl" in self.float_stuck:
            self.lwl_float = self.float_stuck["lwl"]

    def _rotation(self) -> list[int]:
        """Pumps in the order the panel would start them: duty pumps from the lead on, then standby."""
        n = len(self.pumps)
        duty = [(self._lead + k) % n for k in range(n) if not self.pumps[(self._lead + k) % n].standby]
        standby = [i for i in range(n) if self.pumps[i].standby]
        available_duty = [i for i in duty if not self.pumps[i].faulted]
        n_duty = len(duty)
        # A standby pump is used only in place of a faulted duty pump.
        spare = n_duty - len(available_duty)
        return available_duty + [i for i in standby if not self.pumps[i].faulted][:spare]

    def _control(self) -> None:
        lv, tick = self.levels, self._tick
        was_running = any(p.running for p in self.pumps)
        for p in self.pumps:
            if p.faulted:
                p.running = False
        if not (self.mains_ok and not self.phase_loss):
            for p in self.pumps:
                p.running = False
            self._demand = 0
            self._powered = False
        else:
            if not self._powered:
                self._powered = True
                self._start_not_before = tick + self._ticks(self.restart_delay_s)
            z = self.measured_level_m
            d = self._demand
            if lv.lag_m is not None and z >= lv.lag_m:
                d = 2
            elif z >= lv.start_m:
                d = max(d, 1)
            elif z <= lv.stop_m:
                d = 0
            self._demand = d
            if self.hwl_float:
                self._hwl_run_until = tick + self._ticks(self.hwl_min_run_s)
            order = self._rotation()
            forced = self.hwl_float or tick < self._hwl_run_until
            want = len(order) if forced else min(d, len(order))
            if self.lwl_float:
                want = 0
            running = [i for i, p in enumerate(self.pumps) if p.running]
            if len(running) > want:
                running.sort(key=lambda i: self.pumps[i].started_tick, reverse=True)
                for i in running[: len(running) - want]:
                    self.pumps[i].running = False
            elif (
                len(running) < want
                and tick >= self._start_not_before
                and (
                    self._last_start_tick is None
                    or tick - self._last_start_tick >= self._ticks(self.stagger_s)
                )
            ):
                pick = next(i for i in order if not self.pumps[i].running)
                if not running:
                    self._cycle_lead = pick
                p = self.pumps[pick]
                p.running = True
                p.starts += 1
                p.started_tick = tick
                self._last_start_tick = tick
                self._start_ticks.append(tick)
        if was_running and not any(p.running for p in self.pumps):
            self._lead = (self._cycle_lead + 1) % len(self.pumps)  # alternate every cycle

    def _substep(self) -> None:
        dt = self.substep_s
        t_s = self._tick * dt
        self._draw_noise()
        self.inflow_m3_s = self._inflow_m3_s(t_s)
        self._update_floats()
        self._control()

        out = 0.0
        for p in self.pumps:
            if p.running:
                out += p.flow_m3_s
                p.run_s += dt
        v = max(0.0, self.volume_m3 + (self.inflow_m3_s - out) * dt)
        if v <= self._inlet_volume_m3:
            self._flow_table = None
            self.spill_volume_m3 = self.storage.volume(self.levels.spill_m)
        elif self._flow_table is None:
            q_mean = self.q_avg_m3_min * self.rain_factor
            if self.diurnal:
                q_mean *= diurnal_factor(self._local_seconds_of_day(t_s))
            self._flow_table = self.storage.with_flow(q_mean)
            self.spill_volume_m3 = self._flow_table.volume(self.levels.spill_m)
        self.spilling = v > self.spill_volume_m3
        if self.spilling:
            self.overflow_m3 += v - self.spill_volume_m3
            v = self.spill_volume_m3
            if self.spilled_at is None:
                self.spilled_at = self.start + timedelta(seconds=(self._tick + 1) * dt)
        self.volume_m3 = v
        self.level_m = self._flow_table.level(v) if self._flow_table is not None else self.storage.level(v)

        # power supply and telemetry battery
        if self.mains_ok:
            self.battery_soc = min(1.0, self.battery_soc + dt / (self.battery_recharge_hours * 3600.0))
            self.battery_voltage_v = BATTERY_FLOAT_V + self._battery_noise
            self.supply_voltage_v = 0.0 if self.phase_loss else SUPPLY_VOLTAGE_V + self._voltage_noise
        else:
            self.battery_soc = max(0.0, self.battery_soc - dt / (self.battery_hours * 3600.0))
            v_batt = BATTERY_EMPTY_V + (BATTERY_FULL_V - BATTERY_EMPTY_V) * self.battery_soc
            self.battery_voltage_v = v_batt + self._battery_noise
            self.supply_voltage_v = 0.0

        self._end_substep(self.telemetry_alive)
        horizon = self._tick - self._ticks(3600.0)
        while self._start_ticks and self._start_ticks[0] < horizon:
            self._start_ticks.popleft()

    # --- scenario controls --------------------------------------------------------------------------------

    def set_wear(self, pump: int | str, wear: float) -> None:
        if not 0 <= wear < 1:
            raise ValueError("wear must be in [0, 1)")
        self.pump(pump).wear = wear

    def set_sensor_stuck_low(self, stuck: bool = True, *, fault_flag: bool = True) -> None:
        """The level transmitter reads 0 m; with `fault_flag` the panel also sees the loop under range."""
        self.sensor_stuck_low = stuck
        self.level_sensor_fault = stuck and fault_flag

    def set_float_stuck(self, which: str, state: bool | None) -> None:
        """The HWL or LWL float switch sticks tripped (True) or clear (False) whatever the level; None frees
        it. A stuck-clear HWL float no longer backs up a failed transmitter; a stuck-tripped LWL float
        blocks every pump."""
        if which not in ("hwl", "lwl"):
            raise ValueError("float is 'hwl' or 'lwl'")
        if state is None:
            self.float_stuck.pop(which, None)
        else:
            self.float_stuck[which] = state
        self._update_floats()

    def set_level(self, level_m: float) -> None:
        """Put the true level somewhere (test set-ups)."""
        self.volume_m3 = self.storage.volume(level_m)
        self.level_m = self.storage.level(self.volume_m3)
        self._update_floats()

    # --- read-outs ----------------------------------------------------------------------------------------

    @property
    def telemetry_alive(self) -> bool:
        return self.mains_ok or self.battery_soc > 0.0

    @property
    def spill_level_m(self) -> float:
        return self.levels.spill_m

    @property
    def starts_last_hour(self) -> int:
        return len(self._start_ticks)

    @property
    def battery_low(self) -> bool:
        return self.battery_voltage_v < BATTERY_LOW_V

    def point_values(self) -> PointValues:
        """Every canonical point (deploy/config/maps/mps-canonical.yaml) as the panel reports it now."""
        lv = self.levels
        running = sum(p.running for p in self.pumps)
        values: PointValues = {
            "mains_failed": not self.mains_ok,
            "hwl_float": self.hwl_float,
            "lwl_float": self.lwl_float,
            "earth_leakage": self.earth_leakage,
            "phase_loss": self.phase_loss,
            "level_sensor_fault": self.level_sensor_fault,
            "door_open": self.door_open,
            "local_mode": self.local_mode,
            "spd_tripped": self.spd_tripped,
            "battery_low": self.battery_low,
            "panel_overtemp": self.panel_overtemp,
            "both_running": running >= 2,
            "wet_well_level_m": self.measured_level_m,
            "supply_voltage_v": self.supply_voltage_v,
            "starts_last_hour": self.starts_last_hour,
            "heartbeat": self.heartbeat,
            "battery_voltage_v": self.battery_voltage_v,
            "stop_level_m": lv.stop_m,
            "start_level_m": lv.start_m,
            "lag_level_m": lv.lag_m if lv.lag_m is not None else lv.start_m,
            "hwl_level_m": lv.hwl_m,
            "lwl_level_m": lv.lwl_m if lv.lwl_m is not None else 0.0,
        }
        for k, p in enumerate(self.pumps, start=1):
            values[f"pump{k}_running"] = p.running
            values[f"pump{k}_faulted"] = p.faulted
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
            "battery_soc": self.battery_soc,
            "lead": self._lead,
            "demand": self._demand,
            "pumps": [(p.running, p.faulted, p.run_s, p.starts) for p in self.pumps],
            "points": self.point_values(),
        }
