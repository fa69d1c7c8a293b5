"""Safe defaults (goal 20): the API binds to loopback by default; beyond loopback it refuses to start with
the default secret, with demo users, or without TLS; with a certificate it speaks TLS 1.2 or newer only."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest

from pumpwatch.cli import exposure_problems
from pumpwatch.settings import Settings
from tests.e2e.fleets import demo_fleet_dir_on_free_ports
from tests.services import free_port, service_missing

STRONG = "x" * 40


def test_loopback_is_always_allowed_and_the_default() -> None:
    s = Settings()
    assert s.api_host == "127.0.0.1"
    assert exposure_problems(s, "127.0.0.1", ["admin"]) == []
    assert exposure_problems(s, "localhost", ["admin"]) == []


def test_beyond_loopback_each_unsafe_default_is_refused(tmp_path: Path) -> None:
    problems = exposure_problems(Settings(), "0.0.0.0", ["admin", "viewer"])
    assert len(problems) == 3
    assert "SECRET_KEY" in problems[0] and "admin, viewer" in problems[1] and "TLS" in problems[2]
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ok = Settings(secret_key=STRONG, api_ssl_certfile=cert, api_ssl_keyfile=key)
    assert exposure_problems(ok, "0.0.0.0", []) == []
    assert exposure_problems(Settings(secret_key="short"), "0.0.0.0", [])[0].startswith("PUMPWATCH_SECRET")
    proxied = Settings(secret_key=STRONG, api_behind_tls_proxy=True)
    assert exposure_problems(proxied, "0.0.0.0", []) == []


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pumpwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def test_run_and_demo_refuse_to_listen_beyond_loopback(tmp_path: Path) -> None:
    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    r = run_cli(["run", "--fleet", str(fleet), "--db", db, "--no-collect", "--api-host", "0.0.0.0"], {})
    assert r.returncode != 0 and "refusing to serve the API on 0.0.0.0" in r.stderr, r.stderr
    assert "SECRET_KEY" in r.stderr and "TLS" in r.stderr
    r = run_cli(["demo", "--fleet", str(fleet), "--db", db, "--api-host", "0.0.0.0"], {})
    assert r.returncode != 0 and "not a loopback address" in r.stderr


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        service_missing("openssl", "apt-get install openssl (.ci/run does)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_api_over_tls_only_1_2_or_newer(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    port = free_port()
    env = {"PUMPWATCH_API_SSL_CERTFILE": str(cert), "PUMPWATCH_API_SSL_KEYFILE": str(key)}
    cmd = ["run", "--fleet", str(fleet), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-collect"]
    cmd += ["--api-port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpwatch.cli", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=ctx, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "no HTTPS answer within 60 s"
                time.sleep(0.3)
        assert r.status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP on the same port gets nowhere
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(cert))
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            with pytest.raises((httpx.TransportError, ssl.SSLError)):
                httpx.get(f"https://127.0.0.1:{port}/healthz", verify=old, timeout=2)
        except ValueError:
            pass  # this OpenSSL cannot even offer TLS 1.1: refused on our side already
    finally:
        proc.terminate()
        proc.wait(timeout=15)
