"""Every rejected input is visible and kept (issue 12, part 5): each reason, sent through a real Mosquitto
broker to a configured fleet, shows in /metrics, in the system status and in the dead-letter API, with a
bounded excerpt and no secret, and survives a restart (a new System over the same database). The bound
keeps the newest N per source and counts exactly what it dropped; dead letters lost while the database is
away are still counted. Modbus answers that do not fit (from a raw-socket server, not pymodbus) are counted
by controller and reason. Only the centre's operators read the payloads; row-level security holds the API's
role to that."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from pumpwatch.collector.registers import build_read_plan
from pumpwatch.collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.core import rejections
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.db import rls
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.db.schema import dead_letter
from pumpwatch.core.rejections import RejectionLog
from tests.conftest import REPO
from tests.e2e.fleets import wait_until
from tests.fakes import RawModbusServer
from tests.mqtt_broker import MosquittoBroker, Subscriber
from tests.system.centre import METRICS_TOKEN, START, centre_stack
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

CONFIG = REPO / "deploy" / "config"
STATION = """\
{id: ID, tenant: kita, name: ID, kind: manhole_pump, wet_well: {diameter_m: 1.5},
 levels: {lwl_m: 0.35, stop_m: 0.5, start_m: 1.0, lag_m: 1.2, hwl_m: 1.4, inlet_invert_m: 1.5, spill_m: 3.0,
          ground_m: 4.5},
 pumps: [{name: pump1, rated_flow_m3_min: 0.5, rated_current_a: 10}]}"""


def mqtt_fleet(tmp: Path, broker: MosquittoBroker) -> Path:
    """A fleet as a user writes it: one MQTT JSON telemetry unit and one Sparkplug B edge node of Kita."""
    d = tmp / "fleet"
    d.mkdir()
    (d / "tenants.yaml").write_text(
        "tenants:\n  - {id: kita, name: Kita}\n  - {id: centre, name: Centre, centre: true}\n"
    )
    (d / "stations.yaml").write_text(
        "stations:\n" + "".join(f"  - {STATION.replace('ID', s)}\n" for s in ("MQ-1", "SP-1"))
    )
    (d / "controllers.yaml").write_text(
        "controllers:\n"
        "  - {id: lte-1, protocol: mqtt_json, stations: [{station: MQ-1, map: mps-metrics}]}\n"
        "  - {id: edge-1, protocol: sparkplug_b, group_id: g1, edge_node_id: e1,\n"
        "     stations: [{station: SP-1, map: mps-metrics, device_id: d1}]}\n"
    )
    (d / "fleet.yaml").write_text(
        f"name: rejections\ntenants: tenants.yaml\nstations: stations.yaml\ncontrollers: controllers.yaml\n"
        f"register_maps: {CONFIG / 'maps'}\nmetric_maps: {CONFIG / 'metrics'}\n"
        f"alarm_rules: {CONFIG / 'rules' / 'alarms.yaml'}\n"
        f"mqtt: {{host: {broker.host}, port: {broker.port}, client_id: pw-rejections, reconnect_max_s: 1}}\n"
    )
    return d


SECRET = "hunter2-do-not-keep"
BAD = [  # (topic, payload, reason)
    ("scada/v1/MQ-1/supply_voltage_v", b'{"v": NaN}', "not finite"),
    ("scada/v1/MQ-1/supply_voltage_v", b"", "empty"),
    ("scada/v1/MQ-1/pump1_faulted", b'{"v": 1}', "wrong type"),
    ("scada/v1/MQ-1/ghost_m", b'{"v": 1}', "unknown point"),
    ("scada/v1/MQ-1", b"{" + b" " * 300_000 + b"}", "too large"),
    ("scada/v1/MQ-1/supply_voltage_v", b'{"v": 1.0, "ts": "2026-07-01T09:00:00"}', "bad timestamp"),
    ("scada/v1/MQ-1", b"{oops", "malformed JSON"),
    ("spBv1.0/g1/NBIRTH/e1", b"\x08\xff\xff garbage \x00", "malformed Sparkplug payload"),
]
WITH_SECRET = (
    "scada/v1/MQ-1",
    f'{{"values": {{"password": "{SECRET}", "supply_voltage_v": 201.5}}}}'.encode(),
)


async def test_each_reason_is_counted_kept_and_survives_a_restart(
    mqtt_broker: MosquittoBroker, tmp_path: Path, sqlite_url: str
) -> None:
    fleet_dir = mqtt_fleet(tmp_path, mqtt_broker)
    want = {(("edge-1" if t.startswith("spB") else "lte-1"), reason) for t, _, reason in BAD}
    async with centre_stack(tmp_path, sqlite_url, fleet_dir=fleet_dir, stations=None) as c:
        s = c.system
        assert s.mqtt is not None and s.rejections is not None
        await asyncio.wait_for(s.mqtt.connected.wait(), 10)
        async with Subscriber(mqtt_broker) as pub:
            for topic, payload, _ in BAD:
                await pub.publish(topic, payload)
            await pub.publish(*WITH_SECRET)
            await pub.publish("scada/v1/MQ-1/supply_voltage_v", b'{"v": 202.5}')  # and a good one
            await wait_until(
                lambda: (
                    sum(s.mqtt.rejected.values()) >= len(BAD) + 1
                    and "supply_voltage_v" in s.live.station("MQ-1")
                ),
                10,
                "every message received",
            )
        await s.rejections.flush()
        assert s.live.station("MQ-1")["supply_voltage_v"].value == 202.5  # the good ones are stored
        # /metrics: by source and reason
        metrics = (await c.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})).text
        for source, reason in want - {("lte-1", "unknown point")}:
            assert f'pumpwatch_rejected_messages_total{{reason="{reason}",source="{source}"}} 1.0' in metrics
        assert 'pumpwatch_rejected_messages_total{reason="unknown point",source="lte-1"} 2.0' in metrics
        await check_api(c, want)

    # A new process over the same database: the dead letters and counts are still there, and this
    # process's counters go on from them.
    async with centre_stack(tmp_path, sqlite_url, fleet_dir=fleet_dir, stations=None) as c:
        await check_api(c, want)
        metrics = (await c.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})).text
        assert 'pumpwatch_rejected_messages_total{reason="unknown point",source="lte-1"} 2.0' in metrics
        assert (
            'pumpwatch_rejected_messages_total{reason="malformed Sparkplug payload",source="edge-1"} 1.0'
            in (metrics)
        )


async def check_api(c, want: set[tuple[str, str]]) -> None:
    st = (await c.client.get("/api/v1/system/status", headers=c.h())).json()
    by = st["rejections"]["by_source"]
    got = {(src, reason) for src, reasons in by.items() for reason in reasons}
    assert got == want
    assert by["lte-1"]["unknown point"]["count"] == 2 and by["lte-1"]["not finite"]["count"] == 1
    assert st["rejections"]["total"] == len(BAD) + 1 and st["rejections"]["dropped"] == 0
    d = (await c.client.get("/api/v1/system/dead-letters", headers=c.h())).json()
    assert d["count"] == len(BAD) + 1
    assert {(x["source"], x["reason"]) for x in d["data"]} == want
    assert all(x["at"].startswith(START.date().isoformat()) for x in d["data"])  # the receipt time
    by_reason = {x["reason"]: x for x in d["data"] if x["source"] == "lte-1"}
    assert by_reason["empty"]["payload_excerpt"] == "" and by_reason["empty"]["payload_bytes"] == 0
    assert by_reason["not finite"]["topic"] == "scada/v1/MQ-1/supply_voltage_v"
    assert "NaN" in by_reason["not finite"]["payload_excerpt"]
    big = by_reason["too large"]
    assert big["payload_bytes"] == 300_002 and len(big["payload_excerpt"]) <= 257  # bounded
    secret = next(x for x in d["data"] if "password" in x["payload_excerpt"])
    assert SECRET not in str(d) and '"password": "***"' in secret["payload_excerpt"]
    assert secret["detail"] == "station MQ-1 has no point 'password'"
    spb = next(x for x in d["data"] if x["source"] == "edge-1")
    assert spb["payload_excerpt"].startswith("hex:08ffff")  # binary: hex
    only = await c.client.get("/api/v1/system/dead-letters", params={"reason": "wrong type"}, headers=c.h())
    assert [x["topic"] for x in only.json()["data"]] == ["scada/v1/MQ-1/pump1_faulted"]


async def test_the_bound_keeps_the_newest_per_source_and_counts_the_rest(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    clock = FakeClock(START)
    log = RejectionLog(engine, clock, tenant_id="centre", keep_per_source=5)
    try:
        for i in range(8):  # source A: 8 rejections of two reasons; B: 3
            log.record("A", f"t/{i}", "wrong type" if i % 2 else "not finite", f"#{i}", b"{}")
            clock.advance(1)
        for i in range(3):
            log.record("B", f"b/{i}", "empty", f"#{i}", b"")
        await log.flush()

        def kept(source: str) -> list[str]:
            with engine.connect() as conn:
                q = (
                    select(dead_letter.c.detail)
                    .where(dead_letter.c.source == source)
                    .order_by(dead_letter.c.id)
                )
                return list(conn.execute(q).scalars())

        def counts() -> dict[tuple[str, str], tuple[int, int]]:
            return {
                (r["source"], r["reason"]): (r["count"], r["dropped"]) for r in rejections.read_counts(engine)
            }

        assert kept("A") == ["#3", "#4", "#5", "#6", "#7"] and kept("B") == ["#0", "#1", "#2"]
        # dropped #0 #2 (not finite) and #1 (wrong type): counted by reason, exactly
        assert counts() == {("A", "not finite"): (4, 2), ("A", "wrong type"): (4, 1), ("B", "empty"): (3, 0)}
        assert log.pruned == 3
        for i in range(8, 12):
            log.record("A", f"t/{i}", "not finite", f"#{i}", b"{}")
        await log.flush()
        assert kept("A") == ["#7", "#8", "#9", "#10", "#11"]
        assert counts()[("A", "not finite")] == (8, 4) and counts()[("A", "wrong type")] == (4, 3)
        assert log.counts[("A", "not finite")] == 8  # what /metrics shows
    finally:
        engine.dispose()


@pytest.mark.postgres
async def test_dead_letters_lost_while_the_database_is_away_are_still_counted(pg_url: str) -> None:
    owner = make_engine(pg_url)
    upgrade(owner)
    url = make_url(pg_url)
    clock = FakeClock(START)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        via = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        log = RejectionLog(via, clock, tenant_id="centre", max_queue=3)
        try:
            proxy.cut()
            for i in range(5):
                log.record("lte-1", "scada/v1/MQ-1", "malformed JSON", f"#{i}", b"{oops")  # never waits
            assert log.queued == 3 and log.lost == 2
            with pytest.raises(Exception):  # noqa: B017  (whatever the driver says about a cut link)
                await log.flush()
            assert log.queued == 3  # nothing lost by the failed attempt
            proxy.restore()
            await log.flush()
            rows = await asyncio.to_thread(rejections.read_counts, owner)
            assert [(r["count"], r["dropped"]) for r in rows] == [(5, 2)]
            letters = await asyncio.to_thread(rejections.read_dead_letters, owner)
            assert [x["detail"] for x in letters] == ["#4", "#3", "#2"]  # the newest kept
        finally:
            via.dispose()
            owner.dispose()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("exception", "exception response"), ("garbage", "malformed frame"), ("short", "wrong length")],
)
async def test_modbus_answers_that_do_not_fit_are_counted_and_kept(
    sqlite_url: str, mode: str, reason: str
) -> None:
    from tests.collector.test_modbus_source import MAP, Recorder, controller, fill

    engine = make_engine(sqlite_url)
    upgrade(engine)
    log = RejectionLog(engine, FakeClock(START), tenant_id="centre")
    plan = build_read_plan(MAP)
    try:
        async with RawModbusServer() as srv:
            fill(srv, 1)
            srv.unit(1).mode = mode
            ctrl = controller(srv.port, [1])
            src = ModbusSource(
                ctrl, [UnitPlan(1, "S1", plan)], FakeClock(START), Recorder(), reject=log.record
            )
            for _ in range(2):
                await src.poll_once()
            src._close()
        assert log.counts == {(ctrl.id, reason): 2 * len(plan.blocks)}
        await log.flush()
        letters = rejections.read_dead_letters(engine)
        assert len(letters) == 2 * len(plan.blocks)
        assert {x["reason"] for x in letters} == {reason} and all(x["source"] == ctrl.id for x in letters)
        assert any(x["topic"].startswith("unit 1 (S1) ") for x in letters)
        if mode == "exception":
            assert all(
                x["detail"] == "exception response 2" and x["payload_excerpt"].startswith("hex:")
                for x in letters
            )
    finally:
        engine.dispose()


async def test_only_the_centres_operators_read_dead_letters(sqlite_url: str, tmp_path: Path) -> None:
    async with centre_stack(tmp_path, sqlite_url) as c:
        assert c.system.rejections is not None
        c.system.rejections.record("minami-gw", "unit 2 (MINAMI-MP-02) holding_register 0+20", "wrong length",
                                   "answer has 19 values, asked 20", b"\x00\x01")  # fmt: skip
        await c.system.rejections.flush()
        ok = await c.client.get("/api/v1/system/dead-letters", headers=c.h("ctr-op"))
        assert ok.status_code == 200 and ok.json()["data"][0]["source"] == "minami-gw"
        assert ok.json()["keep_per_source"] == 1000
        for user in ("ctr-view", "kita-op", "kita-admin"):  # a viewer of the centre, or a municipality
            r = await c.client.get("/api/v1/system/dead-letters", headers=c.h(user))
            assert r.status_code == 403 and "MINAMI" not in r.text, (user, r.text)
        assert (await c.client.get("/api/v1/system/status", headers=c.h("ctr-view"))).status_code == 200
        r = await c.client.get("/api/v1/system/status", headers=c.h("kita-admin"))
        assert r.status_code == 403 and "minami-gw" not in r.text
        assert "minami-gw" not in (await c.client.get("/readyz")).text  # public: counts, no sources


@pytest.mark.postgres
async def test_row_level_security_holds_the_app_role_to_the_centre(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    log = RejectionLog(engine, FakeClock(START), tenant_id="centre")
    log.record("lte-1", "scada/v1/MQ-1", "empty", "no payload", b"")
    await log.flush()

    def as_app(tenants: str, table: str) -> int:
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL ROLE {rls.APP_ROLE}"))
            conn.execute(text("SELECT set_config('pumpwatch.tenants', :t, true)"), {"t": tenants})
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()

    try:
        for table in rls.CENTRE_TABLES:
            assert as_app("centre", table) == 1, table
            assert as_app("kita,minami", table) == 0, table  # a municipality's scope: none of it
            assert as_app("", table) == 0, table
        with pytest.raises(Exception, match="permission denied"), engine.begin() as conn:  # read, never write
            conn.execute(text(f"SET LOCAL ROLE {rls.APP_ROLE}"))
            conn.execute(text("SELECT set_config('pumpwatch.tenants', 'centre', true)"))
            conn.execute(text("DELETE FROM dead_letter"))
    finally:
        engine.dispose()
