"""Wiring: one process runs any of simulator, collector + alarms + historian writer, and the API.

Start order matters: migrate, sync the catalog, restore active alarms, and only then start polling, so
the first samples already find their points and alarms that were active before a restart can clear.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from sqlalchemy import Engine

from alarms.analyzers import Analyzer, DerivedPoint
from alarms.analyzers.build import all_analyzers
from alarms.rules import RuleSet, load_rules
from alarms.service import AlarmService
from api.auth.config import AuthConfig
from api.context import ApiContext
from api.main import create_app
from collector.fleet import build_modbus_sources, build_mqtt_ingest
from collector.model import Sample
from collector.sources.modbus import ModbusSource
from collector.sources.mqtt import MqttIngest
from collector.supervisor import run_sources
from pumpwatch import historian
from pumpwatch.clock import Clock
from pumpwatch.config import Fleet
from pumpwatch.db import rls
from pumpwatch.db.engine import make_engine
from pumpwatch.db.migrate import upgrade
from pumpwatch.live import LiveSnapshot
from pumpwatch.writer import HistorianWriter

log = logging.getLogger(__name__)


@dataclass
class System:
    fleet: Fleet
    engine: Engine
    clock: Clock
    catalog: dict[tuple[str, str], int]
    rules: RuleSet
    analyzers: dict[str, list[Analyzer]] = field(default_factory=dict)
    api_engine: Engine | None = None  # the API's own connection (app role, RLS); None: `engine`
    live: LiveSnapshot = field(default_factory=LiveSnapshot)
    writer: HistorianWriter | None = None
    alarms: AlarmService | None = None
    sources: list[ModbusSource] = field(default_factory=list)
    mqtt: MqttIngest | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    async def prepare(
        cls, fleet: Fleet, database_url: str, clock: Clock, *, api_database_url: str | None = None
    ) -> System:
        """Validate rules, migrate the database and sync the catalog. Raises ConfigError on bad rules."""
        analyzers = all_analyzers(fleet)
        derived = {sid: {p.name for a in an for p in a.outputs} for sid, an in analyzers.items()}
        rules = load_rules(fleet.alarm_rules, fleet, derived) if fleet.alarm_rules else RuleSet({}, [])
        engine = make_engine(database_url)
        await asyncio.to_thread(upgrade, engine)
        extra = {
            sid: [(p.name, p.unit, p.kind) for a in an for p in a.outputs] for sid, an in analyzers.items()
        }
        catalog = await asyncio.to_thread(historian.sync_catalog, engine, fleet, extra)
        api_engine = None
        if api_database_url:
            api_engine = await asyncio.to_thread(rls.app_engine, api_database_url)
        return cls(
            fleet=fleet,
            engine=engine,
            clock=clock,
            catalog=catalog,
            rules=rules,
            analyzers=analyzers,
            api_engine=api_engine,
        )

    def derived_points(self) -> dict[str, list[DerivedPoint]]:
        return {sid: [p for a in an for p in a.outputs] for sid, an in self.analyzers.items()}

    def emit(self, samples: list[Sample]) -> None:
        """Fan-out of every batch a source reads, with the points derived from it: live snapshot,
        historian, alarms."""
        derived = self.alarms.derive(samples) if self.alarms is not None else []
        every = samples + derived if derived else samples
        self.live.accept(every)
        if self.writer is not None:
            self.writer.accept(every)
        if self.alarms is not None:
            self.alarms.accept(samples, derived)

    async def start_collecting(self, stations: Iterable[str] | None = None) -> None:
        self.writer = HistorianWriter(self.engine, self.catalog)
        self.alarms = AlarmService(self.fleet, self.rules, self.engine, self.clock, self.analyzers)
        await self.alarms.restore()
        only = set(stations) if stations is not None else None
        self.sources = build_modbus_sources(self.fleet, self.clock, self.emit, stations=only)
        self.mqtt = build_mqtt_ingest(self.fleet, self.clock, self.emit, stations=only)
        runnables: list = [*self.sources, *([self.mqtt] if self.mqtt else [])]
        self._tasks = [
            asyncio.create_task(run_sources(runnables), name="collector.sources"),
            asyncio.create_task(self.writer.run(), name="historian.writer"),
            asyncio.create_task(self.alarms.run(), name="alarms.service"),
        ]
        log.info(
            "collecting from %d Modbus controllers%s, %d stations",
            len(self.sources),
            f" and {len(self.fleet.mqtt_controllers())} MQTT controllers" if self.mqtt else "",
            len(self.fleet.stations),
        )

    def readiness(self) -> dict[str, bool]:
        if not self._tasks:
            return {}
        return {t.get_name(): not t.done() for t in self._tasks}

    def api_context(self, *, in_process_live: bool = True, auth: AuthConfig | None = None) -> ApiContext:
        return ApiContext(
            fleet=self.fleet,
            engine=self.api_engine or self.engine,
            auth=auth or AuthConfig(),
            clock=self.clock,
            catalog=self.catalog,
            live=self.live if in_process_live else None,
            readiness=self.readiness,
            derived=self.derived_points(),
            rules=self.rules,
        )

    async def stop(self) -> None:
        """Stop polling, store what was read, then stop the writers."""
        for t in self._tasks[:1]:  # sources first: nothing new arrives after this
            await _cancel(t)
        if self.alarms is not None:
            try:
                await asyncio.wait_for(self.alarms.drain(), 10)
            except TimeoutError:
                log.error("alarm events still unstored at shutdown")
        if self.writer is not None:
            try:
                await self.writer.flush()
            except Exception:
                log.exception("final historian flush failed; %d rows not written", self.writer.pending)
        for t in self._tasks[1:]:
            await _cancel(t)
        self._tasks = []
        self.engine.dispose()
        if self.api_engine is not None:
            self.api_engine.dispose()


async def _cancel(task: asyncio.Task, limit_s: float = 10.0) -> None:
    """Cancel and wait a bounded time: shutdown must finish even if a task misbehaves."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=limit_s)
    if not done:
        log.error("%s did not stop within %.0f s; leaving it", task.get_name(), limit_s)
    elif not task.cancelled() and task.exception() is not None:
        log.error("%s ended with %r", task.get_name(), task.exception())


class ApiServer(uvicorn.Server):
    """uvicorn that ends the live streams when it shuts down (it would otherwise wait for them forever)."""

    async def shutdown(self, sockets=None) -> None:
        self.config.app.state.hub.close()
        await super().shutdown(sockets)


async def serve_api(
    ctx: ApiContext,
    host: str,
    port: int,
    *,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
) -> None:
    """Serve until uvicorn sees SIGINT/SIGTERM (it owns the signals while it runs). With a certificate,
    TLS only (uvicorn's default context: TLS 1.2 or newer)."""
    config = uvicorn.Config(
        create_app(ctx),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=5,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )
    server = ApiServer(config)
    await server.serve()
