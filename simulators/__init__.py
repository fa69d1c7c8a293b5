"""Simulators: black boxes that speak Modbus TCP like a fleet of pump-station panels, for demos and tests.

- `physics`: `ManholePumpStation`, a deterministic model of a manhole pump station (wet well + sewer storage,
  diurnal inflow, two alternating pumps, power, battery, failure states). Pure: no I/O.
- `registers`: encodes point values into Modbus words per a register map (scaling, 16/32-bit types,
  word orders).
- `modbus_server`: `ModbusStationServer`, pymodbus's TCP server with one `SimDevice` per unit id, encoding the
  station's values on every read and refusing writes.
- `fleet`: `SimulatedFleet`, every station and controller of a `Fleet` behind real loopback sockets, plus a
  physics task stepping on a `Clock` (`ScaledClock` for demos, `FakeClock` for tests).
- `scenarios`: scripted faults (power outage, pump fault, clog, stuck level sensor, rain) and `run_scenario`.

Dependency rule: this package imports only `pumpwatch.config`, `pumpwatch.clock`, `pumpwatch.hydraulics`,
pymodbus and the standard library, never the collector, alarms or api, so integration tests stay honest.
"""

from simulators.fleet import SimulatedFleet
from simulators.modbus_server import ModbusStationServer, UnitSpec, build_device
from simulators.physics import ManholePumpStation, PumpState
from simulators.registers import encode_point, encode_points
from simulators.scenarios import (
    Area,
    ScenarioEvent,
    clog,
    power_outage,
    pump_fault,
    rain,
    run_scenario,
    sensor_stuck_low,
)

__all__ = [
    "Area",
    "ManholePumpStation",
    "ModbusStationServer",
    "PumpState",
    "ScenarioEvent",
    "SimulatedFleet",
    "UnitSpec",
    "build_device",
    "clog",
    "encode_point",
    "encode_points",
    "power_outage",
    "pump_fault",
    "rain",
    "run_scenario",
    "sensor_stuck_low",
]
