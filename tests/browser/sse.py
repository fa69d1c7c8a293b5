"""A small Server-Sent Events reader for tests (httpx streaming), reading for a bounded time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass
class SseEvent:
    event: str
    data: object
    id: str | None


class SseReader:
    """Parses a stream in a background task (a timed-out wait must not cancel the read itself)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.last_id: str | None = None
        self.seen: list[SseEvent] = []
        self._queue: asyncio.Queue[SseEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(), name="test.sse")

    async def _read(self) -> None:
        event, data, eid = "message", [], None
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        self._queue.put_nowait(SseEvent(event, json.loads("\n".join(data)), eid))
                    event, data, eid = "message", [], None
                elif line.startswith((":", "retry:")):
                    continue
                else:
                    key, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if key == "event":
                        event = value
                    elif key == "data":
                        data.append(value)
                    elif key == "id":
                        eid = value
        finally:
            self._queue.put_nowait(None)  # the stream ended

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def next(self, limit_s: float) -> SseEvent:
        ev = await asyncio.wait_for(self._queue.get(), limit_s)
        if ev is None:
            self._queue.put_nowait(None)
            raise EOFError("the stream ended")
        if ev.id is not None:
            self.last_id = ev.id
        self.seen.append(ev)
        return ev

    async def until(self, pred: Callable[[SseEvent], bool], limit_s: float, what: str) -> SseEvent:
        deadline = time.monotonic() + limit_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no event within {limit_s} s: {what}")
            try:
                ev = await self.next(left)
            except TimeoutError:
                continue
            if pred(ev):
                return ev

    async def collect(self, seconds: float) -> list[SseEvent]:
        """Every event that arrives within `seconds` (a stream never ends by itself)."""
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(await self.next(left))
            except TimeoutError:
                break
        return out


def tenants_in(ev: SseEvent) -> set[str]:
    """Every tenant an event mentions."""
    d = ev.data
    if ev.event == "snapshot":
        assert isinstance(d, dict)
        return (
            {s["tenant"] for s in d["stations"]}
            | {a["tenant"] for a in d["alarms"]}
            | {e["tenant"] for e in d["dispatch"]["data"]}
        )
    if ev.event == "dispatch":
        assert isinstance(d, dict)
        return {e["tenant"] for e in d["data"]}
    if ev.event in ("station", "alarm"):
        assert isinstance(d, dict)
        return {d["tenant"]}
    return set()
