"""Wiring: one process runs any of simulator, collector + alarms + historian writer, and the API.

Start order matters: migrate, sync the catalog, restore active alarms, and only then start polling, so
the first samples already find their points and alarms that were active before a restart can clear.

A collector process also runs the system monitor (alarms/system_monitor.py): its own writer, spool and
rejected input, the other shards' heartbeats, the notifier's and the historian's set-up become system alarms
of the centre, stored through the same alarm service as the stations'. Rejected input from every source is
counted and kept by one `RejectionLog` (pumpwatch/core/rejections.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from pumpwatch.alarms import store
from pumpwatch.alarms.analyzers import Analyzer, DerivedPoint
from pumpwatch.alarms.analyzers.build import all_analyzers
from pumpwatch.alarms.coverage import CoverageError, FleetCoverage, check_fleet
from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.alarms.notify.dispatcher import purge_pending
from pumpwatch.alarms.notify.service import NotifierService, tto_from_db, tto_from_live
from pumpwatch.alarms.rules import RuleSet
from pumpwatch.alarms.service import AlarmService
from pumpwatch.alarms.system_monitor import (
    HISTORIAN,
    NOTIFIER,
    Reading,
    SystemMonitor,
    is_system,
    process_station,
)
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.context import ApiContext
from pumpwatch.api.webconfig import WebConfig
from pumpwatch.app.drills import DrillRunner
from pumpwatch.app.metrics import registry_for
from pumpwatch.collector.field_write import FieldWriter
from pumpwatch.collector.fleet import build_modbus_sources, build_mqtt_ingest
from pumpwatch.collector.sources.modbus import ModbusSource
from pumpwatch.collector.sources.mqtt import MqttIngest
from pumpwatch.collector.supervisor import run_guarded, run_sources
from pumpwatch.core import historian, tasks
from pumpwatch.core.clock import Clock, SystemClock
from pumpwatch.core.config import Fleet
from pumpwatch.core.db import rls
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.historian_scale import Rollups
from pumpwatch.core.leases import Fence, LeaseKeeper, clock_skew_s, leases
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.metrics import render
from pumpwatch.core.rejections import RejectionLog
from pumpwatch.core.resources import Register, load_register
from pumpwatch.core.sample import Sample
from pumpwatch.core.settings import Settings
from pumpwatch.core.sharding import Shard, ShardHeartbeat, claim_stations, newest_service_beat, stations_of
from pumpwatch.core.spool import Spool
from pumpwatch.core.timescale import HistorianFeatures, JobWatch, ensure_timescale, plain_features
from pumpwatch.core.writer import HistorianWriter

log = logging.getLogger(__name__)


@dataclass
class System:
    fleet: Fleet
    engine: Engine
    clock: Clock
    catalog: dict[tuple[str, str], int]
    rules: RuleSet
    analyzers: dict[str, list[Analyzer]] = field(default_factory=dict)
    coverage: FleetCoverage | None = None  # which safety functions each station has armed
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
    # Leased links (pumpwatch.core.leases), on when sharded or a standby: every Modbus link is polled by the
    # collector holding its lease; a dead collector's links are taken over and given back.
    standby: bool = False  # no home links: only take over lapsed ones
    collector_id: str | None = None  # the name in the leases (default shard-I / standby-<host>)
    leases: LeaseKeeper | None = None
    _link_sources: dict[str, ModbusSource] = field(default_factory=dict)
    _link_tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    # what the historian's database offers (TimescaleDB features present / missing and why); set at start
    historian_features: HistorianFeatures | None = None
    timescale_jobs: JobWatch | None = None  # a collector on TimescaleDB watches (and stands in for) its jobs
    # What of the historian could not be set up ("feature: reason"; empty when all is well): the
    # `historian_setup_incomplete` system alarm with the jobs TimescaleDB fails (JobWatch). Filled at start
    # from `historian_features`.
    historian_problems: list[str] = field(default_factory=list)
    rejections: RejectionLog | None = None  # rejected input of this process's sources, counted and kept
    resources: Register | None = None  # mobile resources (fleet.yaml `resources:`)
    drills: DrillRunner | None = None  # the drill engine on a simulated fleet (pumpwatch demo)
    dead_letter_keep: int = 1000  # dead letters kept per source (the newest)
    monitor: SystemMonitor | None = None  # system alarms of the centre, in a collector process
    _notifier_seen: tuple[float, datetime | None] | None = None  # (read at, newest notifier heartbeat)
    _skew_seen: tuple[float, float | None] | None = None  # (read at, clock skew against the database)
    _leases_seen: list[dict] = field(default_factory=list)  # the lease table as last read (shard details)
    _monitor_since: datetime | None = None
    _registry: CollectorRegistry | None = None
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
        require_coverage: bool = False,
    ) -> System:
        """Validate rules, their coverage and on-call, migrate the database and sync the catalog. Raises
        ConfigError on bad rules or on-call configuration and, with `require_coverage` (`pumpwatch run` and
        `demo`), when a station has a safety function neither armed nor waived (alarms/coverage.py)."""
        analyzers = all_analyzers(fleet)
        rules, coverage = check_fleet(fleet, analyzers)
        if require_coverage and not coverage.ok:
            raise CoverageError(coverage.problems)
        for warning in (*rules.warnings, *coverage.stale_waivers):  # armed all the same: say so, run
            log.warning("%s", warning)
        oncall = load_oncall(fleet.oncall, fleet) if fleet.oncall else None
        register = load_register(fleet.resources, fleet) if fleet.resources else None
        engine = make_engine(database_url)
        await asyncio.to_thread(upgrade, engine)
        extra = {
            sid: [(p.name, p.unit, p.kind) for a in an for p in a.outputs] for sid, an in analyzers.items()
        }
        catalog = await asyncio.to_thread(historian.sync_catalog, engine, fleet, extra)
        api_engine = None
        if api_database_url:
            api_engine = await asyncio.to_thread(rls.app_engine, api_database_url)
        features = await asyncio.to_thread(historian_setup, engine)
        system = cls(
            fleet=fleet,
            engine=engine,
            clock=clock,
            catalog=catalog,
            rules=rules,
            analyzers=analyzers,
            coverage=coverage,
            api_engine=api_engine,
            historian_features=features,
            historian_problems=list(features.problems),
            resources=register,
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
        """The sink the collector's sources emit to (`collector.sources.Emit`, injected here): every batch
        a source reads, with the points the analyzers derive from it, goes to the live snapshot and the
        historian writer (kernel) and to the alarm service, once each (docs/architecture.md)."""
        derived = self.alarms.derive(samples) if self.alarms is not None else []
        every = samples + derived if derived else samples
        self.live.accept(every)
        if self.writer is not None:
            self.writer.accept(every)
        if self.alarms is not None:
            self.alarms.accept(samples, derived)

    def owner_id(self) -> str:
        """This collector's name in the link leases."""
        if self.collector_id:
            return self.collector_id
        if self.shard is not None:
            return f"shard-{self.shard.index}"
        return f"standby-{socket.gethostname()}"

    @property
    def leased(self) -> bool:
        return self.shard is not None or self.standby

    async def start_collecting(self, stations: Iterable[str] | None = None) -> None:
        if self.shard is not None:
            mine = stations_of(self.fleet, self.shard)
            stations = mine if stations is None else mine & set(stations)
        if self.standby:
            stations = set()
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
        fence = None
        link_of = {u.station: c.id for c in self.fleet.modbus_controllers() for u in c.units}
        if self.leased:
            home = sorted({link_of[s] for s in (only or ()) if s in link_of})
            self.leases = LeaseKeeper(
                self.engine,
                self.owner_id(),
                self.clock,
                home=home,
                links=sorted(set(link_of.values())),
                interval_s=self.heartbeat_interval_s,
                on_gain=self._links_gained,
                on_lose=self._links_lost,
            )
            fence = Fence(self.leases, link_of)
        rollups = None
        features = self.historian_features or plain_features(self.engine)
        if features.rollup_job:  # no continuous aggregate serves long trends: keep the plain rollups
            ids = None
            if only is not None and not self.leased:  # leased: any station may come this way
                ids = [pid for (sid, _), pid in self.catalog.items() if sid in only]
            rollups = Rollups(point_ids=ids)
        self.writer = HistorianWriter(
            self.engine, self.catalog, spool=sample_spool, rollups=rollups, clock=self.clock, fence=fence
        )
        # leased: the Modbus stations' evaluators come with their links' leases (`_links_gained`)
        evaluated = only if not self.leased else {s for s in (only or ()) if s not in link_of}
        self.alarms = AlarmService(
            self.fleet,
            self.rules,
            self.engine,
            self.clock,
            self.analyzers,
            spool=alarm_spool,
            stations=evaluated,
            fence=fence,
        )
        await self.alarms.restore()
        self.rejections = RejectionLog(
            self.engine, self.clock, tenant_id=self.fleet.centre, keep_per_source=self.dead_letter_keep
        )
        reject = self.rejections.record
        if self.leased:  # a source for every link, run while its lease is held
            every = build_modbus_sources(self.fleet, self.clock, self.emit, reject=reject)
            self._link_sources = {src.ctrl.id: src for src in every}
            for src in every:
                src.may_poll = lambda k=src.ctrl.id: self.leases is not None and self.leases.may_poll(k)
            self.sources = []
        else:
            self.sources = build_modbus_sources(
                self.fleet, self.clock, self.emit, stations=only, reject=reject
            )
        self.mqtt = build_mqtt_ingest(self.fleet, self.clock, self.emit, stations=only, reject=reject)
        owned = [s.ctrl.id for s in self.sources] + sorted(self._link_sources)
        if self.mqtt is not None:
            owned += [h.ctrl.id for h in self.mqtt.json.values()] + [
                h.ctrl.id for h in self.mqtt.spb.values()
            ]
        await self.rejections.restore(owned)
        self.monitor = SystemMonitor(
            self.fleet.centre, self.rules.system, self.clock, self._system_readings, self.alarms.submit
        )
        self._monitor_since = self.clock.now()
        if self.fleet.centre is not None:
            rows = await asyncio.to_thread(
                store.list_alarms, self.engine, open_=True, active=True, tenant_ids=[self.fleet.centre]
            )
            self.monitor.restore(r for r in rows if is_system(r["station_id"]))
        else:
            log.warning(
                "no tenant is the monitoring centre (`centre: true` in tenants.yaml): system alarms are "
                "logged and shown in /readyz only, not journaled or notified"
            )
        runnables: list = [*self.sources, *([self.mqtt] if self.mqtt else [])]
        if self.leases is not None:  # take the home links (and lapsed ones) before the first poll
            await self.leases.step()
        self._tasks = [
            asyncio.create_task(run_sources(runnables), name="collector.sources"),
            asyncio.create_task(self.writer.run(), name="historian.writer"),
            asyncio.create_task(self.alarms.run(), name="alarms.service"),
            asyncio.create_task(self.rejections.run(), name="rejections.writer"),
            asyncio.create_task(self.monitor.run(), name="system.monitor"),
        ]
        if features.shape == "timescaledb" and "hypertable" in features.present:
            self.timescale_jobs = JobWatch(self.engine)
            self._tasks.append(
                asyncio.create_task(self.timescale_jobs.run(), name="historian.timescale_jobs")
            )
        if self.fleet.oncall is None:  # nobody will act on the pending journal entries: keep the table small
            self._tasks.append(asyncio.create_task(self._purge_pending(), name="notify.purge"))
        if self.shard is not None:
            claimed = sorted(only or ())
            taken = await asyncio.to_thread(
                claim_stations, self.engine, self.shard, claimed, datetime.now(UTC)
            )
            if taken:
                log.warning(
                    "shard %s took over %d stations from another shard layout", self.shard, len(taken)
                )
            self.heartbeat = ShardHeartbeat(
                self.engine,
                self.shard,
                len(claimed),
                self.shard_stats,
                interval_s=self.heartbeat_interval_s,
                now=lambda: datetime.now(UTC),
            )
            self._tasks.append(asyncio.create_task(self.heartbeat.run(), name="shard.heartbeat"))
        if self.leases is not None:
            self._tasks.append(asyncio.create_task(self._keep_leases(), name="link.leases"))
        log.info(
            "collecting from %d Modbus controllers%s, %d stations",
            len(self.sources),
            f" and {len(self.fleet.mqtt_controllers())} MQTT controllers" if self.mqtt else "",
            len(self.fleet.stations),
        )

    # -- leased links ------------------------------------------------------------------------------------
    async def _keep_leases(self) -> None:
        assert self.leases is not None
        await self.clock.sleep(self.leases.interval_s)  # the first step ran at start
        await self.leases.run()

    def _stations_of_links(self, links: Iterable[str]) -> list[str]:
        return [u.station for k in links if k in self._link_sources for u in self._link_sources[k].units]

    async def _links_gained(self, links: list[str]) -> None:
        """Links whose lease this collector now holds: their stations' alarms (active ones restored from
        the store), then their polling."""
        if self.alarms is not None:
            await self.alarms.adopt(self._stations_of_links(links))
        for k in links:
            src = self._link_sources.get(k)
            if src is None or k in self._link_tasks:
                continue
            if src not in self.sources:
                self.sources.append(src)
            self._link_tasks[k] = asyncio.create_task(run_guarded(src, 30.0), name=src.name)
        if links:
            log.info("%s polls %d links now: %s", self.owner_id(), len(self._link_tasks), ", ".join(links))

    async def _links_lost(self, links: list[str]) -> None:
        """Links lost or given back: stop polling them, store their alarm events, forget their evaluators."""
        for k in links:
            t = self._link_tasks.pop(k, None)
            if t is not None:
                await tasks.stop(t)
            src = self._link_sources.get(k)
            if src in self.sources:
                self.sources.remove(src)
        if self.alarms is not None:
            await self.alarms.release(self._stations_of_links(links))

    # -- the system monitor's readings -------------------------------------------------------------------
    async def _system_readings(self) -> list[Reading]:
        """What the system monitor measures this round (alarms.rules.SYSTEM_POINTS)."""
        problems = self.historian_feature_problems()
        out = [Reading(HISTORIAN, "historian_setup_problems", float(len(problems)), "; ".join(problems))]
        me = process_station(self.shard.index if self.shard is not None else None)
        w = self.writer
        if w is not None:
            out.append(Reading(me, "historian_queue_age_s", w.queue_age_s(), w.last_error or ""))
            if w.spool is not None:
                st = w.spool.status()
                detail = (
                    f"{st.pending_rows} rows, {st.bytes / 2**20:.0f} of {st.capacity_bytes / 2**20:.0f} MiB"
                )
                out.append(Reading(me, "spool_fill_pct", st.fill_pct, detail))
        if self.rejections is not None:
            out.append(Reading(me, "rejected_per_min", self.rejections.rate_per_min()))
        out += self._shard_readings()
        if isinstance(self.clock, SystemClock):  # simulated time (demo, tests) is off by design
            out.append(await self._skew_reading(me))
        if self.fleet.oncall is not None:
            out.append(await self._notifier_reading())
        return out

    def _shard_readings(self) -> list[Reading]:
        hb = self.heartbeat
        if hb is None:
            return []
        now = hb.now()
        # the others' heartbeats as last read; not read lately (the database is away): hold, not "dead"
        fresh = hb.last_read_at is not None and (now - hb.last_read_at).total_seconds() <= 3 * hb.interval_s
        out = []
        for r in hb.last:
            i = int(r["shard"])
            if i == hb.shard.index:
                continue
            sid = process_station(i)
            if not fresh:
                out.append(Reading(sid, "shard_missed_beats", None))
                continue
            interval = float(r.get("interval_s") or hb.interval_s)
            age = r.get("age_s")
            if age is None:  # never reported (since this shard started)
                age = (now - hb.started_at).total_seconds()
                where = "never reported"
            else:
                where = f"on {r.get('host')} (pid {r.get('pid')})"
            out.append(
                Reading(
                    sid,
                    "shard_missed_beats",
                    age / interval,
                    f"shard {i}/{r['shard_count']} {where}, last heartbeat {age:.0f} s ago"
                    + self._taken_over(i, int(r["shard_count"])),
                )
            )
        return out

    async def _skew_reading(self, me: str, every_s: float = 5.0) -> Reading:
        """This collector's clock against the database's (sample times, lease expiry and fencing use it)."""
        mono = self.clock.monotonic()
        if self._skew_seen is None or mono - self._skew_seen[0] >= every_s:
            try:
                skew = await asyncio.to_thread(clock_skew_s, self.engine, self.clock)
                if self.leases is not None:
                    self._leases_seen = await asyncio.to_thread(leases, self.engine)
            except Exception:  # the database is away: nothing to compare with, hold
                return Reading(me, "clock_skew_s", None)
            self._skew_seen = (mono, skew)
        skew = self._skew_seen[1]
        if skew is None:
            return Reading(me, "clock_skew_s", None)
        return Reading(me, "clock_skew_s", abs(skew), f"{'ahead of' if skew > 0 else 'behind'} the database")

    def _taken_over(self, shard: int, count: int) -> str:
        """Who polls a dead shard's links now, as last read from the lease table."""
        if not self._leases_seen:
            return ""
        theirs = stations_of(self.fleet, Shard(shard, count))
        links = {
            src.ctrl.id for src in self._link_sources.values() if any(u.station in theirs for u in src.units)
        }
        now = self.clock.now()
        by: dict[str, int] = {}
        unpolled = 0
        for r in self._leases_seen:
            if r["link_id"] not in links:
                continue
            if r["owner"] is None or r["expires_at"] < now or r["owner"] == f"shard-{shard}":
                unpolled += 1
            else:
                by[r["owner"]] = by.get(r["owner"], 0) + 1
        parts = [f"{n} links polled by {o}" for o, n in sorted(by.items())]
        if unpolled:
            parts.append(f"{unpolled} links NOT polled by anyone")
        return "; " + ", ".join(parts) if parts else ""

    async def _notifier_reading(self, every_s: float = 5.0) -> Reading:
        """Seconds since any notifier replica completed a pass (its heartbeat in the database)."""
        mono = self.clock.monotonic()
        if self._notifier_seen is None or mono - self._notifier_seen[0] >= every_s:
            try:
                last = await asyncio.to_thread(newest_service_beat, self.engine, "notifier")
            except Exception:  # the database is away: nothing to say about the notifier, hold
                return Reading(NOTIFIER, "notifier_silent_s", None)
            self._notifier_seen = (mono, last)
        last = self._notifier_seen[1]
        since = last or self._monitor_since or self.clock.now()
        silent = max(0.0, (self.clock.now() - since).total_seconds())
        detail = "no notifier replica has run" if last is None else f"last pass at {last.isoformat()}"
        return Reading(NOTIFIER, "notifier_silent_s", silent, detail)

    async def _purge_pending(self, every_s: float = 600) -> None:
        while True:
            try:
                await asyncio.to_thread(purge_pending, self.engine, self.clock.now() - timedelta(hours=1))
            except Exception:
                log.exception("cannot purge notify_pending; will retry")
            await self.clock.sleep(every_s)

    def historian_feature_problems(self) -> list[str]:
        """What the historian lacks or cannot keep up, one line each (for the centre's system alarm): the
        TimescaleDB features missing since start and the jobs its scheduler fails."""
        jobs = self.timescale_jobs.problems() if self.timescale_jobs is not None else []
        return self.historian_problems + jobs

    def readiness(self) -> dict[str, bool]:
        running = self._tasks + ([self._notify_task] if self._notify_task else [])
        if not running:
            return {}
        checks = {t.get_name(): not t.done() for t in running}
        if self.writer is not None:
            checks["historian_current"] = not self.writer.delayed
            checks["spool_below_80pct"] = not self.writer.spool_fill_high
        if self.alarms is not None:
            checks["alarm_journal_current"] = not self.alarms.delayed
        return checks

    def system_alarms(self) -> list[dict] | None:
        """The system alarms active now in this process's monitor (None: no monitor here)."""
        return self.monitor.active() if self.monitor is not None else None

    def metrics_text(self) -> bytes:
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
        if self.historian_features is not None:
            out["historian_features"] = self.historian_features.as_dict()
        if self.timescale_jobs is not None:
            out["timescale_jobs"] = self.timescale_jobs.status()
        out["historian_problems"] = self.historian_feature_problems()
        if self.monitor is not None:
            out["system_alarms"] = self.monitor.active()
        if self.rejections is not None:
            out["rejections"] = self.rejections.status()  # no source names: /readyz is public
        if self.writer is not None:
            out["historian"] = self.writer.status()
        if self.alarms is not None:
            out["alarm_journal"] = self.alarms.status()
        if self.leases is not None:
            out["leases"] = self.leases.status()
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
            coverage=self.coverage,
            notify=self.notifier,
            active_alarms=self._active_alarms,
            system_alarms=self.system_alarms,
            rejections=self.rejections,
            drills=self.drills,
            resources=self.resources,
            resource_changed=self.drills.resource_changed if self.drills is not None else None,
        )

    def _active_alarms(self) -> dict[str, list[dict]] | None:
        return self.alarms.active_by_station() if self.alarms is not None else None

    async def stop(self) -> None:
        """Stop polling, store what was read, then stop the writers."""
        # the lease keeper first: a link it gained during the drain below would start a poll task that
        # nothing stops any more (its leases simply lapse, as a dead shard's do)
        for t in [t for t in self._tasks if t.get_name() == "link.leases"]:
            await tasks.stop(t)
            self._tasks.remove(t)
        for t in self._tasks[:1]:  # sources first: nothing new arrives after this
            await tasks.stop(t)
        for t in list(self._link_tasks.values()):
            await tasks.stop(t)
        self._link_tasks = {}
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
        if self.rejections is not None:
            try:
                await self.rejections.flush()
            except Exception:
                log.exception("final dead-letter flush failed; %d not stored", self.rejections.queued)
        for t in self._tasks[1:]:
            await tasks.stop(t)
        self._tasks = []
        if self._notify_task is not None:  # last: it may still tell someone about the final events
            await tasks.stop(self._notify_task)
            self._notify_task = None
        for sp in self.spools:
            sp.close()
        self.spools = []
        self.engine.dispose()
        if self.api_engine is not None:
            self.api_engine.dispose()


def historian_setup(engine: Engine) -> HistorianFeatures:
    """TimescaleDB's features where the server offers them (`pumpwatch.core.timescale`), logged: what is
    missing at ERROR with the reason, once per start. A set-up that cannot even be attempted (the database
    went away meanwhile) counts as every feature missing, never as plain PostgreSQL."""
    try:
        features = ensure_timescale(engine)
    except Exception as exc:
        log.exception("historian: TimescaleDB set-up failed")
        why = f"set-up failed: {type(exc).__name__}: {exc}".split("\n")[0]
        features = HistorianFeatures("postgresql", present=["rollups"], missing={"timescaledb": why})
    if features.missing:
        for line in features.problems:
            log.error("%s", line)
        log.error(
            "historian: TimescaleDB is only partly set up (present: %s); long trends read %s",
            ", ".join(features.present) or "nothing",
            "the plain rollups" if features.rollup_job else features.trend_source,
        )
    elif features.shape == "timescaledb":
        log.info("historian: TimescaleDB %s: %s", features.version, ", ".join(features.present))
    elif features.note:
        log.warning("historian: %s", features.note)
    return features
