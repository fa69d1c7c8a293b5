"""Rejected input, counted and kept: the counters by source and reason, and the durable dead letters.

Every source (the MQTT ingest, each Modbus poller) calls `RejectionLog.record(source, topic, reason, detail,
payload)` for each input it rejects. At once, on the event loop and in O(1): the counter of (source,
reason) goes up (`/metrics`), the rate window moves (the `dead_letter_rate` system alarm), and a dead letter
(a bounded excerpt of the payload with secrets redacted, never the payload itself) joins a bounded queue.

`run()` stores the queue once per `flush_interval_s`, in one transaction per batch: the dead letters, the
durable counts (`rejection_count`: every rejection ever, by source and reason), and the bound: each source
keeps its newest `keep_per_source` dead letters; what the bound deletes is added to `dropped`, by reason.
Ingest never waits for it: while the database is away up to `max_queue` dead letters wait in memory, and
beyond that the oldest go; those are still counted, as `count` and `dropped`, when the database answers
again. What is lost in a crash is at most the last flush interval, as for samples without a spool.

The rows carry the centre's tenant id: they are the centre's (row-level security holds the API's app role to
it, `pumpwatch.core.db.rls.CENTRE_TABLES`), since a payload may belong to any municipality.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter, deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from pumpwatch.core.backoff import Backoff
from pumpwatch.core.clock import Clock
from pumpwatch.core.db.schema import dead_letter, rejection_count

log = logging.getLogger(__name__)

EXCERPT_CHARS = 256  # of a text payload, after redaction
EXCERPT_HEX_BYTES = 96  # of a binary payload (Sparkplug protobuf)
SCAN_CHARS = 4096  # redaction looks this far, well past the excerpt, so no secret is cut in half unseen
UNCONFIGURED = "unconfigured"  # the source of input no configured controller owns (bounded label set)

_SECRET_NAME = r"(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|auth\w*|credential\w*|private[_-]?key)"
# "password": "…" (a JSON key naming a secret, its value up to the closing quote, or to the end of the scan)
_JSON_SECRET = re.compile(
    rf'(?i)("[^"\\]*{_SECRET_NAME}[^"\\]*"\s*:\s*)("(?:[^"\\]|\\.)*(?:"|$)|[^,}}\]\s]+)'
)
_KV_SECRET = re.compile(rf"(?i)(\b{_SECRET_NAME}\s*=\s*)([^&\s,;]+)")  # password=… in form or text payloads
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BINARY_SECRET = re.compile(rb"(?i)pass(?:word|wd)|secret|token|api[_-]?key|credential|private[_-]?key")


def excerpt(payload: bytes) -> str:
    """What a dead letter keeps of a payload: text up to EXCERPT_CHARS with the values of secret-named keys
    replaced by `***`; binary as hex of its first EXCERPT_HEX_BYTES, cut before any secret-like name."""
    head = payload[: SCAN_CHARS * 4]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(payload) > len(head):  # cut inside a character: still text
            text = head[: exc.start].decode("utf-8")
        else:
            return _binary_excerpt(payload)
    text = text[:SCAN_CHARS]
    if _CONTROL.search(text):  # protobuf and other binary that happens to be valid UTF-8
        return _binary_excerpt(payload)
    cut = len(payload) > len(text.encode())
    text = _JSON_SECRET.sub(lambda m: m.group(1) + '"***"', text)
    text = _KV_SECRET.sub(lambda m: m.group(1) + "***", text)
    if cut or len(text) > EXCERPT_CHARS:
        return text[:EXCERPT_CHARS] + "…"
    return text


def _binary_excerpt(payload: bytes) -> str:
    window = payload[: EXCERPT_HEX_BYTES + 64]
    m = _BINARY_SECRET.search(window)
    shown = payload[: min(EXCERPT_HEX_BYTES, m.start())] if m else payload[:EXCERPT_HEX_BYTES]
    out = f"hex:{shown.hex()}"
    if m and m.start() < EXCERPT_HEX_BYTES:
        return out + f" (cut at byte {m.start()}: a secret-like name follows)"
    return out + ("…" if len(payload) > len(shown) else "")


@dataclass(frozen=True, slots=True)
class Rejection:
    at: datetime
    source: str
    topic: str
    reason: str
    detail: str
    excerpt: str
    size: int


class RejectionLog:
    def __init__(
        self,
        engine: Engine | None,
        clock: Clock,
        *,
        tenant_id: str | None,
        keep_per_source: int = 1000,
        max_queue: int = 10_000,
        flush_interval_s: float = 1.0,
        window_s: float = 60.0,
        recent: int = 100,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.tenant_id = tenant_id
        self.keep_per_source = keep_per_source
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self.window_s = window_s
        self.counts: Counter[tuple[str, str]] = Counter()  # this process's sources (seeded from the DB)
        self.recent: deque[Rejection] = deque(maxlen=recent)  # the newest, also while the DB is away
        self._queue: deque[Rejection] = deque()
        self._lost: Counter[tuple[str, str]] = Counter()  # dropped from the queue, not yet in the counts
        self._buckets: deque[list[float]] = deque()  # [second, count] within the rate window
        self.written = 0
        self.pruned = 0  # dead letters the bound deleted
        self.lost = 0  # dead letters dropped from memory before they could be stored
        self.write_errors = 0
        self.last_error: str | None = None
        self._backoff = Backoff(1.0, 30.0)  # the database away: 1 s, 2 s … 30 s more per flush

    # -- on the event loop, from the sources ---------------------------------------------------------------
    def record(self, source: str, topic: str, reason: str, detail: str, payload: bytes) -> None:
        r = Rejection(
            self.clock.now(), source, topic[:512], reason, detail[:1000], excerpt(payload), len(payload)
        )
        self.counts[(source, reason)] += 1
        self.recent.append(r)
        now = self.clock.monotonic()
        sec = float(int(now))
        if self._buckets and self._buckets[-1][0] == sec:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([sec, 1])
        self._trim(now)
        self._queue.append(r)
        if len(self._queue) > self.max_queue:  # the database is away for long: the oldest go, counted
            old = self._queue.popleft()
            self._lost[(old.source, old.reason)] += 1
            self.lost += 1

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.window_s:
            self._buckets.popleft()

    def rate_per_min(self) -> float:
        """Rejections within the last window, per minute."""
        self._trim(self.clock.monotonic())
        return sum(c for _, c in self._buckets) * 60.0 / self.window_s

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- storage ---------------------------------------------------------------------------------------------
    async def restore(self, sources: Collection[str]) -> None:
        """Start this process's counters where the durable counts stand, for the sources it owns (one process
        owns each controller, so Prometheus sees one monotonic counter across restarts)."""
        if self.engine is None or not sources:
            return
        rows = await asyncio.to_thread(read_counts, self.engine, sources=sources)
        for r in rows:
            self.counts[(r["source"], r["reason"])] += int(r["count"])

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.flush_interval_s + self._backoff.current_s)
            try:
                await self.flush()
                self._backoff.reset()
            except Exception as exc:  # the database is away: the queue waits (bounded); retry with backoff
                self.write_errors += 1
                if self.last_error is None:
                    log.error(
                        "cannot store dead letters (%s: %s); %d wait in memory (at most %d, then the oldest "
                        "go, counted)",
                        type(exc).__name__,
                        exc,
                        len(self._queue),
                        self.max_queue,
                    )
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._backoff.failed()

    async def flush(self) -> None:
        """Store what is queued (and the counts of what was lost). Raises if the database fails; the batch
        then goes back to the front of the queue."""
        if self.engine is None or (not self._queue and not self._lost):
            return
        n = min(len(self._queue), 5000)
        batch = [self._queue.popleft() for _ in range(n)]
        lost = Counter(self._lost)
        try:
            pruned = await asyncio.to_thread(
                write_batch, self.engine, self.tenant_id, batch, lost, self.keep_per_source, self.clock.now()
            )
        except BaseException:
            self._queue.extendleft(reversed(batch))
            while len(self._queue) > self.max_queue:
                old = self._queue.popleft()
                self._lost[(old.source, old.reason)] += 1
                self.lost += 1
            raise
        self._lost -= lost
        self.written += n
        self.pruned += pruned
        if self.last_error is not None:
            log.warning("dead letters stored again")
            self.last_error = None

    def status(self) -> dict[str, Any]:
        """This process's side (no source names: /readyz shows it to anyone)."""
        return {
            "queued": len(self._queue),
            "written": self.written,
            "pruned_by_bound": self.pruned,
            "lost_before_storage": self.lost,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
            "per_min": round(self.rate_per_min(), 2),
            "keep_per_source": self.keep_per_source,
        }


