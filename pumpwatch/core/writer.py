"""HistorianWriter: batches samples and writes them in a worker thread; spools to disk when the database
is unreachable.

Normal path: rows wait in memory for one flush interval (≈1 s) and go to the database in one COPY batch.
When a write fails the writer turns `delayed`: every flush interval the rows in memory are appended to the
disk spool (`pumpwatch.core.spool.Spool`, fsync'd), and the database is retried with a backoff
(≤ `retry_max_s`).
Once it answers, the spool is drained oldest first; while anything is still spooled, new rows go to the
spool's tail too, so the database receives every row in the order it was read. Without a spool (tests,
`spool=None`) rows wait in memory, bounded by `max_pending` (oldest dropped first and counted).
"""

from __future__ import annotations

import array
import asyncio
import logging
import math
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from pumpwatch.core import historian
from pumpwatch.core.backoff import Backoff
from pumpwatch.core.clock import Clock
from pumpwatch.core.historian_scale import Rollups
from pumpwatch.core.leases import Fence
from pumpwatch.core.sample import Sample
from pumpwatch.core.spool import Forwarder, Spool

log = logging.getLogger(__name__)

Row = tuple[int, datetime, float | None, int]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_N = struct.Struct("<I")
SPOOL_ALARM_PCT = 80.0


