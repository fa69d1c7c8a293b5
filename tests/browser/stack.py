"""The whole stack for browser and stream tests, in this process and event loop: simulated demo fleet on
real Modbus TCP (loopback, free ports) → collector → alarms → SQLite → API served by uvicorn on a free
port. Time is a FakeClock the test moves: `advance()` in big steps to warm up, `live()` in small steps in
the background while a browser watches (about 10× real time)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pumpwatch.api.auth.users import create_user
from pumpwatch.api.main import create_app
from pumpwatch.app.serve import ApiServer, api_server_config
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import LONG_SESSIONS, PASSWORD, add_user
from tests.clocked import poll_step
from tests.e2e.fleets import demo_fleet_on_free_ports
from tests.services import free_port

START = datetime(2026, 8, 1, 6, 0, tzinfo=UTC)  # 15:00 JST
# users of the test stack (password tests.auth.PASSWORD): tenant A is kita, B is minami
USERS = {
    "centre": [("kita", "operator"), ("minami", "operator")],
    "op-kita": [("kita", "operator")],
    "view-kita": [("kita", "viewer")],
    "op-minami": [("minami", "operator")],
}


@dataclass
class Stack:
    sim: SimulatedFleet
    system: System
    clock: FakeClock
    app: object
    url: str
    _live: asyncio.Task | None = field(default=None, repr=False)
    password: str = PASSWORD

    async def token(self, username: str) -> str:
        async with httpx.AsyncClient(base_url=self.url) as client:
            body = {"username": username, "password": self.password}
            r = await client.post("/api/v1/auth/login", json=body)
            assert r.status_code == 200, r.text
            return r.json()["token"]

    async def client(self, username: str = "centre", **kw) -> httpx.AsyncClient:
        """An HTTP client of the running API signed in as `username` (Bearer token)."""
        t = await self.token(username)
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {t}"}, **kw)

    def polls(self) -> int:
        return sum(s.stats.answered + s.stats.missed for s in self.system.sources)

    async def step(self, seconds: float) -> None:
        """Move the clock, step the physics, wait until every unit has been polled once more."""
        await poll_step(self.clock, self.system.sources, seconds, physics=self.sim.step_now)

    async def advance(self, seconds: float, step: float = 15.0) -> None:
        moved = 0.0
        while moved < seconds - 1e-9:
            await self.step(step)
            moved += step
        await self.system.alarms.drain()

    def live(self, step: float = 2.0, every: float = 0.2) -> None:
        """Keep time running in the background (step simulated seconds every `every` real seconds)."""

        async def run() -> None:
            while True:
                await self.step(step)
                await asyncio.sleep(every)

        self._live = asyncio.create_task(run(), name="test.clock")

    async def pause(self) -> None:
        if self._live is not None:
            self._live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._live
            self._live = None


@contextlib.asynccontextmanager
async def running_stack(tmp: Path, warm_up_s: float = 20 * 60) -> AsyncIterator[Stack]:
    fleet = demo_fleet_on_free_ports()
    clock = FakeClock(START)
    async with SimulatedFleet(fleet, clock, seed=5) as sim:
        system = await System.prepare(fleet, f"sqlite:///{tmp / 'console.db'}", clock)
        await system.start_collecting()
        for name, grants in USERS.items():
            add_user(system.engine, name, grants)
        create_user(system.engine, "kita-taro", PASSWORD, [("kita", "operator")], display_name="北 太郎")
        app = create_app(system.api_context(auth=LONG_SESSIONS))
        port = free_port()
        server = ApiServer(api_server_config(app, "127.0.0.1", port, timeout_graceful_shutdown=3))
        serving = asyncio.create_task(server.serve(), name="test.uvicorn")
        stack = Stack(sim, system, clock, app, f"http://127.0.0.1:{port}")
        try:
            t0 = time.monotonic()
            while not server.started:
                if serving.done() or time.monotonic() - t0 > 15:
                    raise AssertionError(f"uvicorn did not start: {serving}")
                await asyncio.sleep(0.02)
            # Time to overflow needs 15 min of good levels before it estimates anything.
            await stack.advance(warm_up_s)
            yield stack
        finally:
            await stack.pause()
            server.should_exit = True
            try:
                await asyncio.wait_for(serving, 15)
            except TimeoutError:
                serving.cancel()
                raise AssertionError("uvicorn did not shut down with live streams open") from None
            finally:
                await system.stop()
