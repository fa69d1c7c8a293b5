"""Physics of a small activated-sludge treatment plant, 処理場 (docs/domain.md §4.3): pure, deterministic,
no I/O.

A lumped model of what the top-level screen shows, not an ASM1 simulation. Figures are est. unless said:
influent BOD 125, SS 71 mg/L and effluent BOD 2.9 (limit 15), SS 1.2 (limit 40) mg/L are the reference
small plant of §4.3 [S60]; MLSS 2 767 mg/L [S60]; DO setpoint 2 mg/L (1.5–2 typical).

Per sub-step (1 s by default, on the grid of `StationModel`):
- Inflow = `design_flow_m3_d × load_fraction` (0.75: design is the daily maximum) × the §1.3 diurnal profile ×
  lognormal noise (σ 0.05: a whole town) × `rain_factor` (infiltration/inflow in wet weather; `set_rain(mm_h)`
  sets it to 1 + mm_h/20, at most 3). Influent BOD and SS follow the profile mildly (0.85 + 0.15·f) and are
  diluted by rain (÷ rain_factor^0.7). Effluent flow follows inflow through a first-order lag
  (`effluent_lag_s`, 1 h).
- Organic load L = (Q/Q_avg)·(BOD/125), smoothed over 30 min; biomass activity a ∈ (0, 1] (1 healthy; a toxic
  shock drops it, it recovers with `recovery_s`, 24 h).
- Aeration: oxygen uptake OUR = 30 mg/L/h × L × a; dDO/dt = kLa·(DOsat − DO) − OUR with DOsat 8.2 mg/L and
  kLa ∝ air flow, calibrated so the average load needs `air_per_m3` (6 m³ air per m³ sewage) at the setpoint.
  A PI controller (Kp 0.5 × nominal air per mg/L, Ti 10 min) sets the air demand; blowers (3 by default,
  each 0.8 × nominal air, turn-down to 50 %) are sequenced on demand: one more after 2 min above 95 % of the
  running capacity, one fewer after 5 min below 90 % of one fewer's; faulted blowers are skipped.
- Effluent BOD → BOD_in × 0.023 × √L / a × (1 + 3·max(0, 1.2 − DO)/1.2), lagged 2 h: ≈ 2.9 mg/L normally,
  over the limit after a severe toxic shock or hours without air at high load. Effluent SS → 1.2 × (Q/Q_avg)²
  × (1 + 2(1 − a)), lagged 1 h. pH 7.0 ± 0.03 (− 0.3·(1 − a)).
- Power: process load 0.22 kWh/m³ of inflow + 1.4 kW per m³/min of air (blowers); kWh counted on mains. On
  mains failure the generator starts after `generator_start_delay_s` and carries the process and at most
  `generator_blowers` blowers; a generator fault leaves the plant without power (no aeration).
- 重故障 `major_fault`: no blower running (all faulted or no power), power lost without generator for
  longer than `major_after_s`, or effluent BOD over its limit.
- 軽故障 `minor_fault`: a blower faulted, generator fault or fuel low, effluent SS over its limit, DO under
  0.5 mg/L.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, tzinfo

from pumpwatch.core.config.models import StationConfig
from pumpwatch.simulators.generator import StandbyGenerator
from pumpwatch.simulators.inflow import DiurnalInflow, diurnal_factor
from pumpwatch.simulators.station_model import PointValues, StationModel

__all__ = ["Blower", "TreatmentPlant"]

INFLUENT_BOD_MG_L = 125.0
INFLUENT_SS_MG_L = 71.0
EFFLUENT_BOD_RATIO = 0.0232  # 125 → 2.9 mg/L
EFFLUENT_SS_MG_L = 1.2
MLSS_MG_L = 2767.0
DO_SAT_MG_L = 8.2


def _relax(x: float, target: float, dt: float, tau: float) -> float:
    return target + (x - target) * math.exp(-dt / tau) if tau > 0 else target


@dataclass
class Blower:
    name: str
    capacity_m3_min: float
    running: bool = False
    faulted: bool = False
    run_s: float = 0.0
    starts: int = 0
    started_tick: int = -1


class TreatmentPlant(StationModel):
    """One simulated treatment plant. `step(now)` moves it on; `point_values()` reads the central panel."""

    kind = "treatment_plant"

    def __init__(
        self,
        cfg: StationConfig,
        seed: int,
        start: datetime,
        *,
        timezone: str | tzinfo = "Asia/Tokyo",
        substep_s: float = 1.0,
        initial_counters: bool = True,
        diurnal: bool = True,
        noise_sigma: float = 0.05,
        noise_period_s: float = 300.0,
        rain_factor: float = 1.0,
        load_fraction: float = 0.75,
        effluent_lag_s: float = 3600.0,
        blowers: int = 3,
        air_per_m3: float = 6.0,
        do_setpoint_mg_l: float = 2.0,
        our_nominal_mg_l_h: float = 30.0,
        kp_per_mg_l: float = 0.5,
        ti_s: float = 600.0,
        blower_min_fraction: float = 0.5,
        blower_start_delay_s: float = 120.0,
        blower_stop_delay_s: float = 300.0,
        blower_stagger_s: float = 30.0,
        restart_delay_s: float = 10.0,
        quality_lag_s: float = 7200.0,
        recovery_s: float = 86400.0,
        kwh_per_m3: float = 0.22,
        blower_kw_per_m3_min: float = 1.4,
        generator_kw: float | None = None,
        generator_start_delay_s: float = 20.0,
        generator_blowers: int = 1,
        fuel_tank_l: float = 1950.0,
        major_after_s: float = 60.0,
    ) -> None:
        super().__init__(cfg, seed, start, timezone=timezone, substep_s=substep_s)
        assert cfg.plant is not None  # guaranteed by StationConfig
        if blowers < 1:
            raise ValueError("a plant needs at least one blower")
        self.design = cfg.plant
        self.q_avg_m3_d = cfg.plant.design_flow_m3_d * load_fraction
        self.q_avg_m3_min = self.q_avg_m3_d / 1440.0
        self.rain_factor = rain_factor
        self.rain_mm_h = 0.0
        self.effluent_lag_s = effluent_lag_s
        self.do_setpoint_mg_l = do_setpoint_mg_l
        self.our_nominal = our_nominal_mg_l_h
        self.blower_min_fraction = blower_min_fraction
        self.blower_start_delay_s = blower_start_delay_s
        self.blower_stop_delay_s = blower_stop_delay_s
        self.blower_stagger_s = blower_stagger_s
        self.restart_delay_s = restart_delay_s
        self.quality_lag_s = quality_lag_s
        self.recovery_s = recovery_s
        self.kwh_per_m3 = kwh_per_m3
        self.blower_kw_per_m3_min = blower_kw_per_m3_min
        self.generator_blowers = generator_blowers
        self.major_after_s = major_after_s

        self.air_nominal_m3_min = self.q_avg_m3_d * air_per_m3 / 1440.0
        self.kla_per_air = our_nominal_mg_l_h / ((DO_SAT_MG_L - do_setpoint_mg_l) * self.air_nominal_m3_min)
        self.kp = kp_per_mg_l * self.air_nominal_m3_min
        self.ki = self.kp / ti_s
        cap = 0.8 * self.air_nominal_m3_min
        self.blowers = [Blower(f"blower{k}", cap) for k in range(1, blowers + 1)]

        setup = self.rng("setup")
        self._inflow = DiurnalInflow(
            self.q_avg_m3_min,
            self.rng("inflow"),
            diurnal=diurnal,
            noise_sigma=noise_sigma,
            noise_period_ticks=self._ticks(noise_period_s),
        )
        self.diurnal = diurnal
        self._noise_rng = self.rng("noise")
        if generator_kw is None:  # process at peak plus the blowers it carries, 30 % margin (est.)
            peak_kw = kwh_per_m3 * self.q_avg_m3_min * 60 * 1.6
            generator_kw = 1.3 * (peak_kw + generator_blowers * cap * blower_kw_per_m3_min)
        self.generator = StandbyGenerator(
            rated_kw=generator_kw,
            start_delay_s=generator_start_delay_s,
            tank_l=fuel_tank_l,
            fuel_l=fuel_tank_l * setup.uniform(0.85, 0.98),
            idle_l_h=0.03 * generator_kw,
            full_load_l_h=0.25 * generator_kw,
        )

        # steady state at the start time's load
        f = diurnal_factor(self._local_seconds_of_day(0.0)) if diurnal else 1.0
        self.inflow_m3_min = self.q_avg_m3_min * f * rain_factor
        self.effluent_m3_min = self.inflow_m3_min
        self.influent_bod_mg_l = INFLUENT_BOD_MG_L * (0.85 + 0.15 * f)
        self.influent_ss_mg_l = INFLUENT_SS_MG_L * (0.85 + 0.15 * f)
        self.load = self._load_now()
        self.activity = 1.0
        self.do_mg_l = do_setpoint_mg_l
        self._integral = self._air_for(self.do_mg_l, self.load)
        self.air_demand_m3_min = self._integral
        n_start = min(len(self.blowers), max(1, math.ceil(self._integral / (0.95 * cap))))
        for b in self.blowers[:n_start]:
            b.running = True
        self.air_m3_min = self._deliverable(self._integral)
        self.effluent_bod_mg_l = self._bod_target()
        self.effluent_ss_mg_l = self._ss_target()
        self.ph = 7.0
        self.mlss_mg_l = MLSS_MG_L * setup.uniform(0.95, 1.05)
        self.energy_kwh = 0.0
        self.influent_total_m3 = 0.0
        if initial_counters:
            years = 5 + setup.random() * 20
            self.energy_kwh = years * 365.25 * self.q_avg_m3_d * 0.36
            self.influent_total_m3 = years * 365.25 * self.q_avg_m3_d
        self.power_kw = self.kwh_per_m3 * self.inflow_m3_min * 60.0 + blower_kw_per_m3_min * self.air_m3_min
        self.bus_source: str | None = "mains"
        self._dead_since: int | None = None
        self._start_not_before = 0
        self._last_blower_start: int | None = None
        self._more_since: int | None = None
        self._less_since: int | None = None
        self._do_noise = 0.0
        self._ph_noise = 0.0
        self._quality_noise = 1.0

    # --- the model ----------------------------------------------------------------------------------------

    def _load_now(self) -> float:
        q = self.inflow_m3_min / self.q_avg_m3_min if self.q_avg_m3_min > 0 else 0.0
        return q * self.influent_bod_mg_l / INFLUENT_BOD_MG_L

    def _air_for(self, do: float, load: float) -> float:
        """Air flow (m³/min) that holds `do` at `load` in steady state."""
        our = self.our_nominal * load * self.activity
        return our / (self.kla_per_air * max(DO_SAT_MG_L - do, 0.1))

    def _blower_available(self, b: Blower) -> bool:
        return not b.faulted and self.bus_source is not None

    def _max_running(self) -> int:
        n = sum(self._blower_available(b) for b in self.blowers)
        return min(n, self.generator_blowers) if self.bus_source == "generator" else n

    def _deliverable(self, demand: float) -> float:
        running = [b for b in self.blowers if b.running]
        if not running:
            return 0.0
        cap = sum(b.capacity_m3_min for b in running)
        return min(max(demand, self.blower_min_fraction * cap), cap)

    def _bod_target(self) -> float:
        do_factor = 1.0 + 3.0 * max(0.0, 1.2 - self.do_mg_l) / 1.2
        ratio = EFFLUENT_BOD_RATIO * math.sqrt(max(self.load, 0.0)) / self.activity * do_factor
        return max(0.5, self.influent_bod_mg_l * min(ratio, 1.0))

    def _ss_target(self) -> float:
        hyd = self.inflow_m3_min / self.q_avg_m3_min if self.q_avg_m3_min > 0 else 1.0
        return max(0.3, EFFLUENT_SS_MG_L * hyd**2 * (1.0 + 2.0 * (1.0 - self.activity)))

    def _update_power(self, tick: int) -> None:
        self.generator.update(tick, self.mains_ok, self._ticks)
        before = self.bus_source
        source = "mains" if self.mains_ok else ("generator" if self.generator.running else None)
        if source is None and before is not None:
            self._dead_since = tick
        elif source is not None and before is None:
            self._dead_since = None
            self._start_not_before = tick + self._ticks(self.restart_delay_s)
        self.bus_source = source

    def _sequence_blowers(self, tick: int) -> None:
        for b in self.blowers:
            if b.running and not self._blower_available(b):
                b.running = False
        running = [b for b in self.blowers if b.running]
        limit = self._max_running()
        if len(running) > limit:
            running.sort(key=lambda b: b.started_tick)
            running[0].running = False
            return
        cap = self.blowers[0].capacity_m3_min
        n = len(running)
        demand = self.air_demand_m3_min
        more = n == 0 or demand > 0.95 * cap * n
        less = n > 1 and demand < 0.9 * cap * (n - 1)
        if not more:
            self._more_since = None
        elif self._more_since is None:
            self._more_since = tick
        if not less:
            self._less_since = None
        elif self._less_since is None:
            self._less_since = tick
        more_for = tick - self._more_since if self._more_since is not None else -1
        less_for = tick - self._less_since if self._less_since is not None else -1
        stagger_ok = self._last_blower_start is None or tick - self._last_blower_start >= self._ticks(
            self.blower_stagger_s
        )
        if (
            more
            and n < limit
            and tick >= self._start_not_before
            and stagger_ok
            and (n == 0 or more_for >= self._ticks(self.blower_start_delay_s))
        ):
            spare = [b for b in self.blowers if not b.running and self._blower_available(b)]
            b = min(spare, key=lambda b: b.run_s)  # the one with the fewest hours
            b.running = True
            b.starts += 1
            b.started_tick = tick
            self._last_blower_start = tick
            self._more_since = None
        elif less and less_for >= self._ticks(self.blower_stop_delay_s):
            running.sort(key=lambda b: b.started_tick)
            running[0].running = False
            self._less_since = None

    def _substep(self) -> None:
        dt = self.substep_s
        tick = self._tick
        rng = self._noise_rng
        local = self._local_seconds_of_day(tick * dt)
        f = diurnal_factor(local) if self.diurnal else 1.0
        self.inflow_m3_min = self._inflow.m3_s(tick, local) * 60.0 * self.rain_factor
        dilution = self.rain_factor**0.7 if self.rain_factor > 0 else 1.0
        self.influent_bod_mg_l = INFLUENT_BOD_MG_L * (0.85 + 0.15 * f) / dilution
        self.influent_ss_mg_l = INFLUENT_SS_MG_L * (0.85 + 0.15 * f) / dilution
        self.effluent_m3_min = _relax(self.effluent_m3_min, self.inflow_m3_min, dt, self.effluent_lag_s)
        self.load = _relax(self.load, self._load_now(), dt, 1800.0)
        self.activity = _relax(self.activity, 1.0, dt, self.recovery_s)
        self.influent_total_m3 += self.inflow_m3_min / 60.0 * dt

        self._update_power(tick)
        if tick % max(1, self._ticks(60.0)) == 0:
            self._ph_noise = rng.gauss(0.0, 0.03)
            self._quality_noise = math.exp(rng.gauss(0.0, 0.03))
        self._do_noise = rng.gauss(0.0, 0.02)

        # DO control: PI on the measured DO, integral held within what the blowers can deliver
        limit = self._max_running()
        cap = self.blowers[0].capacity_m3_min
        error = self.do_setpoint_mg_l - (self.do_mg_l + self._do_noise)
        running = sum(b.running for b in self.blowers)
        floor = self.blower_min_fraction * cap if running else 0.0
        self._integral = min(max(self._integral + self.ki * error * dt, floor), max(limit * cap, floor))
        self.air_demand_m3_min = max(0.0, self._integral + self.kp * error)
        self._sequence_blowers(tick)
        self.air_m3_min = self._deliverable(self.air_demand_m3_min)
        for b in self.blowers:
            if b.running:
                b.run_s += dt

        our = self.our_nominal * self.load * self.activity
        kla = self.kla_per_air * self.air_m3_min
        # exact for constant kLa and OUR over the sub-step
        if kla > 0:
            eq = DO_SAT_MG_L - our / kla
            self.do_mg_l = max(0.0, eq + (self.do_mg_l - eq) * math.exp(-kla * dt / 3600.0))
        else:
            self.do_mg_l = max(0.0, self.do_mg_l - our * dt / 3600.0)

        self.effluent_bod_mg_l = _relax(self.effluent_bod_mg_l, self._bod_target(), dt, self.quality_lag_s)
        self.effluent_ss_mg_l = _relax(self.effluent_ss_mg_l, self._ss_target(), dt, 3600.0)
        self.ph = 7.0 + self._ph_noise - 0.3 * (1.0 - self.activity)

        powered = self.bus_source is not None
        process_kw = self.kwh_per_m3 * self.inflow_m3_min * 60.0 if powered else 0.0
        self.power_kw = process_kw + self.blower_kw_per_m3_min * self.air_m3_min
        if self.bus_source == "mains":
            self.energy_kwh += self.power_kw * dt / 3600.0
        self.generator.burn(self.power_kw if self.bus_source == "generator" else 0.0, dt)
        self._end_substep(True)

    # --- scenario controls --------------------------------------------------------------------------------

    def blower(self, blower: int | str) -> Blower:
        """A blower by 1-based number or by name."""
        if isinstance(blower, str):
            for b in self.blowers:
                if b.name == blower:
                    return b
            raise KeyError(f"plant {self.id} has no blower {blower!r}")
        if not 1 <= blower <= len(self.blowers):
            raise KeyError(f"plant {self.id} has no blower {blower} (blowers are numbered from 1)")
        return self.blowers[blower - 1]

    def set_blower_fault(self, blower: int | str, faulted: bool = True) -> None:
        b = self.blower(blower)
        b.faulted = faulted
        if faulted:
            b.running = False

    def set_generator_fault(self, faulted: bool = True) -> None:
        self.generator.faulted = faulted

    def set_toxic_shock(self, severity: float) -> None:
        """A toxic discharge knocks the biomass activity down to 1 − severity (it recovers over a day)."""
        if not 0 <= severity < 1:
            raise ValueError("toxic shock severity must be in [0, 1)")
        self.activity = min(self.activity, 1.0 - severity)

    def set_rain(self, mm_h: float) -> None:
        """Rainfall (mm/h): shown as a point, and wet-weather inflow × (1 + mm_h/20), at most × 3 (est.)."""
        if mm_h < 0:
            raise ValueError("rainfall intensity must be >= 0")
        self.rain_mm_h = mm_h
        self.rain_factor = 1.0 + min(2.0, mm_h / 20.0)

    def set_do_setpoint(self, mg_l: float) -> None:
        if not 0 < mg_l < DO_SAT_MG_L:
            raise ValueError(f"DO setpoint must be in (0, {DO_SAT_MG_L})")
        self.do_setpoint_mg_l = mg_l

    # --- read-outs ----------------------------------------------------------------------------------------

    @property
    def site_power_ok(self) -> bool:
        return self.bus_source is not None

    @property
    def blowers_running(self) -> int:
        return sum(b.running for b in self.blowers)

    @property
    def effluent_bod_over_limit(self) -> bool:
        return self.effluent_bod_mg_l > self.design.effluent_bod_limit_mg_l

    @property
    def effluent_ss_over_limit(self) -> bool:
        return self.effluent_ss_mg_l > self.design.effluent_ss_limit_mg_l

    @property
    def major_fault(self) -> bool:
        no_power = self._dead_since is not None and self._tick - self._dead_since >= self._ticks(
            self.major_after_s
        )
        no_air = self.blowers_running == 0 and (
            self.bus_source is not None or all(b.faulted for b in self.blowers)
        )
        return no_power or no_air or self.effluent_bod_over_limit

    @property
    def minor_fault(self) -> bool:
        return (
            any(b.faulted for b in self.blowers)
            or self.generator.faulted
            or self.generator.fuel_low
            or self.effluent_ss_over_limit
            or self.do_mg_l < 0.5
        )

    def point_values(self) -> PointValues:
        """Every point of deploy/config/maps/wwtp-canonical.yaml and metrics/wwtp-metrics.yaml."""
        d = self.design
        q = self._quality_noise
        values: PointValues = {
            "mains_failed": not self.mains_ok,
            "generator_running": self.generator.running,
            "generator_fault": self.generator.faulted,
            "on_generator_power": self.bus_source == "generator",
            "effluent_bod_over_limit": self.effluent_bod_over_limit,
            "effluent_ss_over_limit": self.effluent_ss_over_limit,
            "major_fault": self.major_fault,
            "minor_fault": self.minor_fault,
            "influent_flow_m3_h": self.inflow_m3_min * 60.0,
            "effluent_flow_m3_h": self.effluent_m3_min * 60.0,
            "influent_bod_mg_l": self.influent_bod_mg_l * q,
            "influent_ss_mg_l": self.influent_ss_mg_l * q,
            "effluent_bod_mg_l": self.effluent_bod_mg_l * q,
            "effluent_ss_mg_l": self.effluent_ss_mg_l * q,
            "effluent_ph": self.ph,
            "do_mg_l": max(0.0, self.do_mg_l + self._do_noise),
            "mlss_mg_l": self.mlss_mg_l,
            "air_flow_m3_min": self.air_m3_min,
            "receiving_power_kw": self.power_kw if self.bus_source == "mains" else 0.0,
            "rainfall_mm_h": self.rain_mm_h,
            "generator_fuel_pct": self.generator.fuel_pct,
            "blowers_running": self.blowers_running,
            "heartbeat": self.heartbeat,
            "energy_kwh": int(self.energy_kwh),
            "influent_total_m3": int(self.influent_total_m3),
            "do_setpoint_mg_l": self.do_setpoint_mg_l,
            "effluent_bod_limit_mg_l": d.effluent_bod_limit_mg_l,
            "effluent_ss_limit_mg_l": d.effluent_ss_limit_mg_l,
        }
        for k, b in enumerate(self.blowers, start=1):
            values[f"blower{k}_running"] = b.running
            values[f"blower{k}_faulted"] = b.faulted
            values[f"blower{k}_run_hours_h"] = int(b.run_s // 3600)
        return values

    def snapshot(self) -> dict[str, object]:
        """Internal state for determinism checks and debugging."""
        return {
            "tick": self._tick,
            "do": self.do_mg_l,
            "integral": self._integral,
            "load": self.load,
            "activity": self.activity,
            "effluent_bod": self.effluent_bod_mg_l,
            "energy_kwh": self.energy_kwh,
            "fuel_l": self.generator.fuel_l,
            "blowers": [(b.running, b.faulted, b.run_s, b.starts) for b in self.blowers],
            "points": self.point_values(),
        }
