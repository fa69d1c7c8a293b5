"""Which analyzers a station gets, from what it is and which points it has."""

from __future__ import annotations

from pumpwatch.alarms.analyzers import Analyzer
from pumpwatch.alarms.analyzers.levels import LevelCheck
from pumpwatch.alarms.analyzers.overflow import OverflowForecaster
from pumpwatch.alarms.analyzers.pumps import PumpHealth
from pumpwatch.alarms.analyzers.telemetry import TelemetryHealth
from pumpwatch.core.config import Fleet
from pumpwatch.core.config.models import PUMPING_KINDS


def analyzers_for(fleet: Fleet, station_id: str) -> list[Analyzer]:
    cfg = fleet.stations[station_id]
    points = fleet.points.get(station_id, {})
    tenant = fleet.tenants.get(cfg.tenant)
    tz = tenant.timezone if tenant else "Asia/Tokyo"
    out: list[Analyzer] = []
    if cfg.kind == "manhole_pump" and cfg.wet_well and cfg.levels and "wet_well_level_m" in points:
        out.append(OverflowForecaster(cfg, timezone=tz))
        if "hwl_float" in points:
            out.append(LevelCheck(cfg))
    if cfg.kind in PUMPING_KINDS and cfg.pumps and "pump1_running" in points:
        out.append(PumpHealth(cfg))
    if "battery_voltage_v" in points or "rtu_battery_voltage_v" in points:
        out.append(TelemetryHealth(cfg))
    return out


def all_analyzers(fleet: Fleet) -> dict[str, list[Analyzer]]:
    return {sid: a for sid in fleet.stations if (a := analyzers_for(fleet, sid))}
