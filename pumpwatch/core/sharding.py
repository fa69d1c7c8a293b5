"""Collectors sharded by station over one database, and the heartbeats that show a shard has died.

- A station belongs to shard `crc32(key) mod N`, where the key is the station id; stations behind one Modbus
  endpoint (a gateway polled one request at a time) or one MQTT controller (an edge node, one topic tree)
  share the key of its first station, so one process owns the link. crc32, not Python's `hash`, so every
  process agrees. Each shard's MQTT session gets its own client id (`<client_id>-shard<I>`).
- `--shard I/N` or `PUMPWATCH_SHARD=I/N`; `PUMPWATCH_SHARD=ordinal/N` takes I from the host name's trailing
  number (a Kubernetes StatefulSet pod `collector-2` is shard 2).
- Each shard evaluates alarms for its own stations only, claims them in `station_owner` at start, and writes
  a heartbeat row in `collector_shard` every few seconds (with its polls, late polls and spool backlog).
  Every shard and the API read the table: a shard whose heartbeat is older than `3 × interval`, or that never
  appeared, is reported dead (log, `/readyz` detail, `/api/v1/system/status`, the `pumpwatch_shard_up`
  metric) and raised as the centre's `shard_dead` system alarm (alarms/system_monitor.py).
- Services without a shard (the notifier replicas) beat in `service_heartbeat` (`service_beat`), so a
  collector's system monitor notices when none of them runs (`notifier_stopped`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pumpwatch.core.config import Fleet
from pumpwatch.core.db.schema import collector_shard, service_heartbeat, station_owner

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str, hostname: str | None = None) -> Shard:
    """`"I/N"` (0 ≤ I < N) or `"ordinal/N"` (I from the host name's trailing number)."""
    m = re.fullmatch(r"\s*(\d+|ordinal)\s*/\s*(\d+)\s*", value or "")
    if not m:
        raise ValueError(f"shard {value!r}: expected I/N (e.g. 0/3) or ordinal/N")
    count = int(m.group(2))
    if m.group(1) == "ordinal":
        host = hostname or socket.gethostname()
        o = re.search(r"(\d+)$", host)
        if not o:
            raise ValueError(f"shard {value!r}: host name {host!r} ends in no ordinal number")
        index = int(o.group(1))
    else:
        index = int(m.group(1))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {value!r}: need 0 ≤ I < N and N ≥ 1")
    return Shard(index, count)


def shard_of(key: str, count: int) -> int:
    return zlib.crc32(key.encode()) % count


def shard_keys(fleet: Fleet) -> dict[str, str]:
    """station → the key it is sharded by (its id, or its Modbus endpoint's first station)."""
    keys = {sid: sid for sid in fleet.stations}
    groups = [sorted(u.station for u in c.units) for c in fleet.modbus_controllers()]
    groups += [sorted(ms.station for ms in c.stations) for c in fleet.mqtt_controllers()]
    for sids in groups:
        for sid in sids:
            keys[sid] = sids[0]
    return keys


def stations_of(fleet: Fleet, shard: Shard) -> set[str]:
    return {sid for sid, key in shard_keys(fleet).items() if shard_of(key, shard.count) == shard.index}


# --- heartbeats ------------------------------------------------------------------------------------------


def _upsert(conn: Connection, table: Table) -> Any:  # (a dialect's Insert: both have on_conflict_do_update)
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def claim_stations(engine: Engine, shard: Shard, stations: Collection[str], at: datetime) -> list[str]:
    """Record this shard as the owner of `stations`; return those another live configuration held."""
    rows = [
        {"station_id": s, "shard": shard.index, "shard_count": shard.count, "claimed_at": at}
        for s in stations
    ]
    if not rows:
        return []
    with engine.begin() as conn:
        before = dict(
            conn.execute(
                select(station_owner.c.station_id, station_owner.c.shard).where(
                    station_owner.c.station_id.in_(list(stations))
                )
            ).all()
        )
        ins = _upsert(conn, station_owner)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[station_owner.c.station_id],
                set_={"shard": ins.excluded.shard, "shard_count": ins.excluded.shard_count, "claimed_at": at},
            ),
            rows,
        )
    return sorted(s for s, old in before.items() if old != shard.index)


