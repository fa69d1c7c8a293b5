"""`pumpwatch demo` as a newcomer runs it: one process, SQLite, live values at /api/v1/stations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.drills import SCENARIOS
from tests.e2e.fleets import (
    demo_fleet_dir_on_free_ports,
    full_demo_fleet_dir_on_free_ports,
    mqtt_demo_fleet_dir_on_free_ports,
)
from tests.mqtt_broker import mosquitto_binary
from tests.services import free_port, service_missing

pytestmark = pytest.mark.integration


def levels(body: dict) -> dict[str, float]:
    return {
        s["id"]: s["values"]["wet_well_level_m"]["value"]
        for s in body["data"]
        if s["values"]["wet_well_level_m"]["quality"] == "good"
    }


def test_demo_serves_live_changing_levels_and_stops_cleanly(tmp_path: Path) -> None:
    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    port = free_port()
    db = tmp_path / "var" / "demo.db"
    cmd = [
        sys.executable,
        "-m",
        "pumpwatch.app.cli",
        "demo",
        "--fleet",
        str(fleet),
        "--db",
        f"sqlite:///{db}",
    ]
    cmd += ["--api-port", str(port), "--speed", "20", "--backfill-hours", "0"]
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/stations"
        first: dict[str, float] = {}
        auth: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if not auth:  # the demo seeds its users: the shared centre's operator sees both towns
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/api/v1/auth/login",
                        json={"username": "operator", "password": "pumpwatch-demo"},
                        timeout=5,
                    )
                    auth = {"Authorization": f"Bearer {r.json()['token']}"}
                first = levels(httpx.get(url, timeout=2, headers=auth).json())
            except httpx.HTTPError:
                first = {}
            if len(first) == 12:
                break
            time.sleep(0.5)
        assert len(first) == 12, f"live levels for {len(first)} of 12 stations within 60 s"
        # Levels change: at ×20 a few seconds are minutes of filling and pumping.
        time.sleep(4)
        assert httpx.get(url, timeout=2).status_code == 401  # nobody gets in without logging in
        second = levels(httpx.get(url, timeout=2, headers=auth).json())
        assert sum(1 for k in first if second.get(k) != first[k]) >= 6
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()["status"] == "ok"
        assert "pumpwatch" in httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
        assert (
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).status_code == 401
        )  # needs a login
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2, headers=auth).json()
        assert "/api/v1/stations/{station_id}/points/{point}/history" in spec["paths"]
        # the on-call notifier runs in the demo too (to a local file, no outside service)
        oncall = httpx.get(f"http://127.0.0.1:{port}/api/v1/notify/oncall", timeout=2, headers=auth).json()
        assert [t["tenant"] for t in oncall["tenants"]] == ["centre", "kita", "minami"]
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
        assert "notify.service" in str(ready)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()
    assert db.exists()
    assert "Traceback" not in (tmp_path / "demo.log").read_text()


def test_make_demo_shows_every_kind_and_a_day_of_trend_within_60_s(tmp_path: Path) -> None:
    """What `make demo` runs (deploy/config/demo/full): manhole stations direct and behind a gateway, a relay
    station, a stormwater station, a plant, all over Modbus; within 60 s live values of every one, a
    24-hour trend and a time to overflow the forecasters learned from the simulated yesterday."""
    fleet = full_demo_fleet_dir_on_free_ports(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "pumpwatch.app.cli", "demo", "--fleet", str(fleet), "--api-port", str(port)]
    cmd += [
        "--db",
        f"sqlite:///{tmp_path / 'demo.db'}",
        "--scenario",
        str(SCENARIOS / "failed-level-sensor.yaml"),
    ]
    log = (tmp_path / "demo.log").open("w")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    try:
        auth: dict[str, str] = {}
        kinds: dict[str, str] = {}
        span_h = 0.0
        tto = None
        while time.monotonic() - t0 < 60:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if not auth:
                    r = httpx.post(
                        f"{base}/api/v1/auth/login",
                        json={"username": "kita", "password": "pumpwatch-demo"},
                        timeout=5,
                    )
                    auth = {"Authorization": f"Bearer {r.json()['token']}"}
                body = httpx.get(f"{base}/api/v1/stations", timeout=5, headers=auth).json()
                kinds = {
                    s["id"]: s["kind"]
                    for s in body["data"]
                    if any(v["quality"] == "good" for v in s["values"].values())
                }
                start = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
                h = httpx.get(
                    f"{base}/api/v1/stations/KITA-MP-07/points/wet_well_level_m/history",
                    params={"start": start},
                    timeout=10,
                    headers=auth,
                ).json()["data"]
                if h:
                    first, last = (datetime.fromisoformat(h[i]["t"]) for i in (0, -1))
                    span_h = (last - first).total_seconds() / 3600
                st = httpx.get(f"{base}/api/v1/stations/KITA-MP-07", timeout=5, headers=auth).json()
                tto = st["values"].get("tto_spill_min", {}).get("value")
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if len(kinds) == 11 and span_h > 23 and tto is not None:  # Kita's 8 + relay + storm + plant
                break
            time.sleep(1)
        took = time.monotonic() - t0
        print(f"make demo: every kind live, {span_h:.1f} h of trend, time to overflow after {took:.0f} s")
        assert set(kinds.values()) == {"manhole_pump", "relay_pump", "stormwater_pump", "treatment_plant"}, (
            kinds
        )
        assert len(kinds) == 11, kinds
        assert span_h > 23, f"{span_h:.1f} h of trend within 60 s"
        assert tto is not None and tto > 0
        # the drill given at start runs; `pumpwatch drill` stops it and starts another through the API
        running = httpx.get(
            f"{base}/api/v1/drills", params={"running": "true"}, headers=auth, timeout=5
        ).json()
        assert [d["name"] for d in running["data"]] == ["failed-level-sensor"]
        env = {**os.environ, "PUMPWATCH_DRILL_PASSWORD": "pumpwatch-demo"}

        def drill(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "pumpwatch.app.cli", "drill", *args, "--url", base],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )

        first = running["data"][0]["id"]
        r = drill("run", str(SCENARIOS / "lightning-night.yaml"), "--user", "trainer")
        assert r.returncode == 1 and "is running for tenant kita" in r.stderr, r.stderr
        r = drill("stop", str(first), "--user", "kita")
        assert r.returncode == 1 and "needs the trainer role" in r.stderr, r.stderr
        assert drill("stop", str(first), "--user", "trainer").returncode == 0
        r = drill("run", str(SCENARIOS / "lightning-night.yaml"), "--user", "trainer")
        assert r.returncode == 0 and "running: Lightning night" in r.stdout, r.stderr
        second = int(r.stdout.split()[1])
        r = drill("report", str(second), "--user", "trainer")
        assert r.returncode == 0 and '"name": "lightning-night"' in r.stdout, r.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()
    assert "Traceback" not in (tmp_path / "demo.log").read_text()


def test_make_demo_with_mosquitto_has_mqtt_and_sparkplug_stations_too(tmp_path: Path) -> None:
    """With Mosquitto installed `make demo` runs deploy/config/demo/full/mqtt: Minami's MQTT JSON manhole
    station and Sparkplug B relay station and plant report live values beside the Modbus ones."""
    if mosquitto_binary() is None:
        service_missing("mosquitto", "apt-get install mosquitto")
    fleet = mqtt_demo_fleet_dir_on_free_ports(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "pumpwatch.app.cli", "demo", "--fleet", str(fleet), "--api-port", str(port)]
    cmd += ["--db", f"sqlite:///{tmp_path / 'demo.db'}", "--backfill-hours", "0"]
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    want = {"MINAMI-MP-05", "MINAMI-RP-01", "MINAMI-TP-01", "MINAMI-MP-01"}
    live: set[str] = set()
    try:
        auth: dict[str, str] = {}
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and not want <= live:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if not auth:
                    r = httpx.post(
                        f"{base}/api/v1/auth/login",
                        json={"username": "minami", "password": "pumpwatch-demo"},
                        timeout=5,
                    )
                    auth = {"Authorization": f"Bearer {r.json()['token']}"}
                body = httpx.get(f"{base}/api/v1/stations", timeout=5, headers=auth).json()
                live = {
                    s["id"] for s in body["data"] if any(v["quality"] == "good" for v in s["values"].values())
                }
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(1)
        assert want <= live, (live, (tmp_path / "demo.log").read_text()[-3000:])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    text = (tmp_path / "demo.log").read_text()
    assert code == 0 and "Traceback" not in text, text[-3000:]
    assert "started a private mosquitto" in text and "MQTT devices (JSON and Sparkplug B)" in text
