"""Simulators: black boxes that speak Modbus TCP like a fleet of pump-station panels, plants and telemetry
RTUs, for demos and tests.

- `station_model`: `StationModel`, the base of every station model (config, seed, random streams, the time
  grid of sub-steps).
- `inflow`: sanitary inflow (`DIURNAL`, `diurnal_factor`, `lognormal`, `catchment_q_avg_m3_min`,
  `DiurnalInflow`).
- `pumps`: `PumpState`, `pumps_from_config`, `PumpControls` (scenario controls) and `StagedPumpControl` (the
  multi-pump panel, `derive_stages`).
- `generator`: `StandbyGenerator`. `gauges`: `LevelGauge`.
- `manhole`: `ManholePumpStation` (wet well + sewer storage, diurnal inflow, two alternating pumps, power,
  battery, failure states).
- `rtu`: `TelemetryRTU` (one battery for a gateway's units) and the telemetry battery figures.
- `relay`: `RelayPumpStation` (staged pumps with standby, 6.6 kV receiving, standby generator, two gauges).
- `stormwater`: `StormwaterPumpStation` (rational-method runoff, river level, discharge gate, engine-driven
  pumps, curtailment).
- `plant`: `TreatmentPlant` (inflow and quality, DO control with blowers, power, generator).
- `kinds`: `make_station(cfg, seed, start, ...)`, the model for any station kind. All models are pure and
  deterministic (no I/O).
- `registers`: encodes point values into Modbus words per a register map (scaling, 16/32-bit types,
  word orders).
- `modbus_server`: `ModbusStationServer`, pymodbus's TCP server with one `SimDevice` per unit id, encoding the
  station's values on every read and refusing writes.
- `fleet`: `SimulatedFleet`, every station of a `Fleet` simulated and every Modbus controller behind a real
  loopback socket, plus a physics task stepping on a `Clock` (`ScaledClock` for demos, `FakeClock` for tests).
- `scenarios`: scripted faults (power outage, pump fault, clog, stuck level sensor, rain and hyetographs,
  river level, generator, blower, gauge and HV faults, toxic shock) and `run_scenario`; `drill`: a drill
  scenario file (`pumpwatch.core.config.scenario`) compiled onto them, tagged, with an undo.
- `mqtt_link`: `MqttLink`, one MQTT session kept alive (reconnect with backoff); `mqtt_values`: value
  sources and their conversion to a metric's type; `mqtt_json_publisher`: `JsonPublisher` (plain JSON, one
  session per station); `sparkplug_node`: `SparkplugEdgeNode` (a Sparkplug B edge node).

Dependency rule (an import-linter contract, docs/architecture.md): this package imports only the kernel
(`pumpwatch.core.config`, `.clock`, `.hydraulics`), `pumpwatch.protocols.sparkplug`, pymodbus, aiomqtt and
the standard library, never the collector, alarms or api, so integration tests stay honest.
"""

from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.kinds import MODELS, make_station
from pumpwatch.simulators.manhole import ManholePumpStation
from pumpwatch.simulators.modbus_server import ModbusStationServer, UnitSpec, build_device
from pumpwatch.simulators.plant import TreatmentPlant
from pumpwatch.simulators.pumps import PumpState
from pumpwatch.simulators.registers import encode_point, encode_points
from pumpwatch.simulators.relay import RelayPumpStation
from pumpwatch.simulators.rtu import TelemetryRTU
from pumpwatch.simulators.scenarios import (
    Area,
    ScenarioEvent,
    blower_fault,
    clog,
    gauge_fault,
    generator_fault,
    hv_fault,
    hyetograph,
    power_outage,
    pump_fault,
    rain,
    river_level,
    run_scenario,
    sensor_stuck_low,
    toxic_shock,
)
from pumpwatch.simulators.station_model import StationModel
from pumpwatch.simulators.stormwater import StormwaterPumpStation

__all__ = [
    "MODELS",
    "Area",
    "ManholePumpStation",
    "ModbusStationServer",
    "PumpState",
    "RelayPumpStation",
    "ScenarioEvent",
    "SimulatedFleet",
    "StationModel",
    "StormwaterPumpStation",
    "TelemetryRTU",
    "TreatmentPlant",
    "UnitSpec",
    "blower_fault",
    "build_device",
    "clog",
    "encode_point",
    "encode_points",
    "gauge_fault",
    "generator_fault",
    "hv_fault",
    "hyetograph",
    "make_station",
    "power_outage",
    "pump_fault",
    "rain",
    "river_level",
    "run_scenario",
    "sensor_stuck_low",
    "toxic_shock",
]
