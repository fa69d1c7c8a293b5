"""HistorianWriter: batches samples and writes them in a worker thread.

Rows wait in memory until written; if the database is down they stay queued (up to `max_pending` rows,
oldest dropped first and counted) and the writer retries with backoff. A durable disk spool comes later.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine

from collector.model import Sample
from pumpwatch import historian

log = logging.getLogger(__name__)

Row = tuple[int, datetime, float | None, int]


class HistorianWriter:
    def __init__(
        self,
        engine: Engine,
        catalog: dict[tuple[str, str], int],
        *,
        flush_interval_s: float = 1.0,
        batch_rows: int = 20_000,
        max_pending: int = 2_000_000,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.flush_interval_s = flush_interval_s
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self._pending: deque[Row] = deque()
        self.written = 0
        self.dropped = 0
        self.unknown = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()

    def accept(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            pid = self.catalog.get((s.station, s.point))
            if pid is None:
                self.unknown += 1
                continue
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()  # full: the oldest goes first, and is counted
                self.dropped += 1
            self._pending.append((pid, s.observed_at, s.value, int(s.quality)))
        if len(self._pending) >= self.batch_rows:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        delay = self.flush_interval_s
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
                delay = self.flush_interval_s
                self.last_error = None
            except Exception as exc:
                if self.last_error is None:
                    log.exception("historian write failed; %d rows kept, retrying", self.pending)
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(max(delay * 2, 0.5), 30.0)

    async def flush(self) -> None:
        """Write everything pending now. A batch that fails goes back to the front of the queue."""
        while self._pending:
            n = min(len(self._pending), self.batch_rows)
            batch = [self._pending.popleft() for _ in range(n)]
            try:
                await asyncio.to_thread(historian.write_samples, self.engine, batch)
            except BaseException:
                self._pending.extendleft(reversed(batch))
                raise
            self.written += n
