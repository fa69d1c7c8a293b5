"""Build the sources of a fleet: one `ModbusSource` per controller, read plans built once per map."""

from __future__ import annotations

from collections.abc import Collection

from collector.registers import ReadPlan, build_read_plan
from collector.sources import Emit
from collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.clock import Clock
from pumpwatch.config import Fleet


def build_modbus_sources(
    fleet: Fleet, clock: Clock, emit: Emit, *, stations: Collection[str] | None = None
) -> list[ModbusSource]:
    """Sources for every controller (or only those serving `stations`)."""
    plans: dict[str, ReadPlan] = {}
    sources = []
    for ctrl in fleet.modbus_controllers():
        units = []
        for u in ctrl.units:
            if stations is not None and u.station not in stations:
                continue
            plan = plans.get(u.map)
            if plan is None:
                plan = plans[u.map] = build_read_plan(fleet.register_maps[u.map])
            units.append(UnitPlan(u.unit_id, u.station, plan))
        if units:
            sources.append(ModbusSource(ctrl, units, clock, emit))
    return sources
