"""deploy/: compose, Kubernetes and systemd files parse, and every command they run is a real `pumpwatch`
subcommand with options it accepts (Docker and a cluster are not available here to run them)."""

from __future__ import annotations

import configparser
import shlex

import click
import pytest
import yaml

from pumpwatch.app.cli import main
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def _check_command(argv: list[str], where: str) -> None:
    assert argv and argv[0].endswith("pumpwatch"), f"{where}: {argv}"
    name, rest = argv[1], argv[2:]
    cmd = main.get_command(click.Context(main), name)
    if cmd is None and name == "notify":
        pytest.skip(f"{where}: `pumpwatch notify` arrives with the notifier (issue 5)")
    assert cmd is not None, f"{where}: `pumpwatch {name}` is not a subcommand"
    rest = [a.replace("${PUMPWATCH_SHARDS}", "3").replace("%i", "1") for a in rest]
    try:
        cmd.make_context(name, rest)  # parses and validates options; runs nothing
    except click.exceptions.UsageError as exc:
        pytest.fail(f"{where}: {shlex.join(argv)}: {exc}")


def _compose_commands() -> list[tuple[str, list[str]]]:
    doc = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    return [(f"compose:{name}", svc["command"]) for name, svc in doc["services"].items() if "command" in svc]


def _k8s_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
            if doc["kind"] in ("Deployment", "StatefulSet"):
                spec = doc["spec"]
                assert (
                    spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
                )
                for c in spec["template"]["spec"]["containers"]:
                    out.append((f"{path.name}:{c['name']}", c["command"] + c.get("args", [])))
    return out


def _systemd_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read_string(path.read_text())
        assert unit.has_section("Unit") and unit.has_section("Install"), path
        out.append((path.name, shlex.split(unit["Service"]["ExecStart"])))
    return out


ALL = _compose_commands() + _k8s_commands() + _systemd_commands()


@pytest.mark.parametrize(("where", "argv"), ALL, ids=[w for w, _ in ALL])
def test_every_deployed_command_is_a_real_subcommand(where: str, argv: list[str]) -> None:
    _check_command(argv, where)


def test_compose_has_the_parts() -> None:
    services = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())["services"]
    assert "timescaledb" in services["db"]["image"]
    assert "mosquitto" in services["mosquitto"]["image"]
    shards = sorted(a for s in services.values() for a in s.get("command", []) if a.endswith("/3"))
    assert shards == ["0/3", "1/3", "2/3"]
    assert {"api", "notifier", "migrate"} <= set(services)


def test_statefulset_ordinal_is_the_shard() -> None:
    doc = yaml.safe_load((DEPLOY / "k8s" / "collector-statefulset.yaml").read_text())
    env = {e["name"]: e.get("value") for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
    replicas = doc["spec"]["replicas"]
    assert env["PUMPWATCH_SHARD"] == f"ordinal/{replicas}"
    probes = doc["spec"]["template"]["spec"]["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_files_exist() -> None:
    for p in ("compose/docker-compose.yml", "compose/Dockerfile", "systemd/pumpwatch-collector@.service"):
        assert (DEPLOY / p).is_file(), p