def encode_rows(rows: Sequence[Row]) -> bytes:
    """A batch of rows as compressed columns: ids int32, times int64 µs, values float64, null mask, quality.
    Columns compress well (one poll shares its timestamp; ids run in order): ~6-8 bytes a row."""
    pids = array.array("i", [r[0] for r in rows])
    times = array.array("q", [(r[1] - _EPOCH) // _US for r in rows])
    values = array.array("d", [math.nan if r[2] is None else r[2] for r in rows])
    nulls = bytes(1 if r[2] is None else 0 for r in rows)
    quality = array.array("b", [r[3] for r in rows])
    raw = b"".join((_N.pack(len(rows)), pids.tobytes(), times.tobytes(), values.tobytes(), nulls, quality))
    return zlib.compress(raw, 1)


_TAGGED = b"G"  # a batch with a lease generation per row (never the first byte of a zlib stream, 0x78)


def encode_tagged_rows(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """Rows `(point_id, observed_at, value, quality, generation)`: the columns of `encode_rows` and the
    generations (int64), marked so `decode_rows` tells them apart from untagged batches."""
    gens = array.array("q", [r[4] for r in rows])
    return _TAGGED + zlib.compress(zlib.decompress(encode_rows(rows)) + gens.tobytes(), 1)


def decode_rows(data: bytes) -> list[Row]:
    """A spooled batch back as rows; a tagged batch (`encode_tagged_rows`) gives 5-tuples."""
    if data[:1] == _TAGGED:
        raw = zlib.decompress(data[1:])
        (n,) = _N.unpack_from(raw)
        gens = array.array("q")
        gens.frombytes(raw[len(raw) - 8 * n :])
        rows = _decode_raw(raw[: len(raw) - 8 * n])
        return [(*r, gens[i]) for i, r in enumerate(rows)]  # type: ignore[misc]
    return _decode_raw(zlib.decompress(data))


def _decode_raw(raw: bytes) -> list[Row]:
    (n,) = _N.unpack_from(raw)
    off = _N.size
    pids = array.array("i")
    pids.frombytes(raw[off : off + 4 * n])
    off += 4 * n
    times = array.array("q")
    times.frombytes(raw[off : off + 8 * n])
    off += 8 * n
    values = array.array("d")
    values.frombytes(raw[off : off + 8 * n])
    off += 8 * n
    nulls = raw[off : off + n]
    off += n
    quality = array.array("b")
    quality.frombytes(raw[off : off + n])
    return [
        (pids[i], _EPOCH + timedelta(microseconds=times[i]), None if nulls[i] else values[i], quality[i])
        for i in range(n)
    ]


class HistorianWriter:
    def __init__(
        self,
        engine: Engine,
        catalog: dict[tuple[str, str], int],
        *,
        flush_interval_s: float = 1.0,
        batch_rows: int = 20_000,
        max_pending: int = 2_000_000,
        spool: Spool | None = None,
        retry_max_s: float = 10.0,
        write: Callable[[Engine, Sequence[Row]], object] = historian.write_samples,
        rollups: Rollups | None = None,
        rollup_interval_s: float = 30.0,
        clock: Clock | None = None,
        fence: Fence | None = None,
    ) -> None:
        # With a fence (a collector on leased links), every row carries the generation of its link's lease
        # and is stored only if that lease covered its time (pumpwatch.core.leases).
        self.fence = fence
        self.fenced = 0  # rows refused by the fence
        if fence is not None:
            self._station_of = {pid: sid for (sid, _), pid in catalog.items()}
        # how long rows have waited (the `historian_lagging` system alarm), on the injected clock
        self._mono = clock.monotonic if clock is not None else time.monotonic
        self._waiting_since: float | None = None  # rows have waited since then, without a break
        self.rollups = rollups
        self.rollup_interval_s = rollup_interval_s
        self._next_rollup = time.monotonic() + rollup_interval_s
        self.engine = engine
        self.catalog = catalog
        self.flush_interval_s = flush_interval_s
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self.spool = spool
        # rows the database cannot take now wait in the spool, oldest delivered first (core/spool.py)
        self._forward: Forwarder[list[Row]] | None = (
            Forwarder(spool, self._encode_batch, decode_rows, self._store_rows) if spool is not None else None
        )
        self._backoff = Backoff(0.5, retry_max_s)  # 0.5 s, 1 s, 2 s … up to retry_max_s
        self._write = write
        self._pending: deque[Row] = deque()
        self.written = 0
        self.dropped = 0  # dropped from memory (no spool, or the spool refused them)
        self.unknown = 0
        self.spooled = 0  # rows that went through the spool
        self.last_error: str | None = None
        self.last_ok_monotonic: float | None = None
        self.down_since: float | None = None  # monotonic time of the first failed write of this outage
        self._retry_at = 0.0
        self.spool_fill_high = False
        self._wake = asyncio.Event()

    def accept(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            pid = self.catalog.get((s.station, s.point))
            if pid is None:
                self.unknown += 1
                continue
            gen = 0 if self.fence is None else self.fence.tag(s.station)
            if gen < 0:  # read on a link this collector no longer holds: never stored
                self.fenced += 1
                continue
            if len(self._pending) >= self.max_pending:  # (after the fence: a refused row evicts nothing)
                self._pending.popleft()  # full: the oldest goes first, and is counted
                self.dropped += 1
            if self.fence is None:
                self._pending.append((pid, s.observed_at, s.value, int(s.quality)))
                continue
            self._pending.append((pid, s.observed_at, s.value, int(s.quality), gen))  # type: ignore[arg-type]
        if self._pending and self._waiting_since is None:
            self._waiting_since = self._mono()
        if len(self._pending) >= self.batch_rows:
            self._wake.set()

    @property
    def retry_max_s(self) -> float:
        """The longest wait between two tries of the database while it is away."""
        return self._backoff.cap_s

    @retry_max_s.setter
    def retry_max_s(self, value: float) -> None:
        self._backoff.cap_s = value

    @property
    def pending(self) -> int:
        return len(self._pending)

    def queue_age_s(self) -> float:
        """Seconds rows have been waiting for the database without a break (0: nothing waits): since the
        first row that is still in memory or in the spool arrived."""
        if self._waiting_since is None:
            return 0.0
        return max(0.0, self._mono() - self._waiting_since)

    @property
    def delayed(self) -> bool:
        """Rows are waiting for the database: a write failed, or the spool still holds rows."""
        return self.down_since is not None or (self.spool is not None and not self.spool.empty)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.step()
            except Exception:  # never let the writer die: the next step retries
                log.exception("historian writer step failed")

    async def step(self) -> None:
        """One flush interval's work: write, or spool while the database is away and retry when due."""
        if self.down_since is not None and time.monotonic() < self._retry_at:
            await self._spool_pending()
            return
        try:
            await self.flush()
        except Exception as exc:
            self._failed(exc)
            await self._spool_pending()
            return
        if self.rollups is not None and time.monotonic() >= self._next_rollup:
            self._next_rollup = time.monotonic() + self.rollup_interval_s
            try:
                await asyncio.to_thread(self.rollups.run, self.engine)
            except Exception:
                log.exception("rollup job failed; the minutes stay due")

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            log.error(
                "historian write failed (%s: %s); rows go to the %s and the database is retried",
                type(exc).__name__,
                exc,
                "disk spool" if self.spool is not None else "memory queue",
            )
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._retry_at = now + self._backoff.failed()

    def _ok(self) -> None:
        if self.down_since is not None:
            log.warning(
                "historian writes again after %.1f s; spool drained", time.monotonic() - self.down_since
            )
        self.down_since = None
        self.last_error = None
        self._backoff.reset()
        self.last_ok_monotonic = time.monotonic()

    def _encode_batch(self, rows: list[Row]) -> tuple[bytes, int]:
        """A spooled batch: with the lease generation of each row when fenced (`encode_tagged_rows`)."""
        return (encode_tagged_rows(rows) if self.fence is not None else encode_rows(rows)), len(rows)

    async def _spool_pending(self) -> None:
        if self._forward is None:
            return
        while self._pending:
            n = min(len(self._pending), self.batch_rows)
            batch = [self._pending.popleft() for _ in range(n)]
            if await self._forward.park(batch):
                self.spooled += n  # (a refused batch is counted by the spool itself)
        self._check_fill()

    def _check_fill(self) -> None:
        """Spool at 80 % or more: an alarm-level log once, and `spool_fill_high` in status and /readyz,
        until it is back under 70 % (hysteresis, so it does not flap)."""
        if self.spool is None:
            return
        fill = self.spool.status().fill_pct
        if not self.spool_fill_high and fill >= SPOOL_ALARM_PCT:
            self.spool_fill_high = True
            log.critical(
                "ALARM historian spool %.0f %% full (%s): the oldest rows will be dropped when it is full",
                fill,
                self.spool.folder,
            )
        elif self.spool_fill_high and fill < SPOOL_ALARM_PCT - 10:
            self.spool_fill_high = False
            log.warning("historian spool back under %d %% (%.0f %%)", SPOOL_ALARM_PCT - 10, fill)

    async def flush(self) -> None:
        """Write everything spooled, then everything in memory, in that order. Raises if the database
        fails; with a spool the rows in memory are then spooled (nothing is lost), without one a failed
        batch goes back to the front of the queue."""
        if self.spool is not None:
            try:
                await self._drain_spool()
            except BaseException:
                await self._spool_pending()
                raise
        while self._pending:
            n = min(len(self._pending), self.batch_rows)
            batch = [self._pending.popleft() for _ in range(n)]
            try:
                await asyncio.to_thread(self._store_rows, batch)
            except BaseException:
                self._pending.extendleft(reversed(batch))
                if self.spool is not None:
                    await self._spool_pending()
                raise
            self.written += n
            if self.rollups is not None:
                self.rollups.note(batch)
        self._ok()
        if not self._pending and (self.spool is None or self.spool.empty):
            self._waiting_since = None  # everything that arrived is stored

    async def _drain_spool(self) -> None:
        forward = self._forward
        assert forward is not None
        while True:
            if self._pending and not forward.empty:  # keep order: new rows queue behind the spooled ones
                await self._spool_pending()
            rows = await forward.forward_one()
            if rows is None:
                return
            self.written += len(rows)
            self._check_fill()
            if self.rollups is not None:
                self.rollups.note(rows)

    def _store_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write a batch (in a worker thread). Tagged rows (5-tuples) pass the fence first: those read under
        a lease generation that did not cover their time are dropped and counted (`fenced_rows`)."""
        if not rows or len(rows[0]) == 4:
            self._write(self.engine, rows)
            return
        if self.fence is None:  # tagged rows spooled by a fenced run, replayed by an unfenced one
            self._write(self.engine, [r[:4] for r in rows])
            return
        sid = self._station_of
        with self.engine.connect() as conn:
            ok = self.fence.keep(conn, [(sid.get(r[0], ""), r[4], r[1]) for r in rows])
        kept = [r[:4] for r, k in zip(rows, ok, strict=True) if k]
        if len(kept) < len(rows):
            self.fenced += len(rows) - len(kept)
            log.error("%d rows not stored: read on a link whose lease had passed on", len(rows) - len(kept))
        self._write(self.engine, kept)

    def status(self) -> dict[str, Any]:
        sp = self.spool.status() if self.spool is not None else None
        return {
            "state": "delayed" if self.delayed else "current",
            "fenced_rows": self.fenced,
            "spool_fill_high": self.spool_fill_high,
            "pending_rows": self.pending,
            "written_rows": self.written,
            "dropped_rows": self.dropped + (sp.dropped_rows if sp else 0),
            "last_error": self.last_error,
            "queue_age_s": round(self.queue_age_s(), 1),
            "down_for_s": None if self.down_since is None else round(time.monotonic() - self.down_since, 1),
            "spool": None
            if sp is None
            else {
                "rows": sp.pending_rows,
                "records": sp.pending_records,
                "bytes": sp.bytes,
                "capacity_bytes": sp.capacity_bytes,
                "fill_pct": round(sp.fill_pct, 2),
                "dropped_rows": sp.dropped_rows,
                "write_errors": sp.write_errors,
            },
        }
