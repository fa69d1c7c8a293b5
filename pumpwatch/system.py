"""Wiring: one process runs any of simulator, collector + alarms + historian writer, and the API.

Start order matters: migrate, sync the catalog, restore active alarms, and only then start polling, so
the first samples already find their points and alarms that were active before a restart can clear.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import Engine

from alarms.analyzers import Analyzer, DerivedPoint
from alarms.analyzers.build import all_analyzers
from alarms.notify.config import load_oncall
from alarms.notify.dispatcher import purge_pending
from alarms.notify.service import NotifierService, tto_from_db, tto_from_live
from alarms.rules import RuleSet, load_rules
from alarms.service import AlarmService
from api.auth.config import AuthConfig
from api.context import ApiContext
from api.main import create_app
from api.webconfig import WebConfig
from collector.field_write import FieldWriter
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
from pumpwatch.historian_scale import Rollups, ensure_timescale, timescale_active
from pumpwatch.live import LiveSnapshot
from pumpwatch.settings import Settings
from pumpwatch.sharding import Shard, ShardHeartbeat, claim_stations, stations_of
from pumpwatch.spool import Spool
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
    notifier: NotifierService | None = None  # on-call notification, when the fleet names an oncall file
    spool_dir: Path | None = None  # store-and-forward folder (None: rows wait in memory only)
    spool_capacity_bytes: int = 4 * 1024**3
    spools: list[Spool] = field(default_factory=list)
    shard: Shard | None = None  # this process polls only its shard's stations
    heartbeat: ShardHeartbeat | None = None
    heartbeat_interval_s: float = 5.0
    timescale: bool = False
    _registry: object = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _notify_task: asyncio.Task | None = None

    @classmethod
    async def prepare(
        cls,
        fleet: Fleet,
        database_url: str,
        clock: Clock,
        secret_key: str | None = None,
        *,
        api_database_url: str | None = None,
    ) -> System:
        """Validate rules and on-call, migrate the database and sync the catalog. Raises ConfigError on bad
        rules or on-call configuration."""
        analyzers = all_analyzers(fleet)
        derived = {sid: {p.name for a in an for p in a.outputs} for sid, an in analyzers.items()}
        rules = load_rules(fleet.alarm_rules, fleet, derived) if fleet.alarm_rules else RuleSet({}, [])
        oncall = load_oncall(fleet.oncall, fleet) if fleet.oncall else None
        engine = make_engine(database_url)
        await asyncio.to_thread(upgrade, engine)
        extra = {
            sid: [(p.name, p.unit, p.kind) for a in an for p in a.outputs] for sid, an in analyzers.items()
        }
        catalog = await asyncio.to_thread(historian.sync_catalog, engine, fleet, extra)
        api_engine = None
        if api_database_url:
            api_engine = await asyncio.to_thread(rls.app_engine, api_database_url)
        timescale = False
        if engine.dialect.name == "postgresql":
            try:
                timescale = await asyncio.to_thread(ensure_timescale, engine)
            except Exception:
                log.exception("TimescaleDB is available but could not be set up; using plain PostgreSQL")
            timescale = timescale or await asyncio.to_thread(timescale_active, engine)
        system = cls(
            fleet=fleet,
            engine=engine,
            clock=clock,
            catalog=catalog,
            rules=rules,
            analyzers=analyzers,
            api_engine=api_engine,
            timescale=timescale,
        )
        if oncall is not None:
            system.notifier = NotifierService(
                engine,
                oncall,
                fleet,
                clock,
                secret_key if secret_key is not None else Settings().secret_key,
                tto=tto_from_db(engine, catalog, clock),
            )
        return system

    def start_notifying(self) -> None:
        """Run the notifier loops in this process (dispatch, send, heartbeat)."""
        if self.notifier is None or self._notify_task is not None:
            return
        if self.alarms is not None:  # in-process values are fresher than the table
            self.notifier.ctx.tto = tto_from_live(self.live, self.clock)
        self._notify_task = asyncio.create_task(self.notifier.run(), name="notify.service")

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
        if self.shard is not None:
            mine = stations_of(self.fleet, self.shard)
            stations = mine if stations is None else mine & set(stations)
        only = set(stations) if stations is not None else None
        if self.shard is not None and self.fleet.mqtt is not None:  # one MQTT session per shard
            cid = f"{self.fleet.mqtt.client_id}-shard{self.shard.index}"
            self.fleet.mqtt = self.fleet.mqtt.model_copy(update={"client_id": cid})
        sample_spool = alarm_spool = None
        if self.spool_dir is not None:
            # Alarm events are few and small: a 64 MiB spool holds years of them; samples get the rest.
            sample_spool = Spool(self.spool_dir / "samples", capacity_bytes=self.spool_capacity_bytes)
            alarm_spool = Spool(self.spool_dir / "alarms", capacity_bytes=64 * 1024**2)
            self.spools = [sample_spool, alarm_spool]
        rollups = None
        if self.engine.dialect.name == "postgresql" and not self.timescale:
            ids = None if only is None else [pid for (sid, _), pid in self.catalog.items() if sid in only]
            rollups = Rollups(point_ids=ids)
        self.writer = HistorianWriter(self.engine, self.catalog, spool=sample_spool, rollups=rollups)
        self.alarms = AlarmService(
            self.fleet, self.rules, self.engine, self.clock, self.analyzers, spool=alarm_spool, stations=only
        )
        await self.alarms.restore()
        self.sources = build_modbus_sources(self.fleet, self.clock, self.emit, stations=only)
        self.mqtt = build_mqtt_ingest(self.fleet, self.clock, self.emit, stations=only)
        runnables: list = [*self.sources, *([self.mqtt] if self.mqtt else [])]
        self._tasks = [
            asyncio.create_task(run_sources(runnables), name="collector.sources"),
            asyncio.create_task(self.writer.run(), name="historian.writer"),
            asyncio.create_task(self.alarms.run(), name="alarms.service"),
        ]
        if self.fleet.oncall is None:  # nobody will act on the pending journal entries: keep the table small
            self._tasks.append(asyncio.create_task(self._purge_pending(), name="notify.purge"))
        if self.shard is not None:
            mine = sorted(only or ())
            taken = await asyncio.to_thread(claim_stations, self.engine, self.shard, mine, datetime.now(UTC))
            if taken:
                log.warning(
                    "shard %s took over %d stations from another shard layout", self.shard, len(taken)
                )
            self.heartbeat = ShardHeartbeat(
                self.engine,
                self.shard,
                len(mine),
                self.shard_stats,
                interval_s=self.heartbeat_interval_s,
                now=lambda: datetime.now(UTC),
            )
            self._tasks.append(asyncio.create_task(self.heartbeat.run(), name="shard.heartbeat"))
        log.info(
            "collecting from %d Modbus controllers%s, %d stations",
            len(self.sources),
            f" and {len(self.fleet.mqtt_controllers())} MQTT controllers" if self.mqtt else "",
            len(self.fleet.stations),
        )

    async def _purge_pending(self, every_s: float = 600) -> None:
        while True:
            try:
                await asyncio.to_thread(purge_pending, self.engine, self.clock.now() - timedelta(hours=1))
            except Exception:
                log.exception("cannot purge notify_pending; will retry")
            await self.clock.sleep(every_s)

    def readiness(self) -> dict[str, bool]:
        tasks = self._tasks + ([self._notify_task] if self._notify_task else [])
        if not tasks:
            return {}
        checks = {t.get_name(): not t.done() for t in tasks}
        if self.writer is not None:
            checks["historian_current"] = not self.writer.delayed
            checks["spool_below_80pct"] = not self.writer.spool_fill_high
        if self.alarms is not None:
            checks["alarm_journal_current"] = not self.alarms.delayed
        return checks

    def metrics_text(self) -> bytes:
        from pumpwatch.metrics import registry_for, render

        if self._registry is None:
            self._registry = registry_for(self)
        return render(self._registry)

    def late_polls(self) -> int:
        return sum(src.stats.late_cycles for src in self.sources)

    def station_count(self) -> int:
        return sum(len(src.units) for src in self.sources) + (
            len(self.mqtt.feeds) if self.mqtt is not None else 0
        )

    def shard_stats(self) -> dict:
        w = self.writer
        sp = w.spool.status() if w is not None and w.spool is not None else None
        return {
            "polls": sum(src.stats.polls for src in self.sources),
            "late_polls": self.late_polls(),
            "spool_rows": sp.pending_rows if sp else 0,
            "historian_state": "delayed" if w is not None and w.delayed else "current",
        }

    def status(self) -> dict:
        """What an operator needs to know about this process's storage path (API, /readyz, /metrics)."""
        out: dict = {}
        if self.writer is not None:
            out["historian"] = self.writer.status()
        if self.alarms is not None:
            out["alarm_journal"] = self.alarms.status()
        if self.heartbeat is not None:
            out["shard"] = str(self.shard)
            out["shards"] = [
                {k: r.get(k) for k in ("shard", "shard_count", "alive", "age_s", "host", "pid", "stations")}
                for r in self.heartbeat.last
            ]
        return out

    def api_context(
        self, *, in_process_live: bool = True, auth: AuthConfig | None = None, web: WebConfig | None = None
    ) -> ApiContext:
        return ApiContext(
            web=web or WebConfig(),
            fleet=self.fleet,
            engine=self.api_engine or self.engine,
            auth=auth or AuthConfig(),
            field_write=FieldWriter(self.fleet, self.sources) if self.sources else None,
            clock=self.clock,
            catalog=self.catalog,
            live=self.live if in_process_live else None,
            readiness=self.readiness,
            status=self.status,
            metrics=self.metrics_text,
            derived=self.derived_points(),
            rules=self.rules,
            notify=self.notifier,
            active_alarms=self._active_alarms,
        )

    def _active_alarms(self) -> dict[str, list[str]] | None:
        return self.alarms.active_by_station() if self.alarms is not None else None

    async def stop(self) -> None:
        """Stop polling, store what was read, then stop the writers."""
        for t in self._tasks[:1]:  # sources first: nothing new arrives after this
            await _cancel(t)
        if self.alarms is not None:
            try:
                await asyncio.wait_for(self.alarms.drain(until_stored=False), 10)
            except TimeoutError:
                log.error("alarm events not yet in the database at shutdown (they wait in the spool)")
        if self.writer is not None:
            try:
                await self.writer.flush()
            except Exception:
                log.exception("final historian flush failed; %d rows not written", self.writer.pending)
        for t in self._tasks[1:]:
            await _cancel(t)
        self._tasks = []
        if self._notify_task is not None:  # last: it may still tell someone about the final events
            await _cancel(self._notify_task)
            self._notify_task = None
        for sp in self.spools:
            sp.close()
        self.spools = []
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
    config = api_server_config(
        create_app(ctx), host, port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    )
    server = ApiServer(config)
    await server.serve()


def api_server_config(
    app: object,
    host: str,
    port: int,
    *,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
    timeout_graceful_shutdown: int = 5,
) -> uvicorn.Config:
    """uvicorn as the API runs: no proxy-header handling of its own (its default believes X-Forwarded-*
    from 127.0.0.1; the app's `api.proxies` believes only PUMPWATCH_TRUSTED_PROXIES), no Server header."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        proxy_headers=False,
        server_header=False,
    )


async def serve_probes(ctx: ApiContext, host: str, port: int) -> None:
    """A collector without the API still answers its orchestrator and Prometheus."""
    from api.ops import create_ops_app

    config = uvicorn.Config(
        create_ops_app(ctx), host=host, port=port, log_level="warning", lifespan="off", proxy_headers=False
    )
    await uvicorn.Server(config).serve()
