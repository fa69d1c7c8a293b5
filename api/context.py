"""What the API needs from the running system, passed in explicitly (no import-time globals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.alarms.coverage import FleetCoverage
from pumpwatch.alarms.rules import RuleSet
from pumpwatch.alarms.status import DEFAULT_ROLES, AlarmRoles
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.auth.session_cache import SessionCache
from pumpwatch.api.inputs import RejectionCounts
from pumpwatch.api.webconfig import WebConfig
from pumpwatch.core import historian
from pumpwatch.core.clock import Clock
from pumpwatch.core.config import Fleet
from pumpwatch.core.db import rls
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.resources import Register
from pumpwatch.core.sample import Quality, Sample


class DrillControl(Protocol):
    """The drill engine of a simulated fleet in this process (`pumpwatch.app.drills.DrillRunner`)."""

    async def start(self, text: str, actor: str | None) -> int: ...

    async def stop(self, drill_id: int, actor: str | None) -> bool: ...


@dataclass
class ApiContext:
    fleet: Fleet
    engine: Engine
    clock: Clock
    catalog: dict[tuple[str, str], int]  # (station, point) -> point id
    live: LiveSnapshot | None = None  # in-process collector; None: read the latest_value table
    readiness: Callable[[], dict[str, bool]] | None = None  # extra checks (e.g. collector tasks alive)
    status: Callable[[], dict] | None = None  # storage path of an in-process collector (spool, shard)
    metrics: Callable[[], bytes] | None = None  # Prometheus text of this process
    derived: dict[str, list[DerivedPoint]] = field(default_factory=dict)  # points our analyzers compute
    rules: RuleSet | None = None
    coverage: FleetCoverage | None = None  # safety functions per station: armed, waived or unarmed
    notify: Any = None  # alarms.notify.service.NotifierService when on-call notification is configured
    reports: Any = (
        None  # pumpwatch.reports.definitions.Definitions (None: loaded beside the fleet on first use)
    )
    latest_cache_s: float = 1.0
    auth: AuthConfig = field(default_factory=AuthConfig)
    # (station, point, value) -> value read back; None: no collector in this process, so no field writes
    field_write: Callable[[str, str, float], Awaitable[float]] | None = None
    write_confirmations: dict[str, Any] = field(default_factory=dict)  # pending second confirmations
    # sessions checked a moment ago, accepted from memory while the database is unreachable
    session_cache: SessionCache = field(default_factory=SessionCache)
    # station -> its active alarms ({name, active, suppressed_by}), from an in-process alarm engine: the
    # overview while the database (the alarm store) is unreachable; None (or a None answer): no engine here
    active_alarms: Callable[[], dict[str, list[dict[str, Any]]] | None] | None = None
    # the system alarms active in this process's system monitor (None, or a None answer: no monitor here)
    system_alarms: Callable[[], list[dict] | None] | None = None
    rejections: Any = None  # pumpwatch.core.rejections.RejectionLog of an in-process collector
    drills: DrillControl | None = None  # None: no simulated fleet here, so no drill can start
    resources: Register | None = None  # portable generators and vacuum trucks (None: none configured)
    # (station, resource kind, state) after a resource changed state: the demo's simulator hears of a
    # portable generator running; None elsewhere (the field reports it)
    resource_changed: Callable[[str, str, str], None] | None = None
    web: WebConfig = field(default_factory=WebConfig)  # proxies, origins, body limit, docs, metrics
    # API requests refused before a route ran, by reason (api/gate.py, api/failsafe.py): /metrics
    request_rejections: RejectionCounts = field(default_factory=RejectionCounts)
    _points_by_id: dict[int, tuple[str, str]] = field(default_factory=dict)
    # per tenant scope: under row-level security each scope reads its own rows
    _db_latest: dict[rls.Scope, tuple[float, dict[str, dict[str, Sample]]]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _roles: dict[str, AlarmRoles] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._points_by_id = {pid: key for key, pid in self.catalog.items()}
        # tenants.yaml `require_mfa: true`: every role of that tenant gives a second factor
        strict = frozenset(t for t, cfg in self.fleet.tenants.items() if getattr(cfg, "require_mfa", False))
        if strict - self.auth.mfa_tenants:
            self.auth = replace(self.auth, mfa_tenants=self.auth.mfa_tenants | strict)

    def alarm_roles(self, station: str) -> AlarmRoles:
        """Which of a station's alarm names mean power failure and comm loss (alarms/status.py)."""
        roles = self._roles.get(station)
        if roles is None:
            roles = AlarmRoles.of(self.rules.get(station)) if self.rules is not None else DEFAULT_ROLES
            self._roles[station] = roles
        return roles

    async def latest(self) -> dict[str, dict[str, Sample]] | LiveSnapshot:
        """Latest samples by station and point: the in-process snapshot, or the table (cached briefly)."""
        if self.live is not None:
            return self.live
        key = rls.Scope(rls.scope.get().tenants)
        async with self._lock:
            at, cached = self._db_latest.get(key, (-1e9, {}))
            if time.monotonic() - at > self.latest_cache_s:
                rows = await asyncio.to_thread(historian.read_latest, self.engine)
                cached = _by_station(rows, self._points_by_id)
                if len(self._db_latest) > 256:  # bounded: one entry per distinct tenant set
                    self._db_latest.clear()
                self._db_latest[key] = (time.monotonic(), cached)
        return cached


def _by_station(
    rows: dict[int, tuple[datetime, float | None, int]], names: dict[int, tuple[str, str]]
) -> dict[str, dict[str, Sample]]:
    out: dict[str, dict[str, Sample]] = {}
    for pid, (at, value, q) in rows.items():
        key = names.get(pid)
        if key is not None:
            out.setdefault(key[0], {})[key[1]] = Sample(key[0], key[1], value, at, Quality(q))
    return out


def station_samples(latest: dict[str, dict[str, Sample]] | LiveSnapshot, sid: str) -> dict[str, Sample]:
    if isinstance(latest, LiveSnapshot):
        return latest.station(sid)
    return latest.get(sid, {})