def _upsert(conn: Any, table: Any) -> Any:
    return (pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect).insert(table)


def write_batch(
    engine: Engine,
    tenant_id: str | None,
    batch: list[Rejection],
    lost: Counter[tuple[str, str]],
    keep: int,
    now: datetime,
) -> int:
    """One transaction: insert the dead letters, add to the counts, trim each source of the batch to its
    newest `keep`. Returns how many the bound deleted."""
    agg: dict[tuple[str, str], dict[str, Any]] = {}
    for r in batch:
        a = agg.setdefault(
            (r.source, r.reason), {"count": 0, "dropped": 0, "first_at": r.at, "last_at": r.at}
        )
        a["count"] += 1
        a["first_at"], a["last_at"] = min(a["first_at"], r.at), max(a["last_at"], r.at)
    for key, n in lost.items():
        a = agg.setdefault(key, {"count": 0, "dropped": 0, "first_at": now, "last_at": now})
        a["count"] += n
        a["dropped"] += n
    pruned = 0
    with engine.begin() as conn:
        if batch:
            conn.execute(
                insert(dead_letter),
                [
                    {
                        "tenant_id": tenant_id,
                        "source": r.source,
                        "topic": r.topic,
                        "reason": r.reason,
                        "detail": r.detail,
                        "payload_excerpt": r.excerpt,
                        "payload_bytes": r.size,
                        "at": r.at,
                    }
                    for r in batch
                ],
            )
        for s in sorted({r.source for r in batch}):
            old = (
                conn.execute(
                    select(dead_letter.c.id)
                    .where(dead_letter.c.source == s)
                    .order_by(dead_letter.c.id.desc())
                    .offset(keep)
                )
                .scalars()
                .all()
            )
            for i in range(0, len(old), 5000):
                gone = (
                    conn.execute(
                        delete(dead_letter)
                        .where(dead_letter.c.id.in_(old[i : i + 5000]))
                        .returning(dead_letter.c.reason)
                    )
                    .scalars()
                    .all()
                )
                pruned += len(gone)
                for reason, n in Counter(gone).items():
                    a = agg.setdefault(
                        (s, reason), {"count": 0, "dropped": 0, "first_at": now, "last_at": now}
                    )
                    a["dropped"] += n
        if agg:
            ins = _upsert(conn, rejection_count)
            t = rejection_count.c
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[t.source, t.reason],
                    set_={
                        "count": t.count + ins.excluded.count,
                        "dropped": t.dropped + ins.excluded.dropped,
                        "last_at": ins.excluded.last_at,
                        "tenant_id": ins.excluded.tenant_id,
                    },
                ),
                [
                    {"source": s, "reason": r, "tenant_id": tenant_id, **a}
                    for (s, r), a in sorted(agg.items())
                ],
            )
    return pruned


def read_counts(
    engine: Engine, *, tenant_id: str | None = None, sources: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The durable counts by source and reason (of the centre `tenant_id`, if given)."""
    stmt = select(rejection_count).order_by(rejection_count.c.source, rejection_count.c.reason)
    if tenant_id is not None:
        stmt = stmt.where(rejection_count.c.tenant_id == tenant_id)
    if sources is not None:
        stmt = stmt.where(rejection_count.c.source.in_(list(sources)))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def read_dead_letters(
    engine: Engine,
    *,
    tenant_id: str | None = None,
    source: str | None = None,
    reason: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Dead letters, newest first; page on with `before_id` (the smallest id of the previous page)."""
    stmt = select(dead_letter).order_by(dead_letter.c.id.desc()).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(dead_letter.c.tenant_id == tenant_id)
    if source is not None:
        stmt = stmt.where(dead_letter.c.source == source)
    if reason is not None:
        stmt = stmt.where(dead_letter.c.reason == reason)
    if before_id is not None:
        stmt = stmt.where(dead_letter.c.id < before_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
