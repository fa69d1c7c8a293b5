"""A whole simulated fleet from a `Fleet` configuration: one physics model per manhole pump station and one
Modbus TCP server per controller (telemetry unit or gateway), all on one event loop.

    async with SimulatedFleet(load_fleet("deploy/config/demo"), ScaledClock(speed=60)) as sim:
        sim.power_area_outage("kita-feeder-1", ok=False)
        ...

The physics task ("simulators.physics") steps every station to `clock.now()` every `step_interval_s` of clock
time; the servers encode the stations' values when they are read. Stopping a controller (a dead telemetry
unit) closes its server and its client connections; its stations keep simulating.

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
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from pumpwatch.clock import Clock
from pumpwatch.config.loader import Fleet
from simulators.modbus_server import ModbusStationServer, UnitSpec
from simulators.physics import ManholePumpStation

__all__ = ["SimulatedFleet", "TimedChange"]

log = logging.getLogger(__name__)

SIMULATED_KINDS = frozenset({"manhole_pump"})


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
    ) -> None:
        """`bind_host` overrides every controller's host; `station_options` are passed to each
        `ManholePumpStation` (e.g. `{"noise_sigma": 0}`)."""
        if step_interval_s <= 0:
            raise ValueError("step_interval_s must be > 0")
        self.fleet = fleet
        self.clock = clock
        self.seed = seed
        self.step_interval_s = step_interval_s
        self.bind_host = bind_host
        self.station_options = dict(station_options or {})
        self.stations: dict[str, ManholePumpStation] = {}
        self.servers: dict[str, ModbusStationServer] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: list[tuple[datetime, int, TimedChange]] = []
        self._seq = itertools.count()

    def station_seed(self, station_id: str) -> int:
        """A stable per-station seed (the same in every run and process, unlike `hash`)."""
        return zlib.crc32(f"{self.seed}:{station_id}".encode())

    # --- life cycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedFleet:
        start = self.clock.now()
        for sid, cfg in self.fleet.stations.items():
            if cfg.kind not in SIMULATED_KINDS:
                log.info("station %s: kind %s is not simulated yet, skipped", sid, cfg.kind)
                continue
            tenant = self.fleet.tenants.get(cfg.tenant)
            tz = tenant.timezone if tenant is not None else "Asia/Tokyo"
            self.stations[sid] = ManholePumpStation(
                cfg, self.station_seed(sid), start, timezone=tz, **self.station_options
            )
        for cid, ctrl in self.fleet.controllers.items():
            units = []
            for u in ctrl.units:
                station = self.stations.get(u.station)
                if station is None:
                    log.info("controller %s unit %d: station %s is not simulated", cid, u.unit_id, u.station)
                    continue
                units.append(UnitSpec(u.unit_id, self.fleet.register_maps[u.map], station.point_values))
            if not units:
                log.info("controller %s serves no simulated station: not bound", cid)
                continue
            self.servers[cid] = ModbusStationServer(self.bind_host or ctrl.host, ctrl.port, units, name=cid)
        try:
            for server in self.servers.values():
                await server.start()
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
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():  # we were cancelled ourselves, not just the task
                        raise
        finally:
            await self._stop_servers()

    async def _stop_servers(self) -> None:
        for server in self.servers.values():
            await server.stop()

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

    def schedule(self, changes: Iterable[TimedChange]) -> None:
        """Apply `changes` when stepping reaches their time (at the next step if it has passed already)."""
        for change in changes:
            heapq.heappush(self._pending, (change.at, next(self._seq), change))

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
        await self._server(controller_id).stop()

    async def start_controller(self, controller_id: str) -> None:
        """Bind the controller again on the same address (no-op if it is running)."""
        await self._server(controller_id).start()

    def controller_running(self, controller_id: str) -> bool:
        return self._server(controller_id).running

    def address(self, controller_id: str) -> tuple[str, int]:
        return self._server(controller_id).address

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
