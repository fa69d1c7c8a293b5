"""Run sources as named tasks; a source that crashes on a bug is logged and restarted, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from pumpwatch.core.tasks import restarting


class Runnable(Protocol):
    name: str

    async def run(self) -> None: ...


async def run_guarded(source: Runnable, restart_max_s: float) -> None:
    """One source, restarted after a crash (pumpwatch.core.tasks.restarting: the one supervision rule)."""
    await restarting(source.name, source.run, restart_max_s)


async def run_sources(sources: Sequence[Runnable], *, restart_max_s: float = 30.0) -> None:
    """Run until cancelled. Each source has its own task, named after it (`collector.modbus[gw-1]`). With no
    sources (a standby collector, whose links come with their leases) it just waits."""
    if not sources:
        await asyncio.Event().wait()
    async with asyncio.TaskGroup() as tg:
        for s in sources:
            tg.create_task(run_guarded(s, restart_max_s), name=s.name)
