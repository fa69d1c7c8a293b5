"""Ctrl-C on `pumpwatch demo` with a console open: the live stream ends and the process exits cleanly
(uvicorn would otherwise wait for the never-ending response forever)."""

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


def test_demo_stops_promptly_with_a_stream_open(tmp_path: Path) -> None:
    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "pumpwatch.app.cli", "demo", "--fleet", str(fleet)]
    cmd += ["--db", f"sqlite:///{tmp_path / 'demo.db'}", "--api-port", str(port), "--speed", "5"]
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        # the demo seeds its users (CONTRACT): the shared centre's operator
        login = {"username": "operator", "password": "pumpwatch-demo"}
        token = httpx.post(f"{url}/api/v1/auth/login", json=login, timeout=10).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.stream(
            "GET", f"{url}/api/v1/stream", headers=auth, timeout=httpx.Timeout(10, read=20)
        ) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert any(line.startswith("event: snapshot") for _, line in zip(range(50), lines, strict=False))
            proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            code = proc.wait(timeout=30)
            took = time.monotonic() - t0
            for _ in lines:  # the server ended the stream: reading reaches its end
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()
    assert took < 15, f"{took:.1f} s to stop with a stream open"
    assert "Traceback" not in (tmp_path / "demo.log").read_text()