def beat(engine: Engine, row: dict[str, Any]) -> None:
    with engine.begin() as conn:
        ins = _upsert(conn, collector_shard)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[collector_shard.c.shard],
                set_={k: ins.excluded[k] for k in row if k not in ("shard", "started_at")}
                | {"started_at": ins.excluded.started_at},
            ),
            [row],
        )


def shard_health(engine: Engine, now: datetime, max_age_s: float | None = None) -> list[dict[str, Any]]:
    """Every shard of the newest configuration (the shard count of the latest heartbeat), alive or not;
    shards that never reported are listed with `heartbeat_at` None. A shard is dead when its heartbeat is
    older than `max_age_s` (default: three of its own intervals)."""
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(collector_shard))]
    if not rows:
        return []
    count = max(rows, key=lambda r: r["heartbeat_at"])["shard_count"]
    by_index = {r["shard"]: r for r in rows if r["shard_count"] == count}
    out = []
    for i in range(count):
        r = by_index.get(i)
        if r is None:
            out.append(
                {"shard": i, "shard_count": count, "alive": False, "heartbeat_at": None, "age_s": None}
            )
            continue
        age = (now - r["heartbeat_at"]).total_seconds()
        limit = max_age_s if max_age_s is not None else 3 * r["interval_s"]
        out.append({**r, "alive": age <= limit, "age_s": round(age, 1)})
    return out


class ShardHeartbeat:
    """Writes this shard's heartbeat every `interval_s` and watches the others'."""

    def __init__(
        self,
        engine: Engine,
        shard: Shard,
        stations: int,
        stats: Callable[[], dict[str, Any]],
        *,
        interval_s: float = 5.0,
        now: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.shard = shard
        self.stations = stations
        self.stats = stats
        self.interval_s = interval_s
        self.now = now
        self.started_at = now()
        self.dead: set[int] = set()
        self.last: list[dict[str, Any]] = []
        self.last_read_at: datetime | None = None  # when `last` was read (None: never; the DB was away)

    @property
    def max_age_s(self) -> float:
        return 3 * self.interval_s

    async def run(self) -> None:
        host = socket.gethostname()
        while True:
            st = self.stats()
            row = {
                "shard": self.shard.index,
                "shard_count": self.shard.count,
                "host": host,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "heartbeat_at": self.now(),
                "interval_s": self.interval_s,
                "stations": self.stations,
                "polls": int(st.get("polls", 0)),
                "late_polls": int(st.get("late_polls", 0)),
                "spool_rows": int(st.get("spool_rows", 0)),
                "historian_state": str(st.get("historian_state", "current")),
            }
            try:
                await asyncio.to_thread(beat, self.engine, row)
                self.last = await asyncio.to_thread(shard_health, self.engine, self.now())
                self.last_read_at = self.now()
                dead = {r["shard"] for r in self.last if not r["alive"]}
                for i in sorted(dead - self.dead):
                    log.error(
                        "collector shard %d/%d is silent: its stations are not polled", i, self.shard.count
                    )
                for i in sorted(self.dead - dead):
                    log.warning("collector shard %d/%d reports again", i, self.shard.count)
                self.dead = dead
            except Exception as exc:  # the database is away: the spool covers data; try again next beat
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(self.interval_s)


def service_beat(
    engine: Engine, kind: str, instance: str, started_at: datetime, at: datetime, interval_s: float
) -> None:
    """One heartbeat of a service replica (`kind`: notifier), keyed by `instance` (host:pid)."""
    row = {
        "kind": kind,
        "instance": instance,
        "started_at": started_at,
        "heartbeat_at": at,
        "interval_s": interval_s,
    }
    with engine.begin() as conn:
        ins = _upsert(conn, service_heartbeat)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[service_heartbeat.c.kind, service_heartbeat.c.instance],
                set_={"heartbeat_at": ins.excluded.heartbeat_at, "interval_s": ins.excluded.interval_s},
            ),
            [row],
        )


def newest_service_beat(engine: Engine, kind: str) -> datetime | None:
    """The newest heartbeat of any replica of `kind` (None: none ever beat)."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.max(service_heartbeat.c.heartbeat_at)).where(service_heartbeat.c.kind == kind)
        ).scalar()


def heartbeat_age_limit(interval_s: float) -> timedelta:
    return timedelta(seconds=3 * interval_s)
