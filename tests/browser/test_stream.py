"""The live stream over real HTTP (uvicorn on a loopback port) against the whole simulated stack:
snapshot, changes, heartbeat, tenant filter, resume by Last-Event-ID, slow clients dropped, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from pumpwatch.api.routes import stream as stream_route
from pumpwatch.simulators.scenarios import power_outage
from tests.auth import LONG_SESSIONS
from tests.browser.sse import SseReader, tenants_in
from tests.browser.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("stream"), warm_up_s=120) as s:
        yield s


@contextlib.asynccontextmanager
async def sse(stack: Stack, user: str = "centre", **headers: str) -> AsyncIterator[SseReader]:
    async with (
        await stack.client(user, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", "/api/v1/stream", headers=headers) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(r)
        try:
            yield reader
        finally:
            await reader.close()


async def test_snapshot_then_live_changes_and_heartbeats(stack: Stack, monkeypatch) -> None:
    monkeypatch.setattr(stream_route, "HEARTBEAT_S", 0.5)
    async with sse(stack) as s:
        snap = await s.until(lambda e: e.event != "heartbeat", 10, "the first event")
        assert snap.event == "snapshot" and snap.id
        assert len(snap.data["stations"]) == 12
        st = snap.data["stations"][0]
        assert st["levels"]["hwl_m"] > 0 and "wet_well_level_m" in st["values"]
        stack.live()
        try:
            # a level sample reaches the stream well within 2 s of being read
            sid = "KITA-MP-01"
            got = []

            def on_samples(ids: set[str]) -> None:
                if sid in ids:
                    got.append(time.monotonic())

            stack.system.live.listeners.append(on_samples)
            ev = await s.until(
                lambda e: e.event == "station" and e.data["id"] == sid and got, 10, "a station event"
            )
            lag = time.monotonic() - got[0]
            print(f"sample to stream: {lag:.3f} s")
            assert lag < 2.0, f"{lag:.2f} s from sample to stream"
            assert ev.data["status"] == "normal"
            await s.until(lambda e: e.event == "heartbeat", 5, "a heartbeat")
        finally:
            stack.system.live.listeners.remove(on_samples)
            await stack.pause()


async def test_alarm_and_dispatch_events_only_for_the_users_tenants(stack: Stack) -> None:
    try:
        async with sse(stack, "op-kita") as s:
            snap = await s.until(lambda e: e.event != "heartbeat", 10, "the snapshot")
            assert {st["tenant"] for st in snap.data["stations"]} == {"kita"}
            assert len(snap.data["stations"]) == 8
            stack.sim.schedule(power_outage(["KITA-MP-02", "MINAMI-MP-02"], at=stack.clock.now()))
            stack.live()
            pf = await s.until(
                lambda e: e.event == "alarm" and e.data["name"] == "power_failure", 20, "power failure alarm"
            )
            assert pf.data["station"] == "KITA-MP-02" and pf.data["state"] == "unacked_active"
            board = await s.until(
                lambda e: e.event == "dispatch" and e.data["count"] > 0, 20, "the station on the board"
            )
            assert [e["station"] for e in board.data["data"]] == ["KITA-MP-02"]
            assert board.data["data"][0]["rank"] == 1
            more = await s.collect(2)
            # the other tenant's outage happened too, but nothing of it ever reached this client
            assert all(tenants_in(e) <= {"kita"} for e in s.seen + more), [
                e for e in s.seen if not tenants_in(e) <= {"kita"}
            ]
            await stack.pause()
        # while Minami's operator sees Minami's alarm, and nothing of Kita
        async with sse(stack, "op-minami") as s:
            snap = await s.until(lambda e: e.event != "heartbeat", 10, "the snapshot")
            names = {(a["station"], a["name"]) for a in snap.data["alarms"]}
            assert ("MINAMI-MP-02", "power_failure") in names
            assert tenants_in(snap) == {"minami"}
    finally:
        stack.sim.set_mains(["KITA-MP-02", "MINAMI-MP-02"], ok=True)
        await stack.pause()


async def test_no_stream_without_a_session_and_it_ends_with_the_session(stack: Stack, monkeypatch) -> None:
    monkeypatch.setattr(stream_route, "HEARTBEAT_S", 0.3)
    async with httpx.AsyncClient(base_url=stack.url) as anon:
        assert (await anon.get("/api/v1/stream")).status_code == 401
        token = await stack.token("op-kita")
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=httpx.Timeout(10, read=None)) as c,
            c.stream("GET", "/api/v1/stream") as r,
        ):
            assert r.status_code == 200
            s = SseReader(r)
            try:
                await s.until(lambda e: e.event == "snapshot", 10, "the snapshot")
                assert (await c.post("/api/v1/auth/logout")).status_code == 200
                with pytest.raises(EOFError):  # the server ends it at the next heartbeat
                    await s.until(lambda e: False, 10, "the end of the stream")
            finally:
                await s.close()
        assert (await anon.get("/api/v1/stream", headers=headers)).status_code == 401


async def test_reconnect_with_last_event_id_replays_what_was_missed(stack: Stack) -> None:
    async with sse(stack) as s:
        await s.until(lambda e: e.event == "snapshot", 10, "the snapshot")
        stack.live()
        await s.until(lambda e: e.event == "station", 10, "a station event")
        last = s.last_id
    await asyncio.sleep(1.0)  # changes go on while the client is away
    async with sse(stack, **{"Last-Event-ID": last}) as s:
        first = await s.until(lambda e: e.event != "heartbeat", 10, "the first event after resuming")
        assert first.event != "snapshot", "a known recent id resumes by replay, not a snapshot"
        epoch, n = last.rsplit("-", 1)
        assert first.id == f"{epoch}-{int(n) + 1}" or int(first.id.rsplit("-", 1)[1]) > int(n)
    await stack.pause()
    async with sse(stack, **{"Last-Event-ID": "feedbeef-3"}) as s:  # another server's id
        assert (await s.until(lambda e: e.event != "heartbeat", 10, "first event")).event == "snapshot"


async def test_a_client_that_falls_behind_is_dropped_without_slowing_anyone(stack: Stack) -> None:
    hub = stack.app.state.hub
    slow = hub.subscribe(None, None)
    slow.needs_snapshot = False
    slow.limit = 5  # never read: it falls behind at once
    dropped_before = hub.dropped
    polls = stack.polls()
    try:
        await stack.advance(60, step=2)
        await asyncio.sleep(1.0)
        assert slow.dropped and not slow.queue
        assert hub.dropped > dropped_before
        assert stack.polls() >= polls + 30 * 12  # the collector kept polling every unit meanwhile
    finally:
        hub.unsubscribe(slow)
    async with sse(stack) as s:  # and the others are served as before
        assert (await s.until(lambda e: e.event != "heartbeat", 10, "first event")).event == "snapshot"


async def test_stream_is_in_the_openapi_spec_and_detail_has_assets(stack: Stack) -> None:
    async with await stack.client("op-kita") as client:
        spec = (await client.get("/openapi.json")).json()
        op = spec["paths"]["/api/v1/stream"]["get"]
        assert "text/event-stream" in op["responses"]["200"]["content"]
        d = (await client.get("/api/v1/console/stations/KITA-MP-04")).json()
        assert d["station"]["levels"]["hwl_m"] == 1.6
        p1 = d["pumps"][0]
        assert p1["install_year"] == 2016 and p1["standard_life_years"] == 15
        assert p1["age_years"] == 2026 - 2016 and p1["life_used"] == round(10 / 15, 3)
        assert p1["run_hours_h"]["value"] is not None and p1["starts"]["value"] is not None
        names = {p["name"] for p in d["points"]}
        assert {"wet_well_level_m", "tto_spill_min"} <= names
        assert (await client.get("/api/v1/console/stations/NOPE")).status_code == 404
        # another tenant's station does not exist for this user
        assert (await client.get("/api/v1/console/stations/MINAMI-MP-01")).status_code == 404
        # the console's journal asks for the newest entries (a limit must not cut off the latest)
        oldest_first = (await client.get("/api/v1/alarms/journal")).json()["data"]
        assert len(oldest_first) >= 2
        params = {"newest_first": True, "limit": 1}
        newest = (await client.get("/api/v1/alarms/journal", params=params)).json()
        assert [e["id"] for e in newest["data"]] == [oldest_first[-1]["id"]]
        r = await client.get("/")
        assert "/static/js/app.js" in r.text
        assert (await client.get("/static/i18n/ja.json")).json()["status.power_failure"] == "停電"


async def test_an_api_process_apart_from_the_collector_streams_from_the_database(stack: Stack) -> None:
    """`pumpwatch run --no-collect`: no in-process snapshot; changes come from the latest-value table and
    the alarm journal."""
    from pumpwatch.api.streamhub import StreamHub

    hub = StreamHub(stack.system.api_context(in_process_live=False, auth=LONG_SESSIONS))
    sub = hub.subscribe({"minami"}, None)
    try:
        await wait_for(lambda: bool(sub.queue), 10, "the snapshot")
        eid, kind, data = sub.queue.popleft()
        assert kind == "snapshot" and '"MINAMI-MP-01"' in data and '"KITA-MP-01"' not in data
        stack.sim.schedule(power_outage(["MINAMI-MP-04"], at=stack.clock.now()))
        stack.live()

        def got(kind: str, text: str) -> bool:
            return any(k == kind and text in d for _, k, d in sub.queue)

        await wait_for(lambda: got("station", '"MINAMI-MP-04"'), 10, "a station event from the table")
        await wait_for(lambda: got("alarm", '"power_failure"'), 15, "the alarm from the journal")
        assert not any('"tenant":"kita"' in d for _, _, d in sub.queue)
    finally:
        hub.close()
        await stack.pause()
        stack.sim.set_mains(["MINAMI-MP-04"], ok=True)


async def wait_for(pred, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.05)
