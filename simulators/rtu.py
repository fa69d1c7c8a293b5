"""A simulated telemetry RTU: a telemetry unit / gateway with one battery, charged from a station's mains.

Pure and deterministic like the stations (see `TelemetryRTU`). The battery figures are those of every
telemetry unit, the one built into a manhole pump station's panel included.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pumpwatch.simulators.station_model import PointValues

__all__ = ["BATTERY_EMPTY_V", "BATTERY_FLOAT_V", "BATTERY_FULL_V", "BATTERY_LOW_V", "TelemetryRTU"]

BATTERY_FLOAT_V = 13.6
BATTERY_FULL_V = 12.8
BATTERY_EMPTY_V = 10.5
BATTERY_LOW_V = 11.5


class TelemetryRTU:
    """A telemetry unit or gateway with one battery, charged from the mains of the station it is installed at.

    Pure and deterministic like the stations: `step(now)` in sub-steps on a grid from `start`; `power()` is
    read every sub-step (the installing station's `mains_ok`, which only changes when a scenario sets it, so
    stepping the station and the RTU to the same times keeps them exact). On mains the battery floats at
    13.6 V and recharges over `recharge_hours`; on battery it falls 12.8 V → 10.5 V over `battery_hours`
    (`battery_low` below 11.5 V). When it is flat the RTU stops (`alive` False: it no longer answers, its
    heartbeat freezes); when mains returns it boots again after `boot_s` (uptime from 0).
    """

    def __init__(
        self,
        name: str,
        power: Callable[[], bool],
        start: datetime,
        *,
        seed: int = 0,
        substep_s: float = 1.0,
        battery_hours: float = 6.0,
        recharge_hours: float = 4.0,
        boot_s: float = 30.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < substep_s <= 1.0:
            raise ValueError("substep_s must be in (0, 1]")
        if battery_hours <= 0 or recharge_hours <= 0 or boot_s < 0:
            raise ValueError("battery_hours and recharge_hours must be > 0, boot_s >= 0")
        self.name = name
        self.power = power
        self.start = start.astimezone(UTC)
        self.substep_s = substep_s
        self.battery_hours = battery_hours
        self.recharge_hours = recharge_hours
        self.boot_s = boot_s
        self._rng = random.Random(f"pumpwatch:{seed}:rtu:{name}")
        self.battery_soc = 1.0
        self.on_mains = True
        self.alive = True
        self.uptime_s = 0.0
        self.heartbeat = 0
        self.battery_voltage_v = BATTERY_FLOAT_V
        self.boots = 0
        self.died_at: datetime | None = None
        self._tick = 0
        self._boot_at: int | None = None
        self._hb_seconds = 0

    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._tick * self.substep_s)

    def step(self, now: datetime) -> None:
        target = math.floor((now - self.start).total_seconds() / self.substep_s + 1e-9)
        while self._tick < target:
            self._substep()

    def _substep(self) -> None:
        dt = self.substep_s
        self.on_mains = bool(self.power())
        noise = self._rng.gauss(0.0, 0.01)
        if self.on_mains:
            self.battery_soc = min(1.0, self.battery_soc + dt / (self.recharge_hours * 3600.0))
            self.battery_voltage_v = BATTERY_FLOAT_V + noise
        else:
            self.battery_soc = max(0.0, self.battery_soc - dt / (self.battery_hours * 3600.0))
            self.battery_voltage_v = (
                BATTERY_EMPTY_V + (BATTERY_FULL_V - BATTERY_EMPTY_V) * self.battery_soc + noise
            )
        if self.alive:
            if not self.on_mains and self.battery_soc <= 0.0:
                self.alive = False
                self.uptime_s = 0.0
                self.died_at = self.start + timedelta(seconds=(self._tick + 1) * dt)
        elif self.on_mains:
            if self._boot_at is None:
                self._boot_at = self._tick + math.ceil(self.boot_s / dt - 1e-9)
            if self._tick >= self._boot_at:
                self.alive = True
                self.boots += 1
                self._boot_at = None
        else:
            self._boot_at = None
        if self.alive:
            self.uptime_s += dt
        self._tick += 1
        seconds = math.floor(self._tick * dt + 1e-9)
        if seconds != self._hb_seconds:
            if self.alive:
                self.heartbeat = (self.heartbeat + seconds - self._hb_seconds) % 65536
            self._hb_seconds = seconds

    @property
    def battery_low(self) -> bool:
        return self.battery_voltage_v < BATTERY_LOW_V

    def point_values(self) -> PointValues:
        """The RTU's own status unit (deploy/config/maps/rtu-status.yaml)."""
        return {
            "rtu_battery_voltage_v": self.battery_voltage_v,
            "rtu_on_battery": not self.on_mains,
            "rtu_battery_low": self.battery_low,
            "rtu_uptime_s": int(self.uptime_s),
            "rtu_heartbeat": self.heartbeat,
        }

    def unit_overlay(self) -> PointValues:
        """What every unit behind the RTU reports from the RTU rather than from its station."""
        return {
            "battery_voltage_v": self.battery_voltage_v,
            "battery_low": self.battery_low,
            "heartbeat": self.heartbeat,
        }

    def snapshot(self) -> dict[str, object]:
        return {
            "tick": self._tick,
            "soc": self.battery_soc,
            "alive": self.alive,
            "uptime_s": self.uptime_s,
            "heartbeat": self.heartbeat,
            "boots": self.boots,
        }
