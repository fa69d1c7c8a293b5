"""A whole simulated fleet from a `Fleet` configuration: one physics model per station, whatever its kind
(`simulators.kinds.make_station`), and one Modbus TCP server per Modbus controller (telemetry unit or
gateway), all on one event loop.

    async with SimulatedFleet(load_fleet("deploy/config/demo"), ScaledClock(speed=60)) as sim:
        sim.power_area_outage("kita-feeder-1", ok=False)
        ...

The physics task ("simulators.physics") steps every station to `clock.now()` every `step_interval_s` of clock
time; the servers encode the stations' values when they are read. Stations that only MQTT controllers serve
are simulated and stepped just the same (`stations`); publishing them is the job of
`simulators.mqtt_json_publisher` and `simulators.sparkplug_node`.
Stopping a controller (a dead telemetry unit) closes its server and its client connections; its stations keep
simulating.

Telemetry RTUs: a Modbus controller with `powered_by` (or with a unit on the `rtu-status` map, whose station
is where the RTU is installed) is one `TelemetryRTU` with one battery on that station's mains. Every unit
behind it reports `battery_voltage_v`, `battery_low` and `heartbeat` from the RTU; the `rtu-status` unit
reports the RTU itself. When the battery runs flat the RTU goes blind: its server stops (listener closed,
connections dropped) until mains returns and the RTU has booted, then it serves again on the same address.

Scheduled changes (`schedule`, used by `simulators.scenarios`) are applied inside stepping: the stations are
stepped exactly to a change's time, the change is applied, stepping goes on. So a scripted fault takes effect
at its time whichever task the event loop happens to run first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from pumpwatch.core import tasks
from pumpwatch.core.clock import Clock
from pumpwatch.core.config.loader import Fleet
from pumpwatch.core.config.models import ControllerConfig, MqttJsonController
from pumpwatch.simulators.kinds import MODELS, accepted_options, make_station, options_for
from pumpwatch.simulators.modbus_server import ModbusStationServer, PointSource, UnitSpec
from pumpwatch.simulators.mqtt_json_publisher import JsonPublisher
from pumpwatch.simulators.rtu import TelemetryRTU
from pumpwatch.simulators.sparkplug_node import SparkplugEdgeNode
from pumpwatch.simulators.station_model import StationModel

__all__ = ["RTU_STATUS_MAP", "SimulatedFleet", "TimedChange"]

log = logging.getLogger(__name__)

SIMULATED_KINDS = frozenset(MODELS)
RTU_STATUS_MAP = "rtu-status"


class TimedChange(Protocol):
    """A change to apply at a simulated time (`simulators.scenarios.ScenarioEvent`)."""

    @property
    def at(self) -> datetime: ...

    @property
    def label(self) -> str: ...

    def apply(self, sim: SimulatedFleet) -> None: ...


class SimulatedFleet:
    def __init__(
        self,
        fleet: Fleet,
        clock: Clock,
        *,
        seed: int = 7,
        step_interval_s: float = 1.0,
        bind_host: str | None = None,
        station_options: Mapping[str, Any] | None = None,
        kind_options: Mapping[str, Mapping[str, Any]] | None = None,
        rtu_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`bind_host` overrides every controller's host. `station_options` go to every station model that
        takes them (e.g. `{"noise_sigma": 0}`; a key no model takes is an error); `kind_options` to the models
        of one kind (`{"relay_pump": {"generator_start_delay_s": 10}}`); `rtu_options` to every
        `TelemetryRTU` (`{"battery_hours": 0.5}`)."""
        if step_interval_s <= 0:
            raise ValueError("step_interval_s must be > 0")
        unknown = set(station_options or {}) - set().union(*(accepted_options(k) for k in MODELS))
        if unknown:
            raise TypeError(f"no station model takes {', '.join(sorted(unknown))}")
        for kind, opts in (kind_options or {}).items():
            if kind not in MODELS:
                raise ValueError(f"kind_options: unknown station kind {kind!r}")
            bad = set(opts) - accepted_options(kind)
            if bad:
                raise TypeError(
                    f"kind_options[{kind!r}]: {MODELS[kind].__name__} takes no {', '.join(sorted(bad))}"
                )
        self.fleet = fleet
        self.clock = clock
        self.seed = seed
        self.step_interval_s = step_interval_s
        self.bind_host = bind_host
        self.station_options = dict(station_options or {})
        self.kind_options = {k: dict(v) for k, v in (kind_options or {}).items()}
        self.rtu_options = dict(rtu_options or {})
        self.stations: dict[str, StationModel] = {}
        self.servers: dict[str, ModbusStationServer] = {}
        self.publishers: dict[str, JsonPublisher | SparkplugEdgeNode] = {}
        self.rtus: dict[str, TelemetryRTU] = {}  # controller id -> its RTU
        self._task: asyncio.Task[None] | None = None
        self._rtu_serving: dict[str, bool] = {}
        self._stopped_by_hand: set[str] = set()
        self._power_tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: list[tuple[datetime, int, TimedChange]] = []
        self._seq = itertools.count()

    def station_seed(self, station_id: str) -> int:
        """A stable per-station seed (the same in every run and process, unlike `hash`)."""
        return self.station_seed_of(self.seed, station_id)

    @staticmethod
    def station_seed_of(seed: int, station_id: str) -> int:
        return zlib.crc32(f"{seed}:{station_id}".encode())

    # --- life cycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedFleet:
        start = self.clock.now()
        for sid, cfg in self.fleet.stations.items():
            if cfg.kind not in SIMULATED_KINDS:
                log.info("station %s: kind %s is not simulated, skipped", sid, cfg.kind)
                continue
            tenant = self.fleet.tenants.get(cfg.tenant)
            tz = tenant.timezone if tenant is not None else "Asia/Tokyo"
            options = {**options_for(cfg.kind, self.station_options), **self.kind_options.get(cfg.kind, {})}
            self.stations[sid] = make_station(cfg, self.station_seed(sid), start, timezone=tz, **options)
        for ctrl in self.fleet.modbus_controllers():
            cid = ctrl.id
            rtu = self._make_rtu(ctrl, start)
            units = []
            for u in ctrl.units:
                station = self.stations.get(u.station)
                if station is None:
                    log.info("controller %s unit %d: station %s is not simulated", cid, u.unit_id, u.station)
                    continue
                rmap = self.fleet.register_maps[u.map]
                if u.map == RTU_STATUS_MAP and rtu is not None:
                    units.append(UnitSpec(u.unit_id, rmap, rtu.point_values))
                else:
                    units.append(UnitSpec(u.unit_id, rmap, self._unit_values(station, rtu)))
            if not units:
                log.info("controller %s serves no simulated station: not bound", cid)
                continue
            self.servers[cid] = ModbusStationServer(self.bind_host or ctrl.host, ctrl.port, units, name=cid)
            if rtu is not None:
                self.rtus[cid] = rtu
                self._rtu_serving[cid] = True
        try:
            for server in self.servers.values():
                await server.start()
            await self._start_publishers()
        except BaseException:
            await self._stop_servers()
            raise
        self._task = asyncio.create_task(self._run(), name="simulators.physics")
        log.info("simulating %d stations behind %d controllers", len(self.stations), len(self.servers))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        try:
            for t in [task, *self._power_tasks.values()]:
                if t is not None:
                    await tasks.stop(t, logger=log)  # (our own cancellation goes on up)
        finally:
            self._power_tasks.clear()
            await self._stop_servers()

    async def _stop_servers(self) -> None:
        for pub in self.publishers.values():
            await pub.__aexit__(None, None, None)
        self.publishers.clear()
        for server in self.servers.values():
            await server.stop()

    async def _start_publishers(self) -> None:
        """One simulated MQTT device per MQTT controller (JSON or a Sparkplug edge node), if the fleet
        names a broker. They publish every half expected interval of clock time."""
        broker = self.fleet.mqtt
        if broker is None:
            return
        for ctrl in self.fleet.mqtt_controllers():
            sources = {
                ms.station: (self.stations[ms.station].point_values, self.fleet.metric_maps[ms.map])
                for ms in ctrl.stations
                if ms.station in self.stations
            }
            if not sources:
                continue
            pub: JsonPublisher | SparkplugEdgeNode
            if isinstance(ctrl, MqttJsonController):
                pub = JsonPublisher(broker, ctrl, sources, self.clock, client_id=f"sim-{ctrl.id}")
            else:
                pub = SparkplugEdgeNode(broker, ctrl, sources, self.clock, client_id=f"sim-{ctrl.id}")
            await pub.__aenter__()
            self.publishers[ctrl.id] = pub

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self.step_interval_s)
            try:
                self.step_now()
            except Exception:
                log.exception("physics step failed")
                raise

    # --- time ---------------------------------------------------------------------------------------------

    def step_now(self) -> None:
        """Step every station to `clock.now()` at once (applying the scheduled changes that are due)."""
        self.step_to(self.clock.now())

    def step_to(self, when: datetime) -> None:
        """Step every station to `when` (capped at `clock.now()`; stations already past it stay), applying
        each scheduled change due by then at its own time."""
        when = min(when, self.clock.now())
        while self._pending and self._pending[0][0] <= when:
            at, _, change = heapq.heappop(self._pending)
            self._step_stations(at)
            change.apply(self)
            log.info("at %s: %s", at.isoformat(), change.label)
        self._step_stations(when)

    def _step_stations(self, when: datetime) -> None:
        for station in self.stations.values():
            station.step(when)
        for rtu in self.rtus.values():
            rtu.step(when)
        self._follow_rtu_power()

    def schedule(self, changes: Iterable[TimedChange]) -> None:
        """Apply `changes` when stepping reaches their time (at the next step if it has passed already)."""
        for change in changes:
            heapq.heappush(self._pending, (change.at, next(self._seq), change))

    def unschedule(self, drop: Callable[[TimedChange], bool]) -> int:
        """Forget the pending changes `drop` picks (a drill stopped early); returns how many."""
        keep = [item for item in self._pending if not drop(item[2])]
        dropped = len(self._pending) - len(keep)
        heapq.heapify(keep)
        self._pending = keep
        return dropped

    @property
    def pending_changes(self) -> int:
        return len(self._pending)

    # --- controllers --------------------------------------------------------------------------------------

    def _server(self, controller_id: str) -> ModbusStationServer:
        try:
            return self.servers[controller_id]
        except KeyError:
            raise KeyError(f"no simulated controller {controller_id!r}") from None

    async def stop_controller(self, controller_id: str) -> None:
        """A dead telemetry unit: close the listener and every open client connection."""
        server = self._server(controller_id)
        self._stopped_by_hand.add(controller_id)
        await server.stop()

    async def start_controller(self, controller_id: str) -> None:
        """Bind the controller again on the same address (no-op if it is running). An RTU whose battery
        is flat stays blind until its mains returns."""
        server = self._server(controller_id)
        self._stopped_by_hand.discard(controller_id)
        if self._rtu_serving.get(controller_id, True):
            await server.start()

    def controller_running(self, controller_id: str) -> bool:
        return self._server(controller_id).running

    def address(self, controller_id: str) -> tuple[str, int]:
        return self._server(controller_id).address

    # --- telemetry RTUs -----------------------------------------------------------------------------------

    def _make_rtu(self, ctrl: ControllerConfig, start: datetime) -> TelemetryRTU | None:
        power_at = ctrl.powered_by
        if power_at is None:
            power_at = next((u.station for u in ctrl.units if u.map == RTU_STATUS_MAP), None)
        if power_at is None:
            return None
        station = self.stations.get(power_at)
        if station is None:
            log.warning(
                "controller %s: powering station %s is not simulated: no RTU battery", ctrl.id, power_at
            )
            return None

        def mains() -> bool:
            return station.mains_ok

        return TelemetryRTU(
            ctrl.id, mains, start, seed=self.station_seed(f"rtu:{ctrl.id}"), **self.rtu_options
        )

    @staticmethod
    def _unit_values(station: StationModel, rtu: TelemetryRTU | None) -> PointSource:
        if rtu is None:
            return station.point_values

        def values() -> Mapping[str, Any]:
            return {**station.point_values(), **rtu.unit_overlay()}

        return values

    def served_values(self, station_id: str) -> dict[str, Any]:
        """A station's values as its devices serve them: the station's own, with the overlay of the RTU
        it sits behind (shared battery, heartbeat) and the RTU's status points where it reports them."""
        values = dict(self.stations[station_id].point_values())
        for ctrl in self.fleet.modbus_controllers():
            rtu = self.rtus.get(ctrl.id)
            if rtu is None or all(u.station != station_id for u in ctrl.units):
                continue
            values.update(rtu.unit_overlay())
            if any(u.station == station_id and u.map == RTU_STATUS_MAP for u in ctrl.units):
                values.update(rtu.point_values())
        return values

    def rtu_blind(self, controller_id: str) -> bool:
        """True while the controller's RTU has no power at all (flat battery, or booting)."""
        rtu = self.rtus.get(controller_id)
        if rtu is None:
            raise KeyError(f"controller {controller_id!r} has no simulated RTU")
        return not rtu.alive

    def _follow_rtu_power(self) -> None:
        """Stop the server of an RTU that has gone flat, start it again when the RTU has booted. The server
        changes are asynchronous: one task per controller applies the latest wanted state."""
        for cid, rtu in self.rtus.items():
            if rtu.alive == self._rtu_serving[cid]:
                continue
            self._rtu_serving[cid] = rtu.alive
            log.info("RTU %s %s", cid, "has booted: serving again" if rtu.alive else "battery flat: blind")
            task = self._power_tasks.get(cid)
            if task is None or task.done():
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    continue  # no event loop (pure stepping): `sync_controllers()` applies it later
                self._power_tasks[cid] = loop.create_task(
                    self._apply_rtu_power(cid), name=f"simulators.rtu[{cid}]"
                )

    async def _apply_rtu_power(self, cid: str) -> None:
        server = self.servers[cid]
        while True:
            want = self._rtu_serving[cid] and cid not in self._stopped_by_hand
            if want and not server.running:
                try:
                    await server.start()
                except RuntimeError:
                    log.exception("RTU %s: cannot bind again", cid)
                    return
            elif not want and server.running:
                await server.stop()
            else:
                return

    async def sync_controllers(self) -> None:
        """Wait until every RTU's server matches its power state (for tests after `step_now`)."""
        for cid in self.rtus:
            task = self._power_tasks.get(cid)
            if task is None or task.done():
                self._power_tasks[cid] = asyncio.get_running_loop().create_task(
                    self._apply_rtu_power(cid), name=f"simulators.rtu[{cid}]"
                )
        for task in list(self._power_tasks.values()):
            await task

    # --- power --------------------------------------------------------------------------------------------

    def set_mains(self, station_ids: Iterable[str], ok: bool, *, step: bool = True) -> None:
        """Mains on or off at some stations, now (`step=False`: without stepping them first, for changes
        applied during stepping)."""
        ids = list(station_ids)
        unknown = [sid for sid in ids if sid not in self.stations]
        if unknown:
            raise KeyError(f"not simulated: {', '.join(unknown)}")
        if step:
            self.step_now()
        for sid in ids:
            self.stations[sid].set_mains(ok)
        log.info("mains %s at %s", "restored" if ok else "failed", ", ".join(ids) or "no station")

    def stations_in_power_area(self, power_area: str) -> list[str]:
        return sorted(sid for sid, st in self.stations.items() if st.cfg.power_area == power_area)

    def power_area_outage(self, power_area: str, ok: bool, *, step: bool = True) -> list[str]:
        """Mains off (`ok=False`) or back on (`ok=True`) at every simulated station in `power_area`."""
        ids = self.stations_in_power_area(power_area)
        if not ids:
            log.warning("power area %r has no simulated station", power_area)
        self.set_mains(ids, ok, step=step)
        return ids
