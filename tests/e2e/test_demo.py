"""`pumpwatch demo` as a newcomer runs it: one process, SQLite, live values at /api/v1/stations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.fleets import demo_fleet_dir_on_free_ports
from tests.services import free_port

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
    cmd += ["--api-port", str(port), "--speed", "20"]
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
