"""run_sources runs until cancelled, even with nothing to run (a standby collector before any takeover:
its sources task ending would make /readyz report it not ready)."""

from __future__ import annotations

import asyncio

from pumpwatch.collector.supervisor import run_sources


async def test_no_sources_waits_until_cancelled() -> None:
    task = asyncio.create_task(run_sources([]))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
