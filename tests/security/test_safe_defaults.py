"""Safe defaults (goal 20, issue 15 part 4): the safety policy lives in Settings, not in the bind address.

Outside `pumpwatch demo`, the default secret, the placeholders shipped in examples, short and guessable
secrets and enabled demo users are refused whatever the host, by every command that signs with the secret
(`run` with the API or the notifier, `notify run`); beyond loopback the API also needs TLS, and with a
certificate it speaks TLS 1.2 or newer only. The shipped deploy files cannot start with a public default.
Each is tried here as a careless deployment would: by starting the real command."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest
import yaml

from pumpwatch.app.policy import exposure_problems
from pumpwatch.core.settings import DEFAULT_SECRET, Settings, secret_problem
from tests.auth import SECRET
from tests.conftest import REPO
from tests.e2e.fleets import demo_fleet_dir_on_free_ports
from tests.services import free_port, service_missing

STRONG = SECRET
DEPLOY = REPO / "deploy"


def test_loopback_binds_by_default_and_needs_no_tls() -> None:
    s = Settings(secret_key=STRONG)
    assert s.api_host == "127.0.0.1"
    assert exposure_problems(s, "127.0.0.1") == [] and exposure_problems(s, "localhost") == []


@pytest.mark.parametrize(
    "secret",
    [
        DEFAULT_SECRET,
        "change-me-to-a-long-random-string",  # the compose file's, before issue 15
        "CHANGE-ME-to-a-long-random-string",  # the systemd example's
        "my-production-secret-key-change-me-please",  # a placeholder by another name
        "short",
        "",
        "x" * 40,  # long, but one character
        "0123456789abcdef0123456789abcdef",  # a sequence
        "qwertyuiopasdfghjklzxcvbnm123456",  # a keyboard walk
        "passwordpasswordpasswordpassword1",  # a word repeated
    ],
)
def test_public_short_and_guessable_secrets_are_refused_whatever_the_host(secret: str) -> None:
    s = Settings(secret_key=secret)
    problems = s.unsafe_problems()
    assert len(problems) == 1 and "PUMPWATCH_SECRET_KEY" in problems[0] and "openssl rand" in problems[0]
    assert s.unsafe_problems(demo=True) == []  # the demo alone may use them (it serves loopback only)


def test_a_random_secret_passes() -> None:
    assert secret_problem(STRONG) is None
    assert secret_problem(os.urandom(32).hex()) is None


def test_demo_users_are_refused_outside_the_demo_whatever_the_host() -> None:
    s = Settings(secret_key=STRONG)
    problems = s.unsafe_problems(demo_users=["admin", "viewer"])
    assert len(problems) == 1 and "admin, viewer" in problems[0] and "user disable" in problems[0]
    assert s.unsafe_problems(demo=True, demo_users=["admin"]) == []


def test_beyond_loopback_tls_is_required(tmp_path: Path) -> None:
    assert "TLS" in exposure_problems(Settings(secret_key=STRONG), "0.0.0.0")[0]
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    assert exposure_problems(Settings(api_ssl_certfile=cert, api_ssl_keyfile=key), "0.0.0.0") == []
    assert exposure_problems(Settings(api_behind_tls_proxy=True), "0.0.0.0") == []


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "PUMPWATCH_SECRET_KEY"} | env
    return subprocess.run(
        [sys.executable, "-m", "pumpwatch.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
    )


def test_run_on_loopback_refuses_the_default_and_a_placeholder_secret(tmp_path: Path) -> None:
    """The systemd API unit binds 127.0.0.1 behind a proxy: before issue 15 it started with the default."""
    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    cmd = ["run", "--fleet", str(fleet), "--db", db, "--no-collect", "--api-host", "127.0.0.1"]
    r = run_cli(cmd, {})
    assert r.returncode != 0 and "refusing to start the API" in r.stderr, r.stderr
    assert "public default" in r.stderr and "openssl rand -hex 32" in r.stderr
    r = run_cli(cmd, {"PUMPWATCH_SECRET_KEY": "change-me-to-a-long-random-string"})
    assert r.returncode != 0 and "placeholder" in r.stderr, r.stderr
    # a collector shard that runs the notifier signs ack links: refused too; without it, nothing to sign
    r = run_cli(["run", "--fleet", str(fleet), "--db", db, "--no-api", "--api-port", "1"], {})
    assert r.returncode != 0 and "refusing to start the notifier" in r.stderr, r.stderr


def test_notify_run_refuses_the_default_secret(tmp_path: Path) -> None:
    """`pumpwatch notify run` signs the ack links: before issue 15 it checked nothing."""
    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    r = run_cli(["notify", "run", "--fleet", str(fleet), "--db", f"sqlite:///{tmp_path / 'x.db'}"], {})
    assert r.returncode != 0 and "refusing to start the notifier" in r.stderr and "public default" in r.stderr


def test_run_on_loopback_refuses_enabled_demo_users(tmp_path: Path) -> None:
    from pumpwatch.api.auth.demo import seed_demo_users
    from pumpwatch.core.db.engine import make_engine
    from pumpwatch.core.db.migrate import upgrade

    fleet = demo_fleet_dir_on_free_ports(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(db)
    upgrade(engine)
    seed_demo_users(engine, ["kita", "minami"])  # left over from a `pumpwatch demo` on this database
    engine.dispose()
    cmd = ["run", "--fleet", str(fleet), "--db", db, "--no-collect", "--api-host", "127.0.0.1"]
    r = run_cli(cmd, {"PUMPWATCH_SECRET_KEY": STRONG})
    assert r.returncode != 0 and "demo users with the public password" in r.stderr, r.stderr
    # every `user` command says so, and a demo user cannot be enabled again with its public password
    r = run_cli(["user", "disable", "admin", "--db", db], {})
    assert r.returncode == 0 and "WARNING: demo users" in r.stderr
    r = run_cli(["user", "enable", "admin", "--db", db], {})
    assert r.returncode != 0 and "password of its own" in r.stderr
    r = run_cli(["demo", "--fleet", str(fleet), "--db", db, "--api-host", "0.0.0.0"], {})
    assert r.returncode != 0 and "not a loopback address" in r.stderr


def _compose_env() -> dict:
    doc = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    return doc["x-pumpwatch"]["environment"]


def test_shipped_deploy_files_cannot_start_with_a_public_secret() -> None:
    # compose: a required variable, no value of its own (compose stops with the message if it is unset)
    value = _compose_env()["PUMPWATCH_SECRET_KEY"]
    assert re.fullmatch(r"\$\{PUMPWATCH_SECRET_KEY:\?[^}]+\}", value), value
    # systemd: whatever the example holds is refused until replaced
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "pumpwatch.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert secret_problem(env["PUMPWATCH_SECRET_KEY"]) is not None
    # Kubernetes: every container that signs (API, notifier) takes the key from a Secret; collectors sign
    # nothing (--no-notify)
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] not in ("Deployment", "StatefulSet"):
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                env = {e["name"]: e for e in c.get("env", [])}
                if "--no-notify" in c["command"] and "--no-api" in c["command"]:
                    assert "PUMPWATCH_SECRET_KEY" not in env
                    continue
                ref = env["PUMPWATCH_SECRET_KEY"]
                assert "value" not in ref and ref["valueFrom"]["secretKeyRef"], path
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read_string(path.read_text())
        assert unit["Service"]["EnvironmentFile"] == "/etc/pumpwatch/pumpwatch.env"
        assert "SECRET" not in unit["Service"].get("Environment", "")


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
    cmd += ["--api-port", str(port), "--api-host", "0.0.0.0"]  # beyond loopback: TLS is what allows it
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpwatch.app.cli", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env, "PUMPWATCH_SECRET_KEY": STRONG},
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
