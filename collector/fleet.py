"""Build the sources of a fleet: one `ModbusSource` per Modbus controller (read plans built once per
map), and one `MqttIngest` for all MQTT controllers."""

from __future__ import annotations

from collections.abc import Collection

from pumpwatch.collector.registers import ReadPlan, build_read_plan
from pumpwatch.collector.sources import Emit, Reject
from pumpwatch.collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.collector.sources.mqtt import MqttIngest
from pumpwatch.core.clock import Clock
from pumpwatch.core.config import Fleet


def build_modbus_sources(
    fleet: Fleet,
    clock: Clock,
    emit: Emit,
    *,
    stations: Collection[str] | None = None,
    reject: Reject | None = None,
) -> list[ModbusSource]:
    """Sources for every controller (or only those serving `stations`)."""
    plans: dict[tuple[str, int | None], ReadPlan] = {}
    sources = []
    for ctrl in fleet.modbus_controllers():
        units = []
        for u in ctrl.units:
            if stations is not None and u.station not in stations:
                continue
            limit = ctrl.workarounds.max_registers_per_request
            plan = plans.get((u.map, limit))
            if plan is None:
                plan = plans[(u.map, limit)] = build_read_plan(
                    fleet.register_maps[u.map], max_registers=limit
                )
            units.append(UnitPlan(u.unit_id, u.station, plan, u.timeout_s))
        if units:
            sources.append(ModbusSource(ctrl, units, clock, emit, reject=reject))
    return sources


def build_mqtt_ingest(
    fleet: Fleet,
    clock: Clock,
    emit: Emit,
    *,
    stations: Collection[str] | None = None,
    reject: Reject | None = None,
) -> MqttIngest | None:
    """One MQTT ingest for every MQTT controller (or those serving `stations`); None if there are none."""
    ctrls = [
        c
        for c in fleet.mqtt_controllers()
        if stations is None or any(ms.station in stations for ms in c.stations)
    ]
    if not ctrls or fleet.mqtt is None:
        return None
    return MqttIngest(fleet.mqtt, ctrls, fleet.metric_maps, clock, emit, reject=reject)
