"""Test fleets: the shipped demo fleet moved onto free loopback ports."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pumpwatch.core.config import ControllerConfig, Fleet, load_fleet
from tests.conftest import DEMO_FLEET
from tests.services import free_port

# A loaded test machine (two pytest workers, the databases, Chromium) answers loopback late now and then;
# the demo's 0.5-1 s answer limits then count misses (seen in CI: a gateway "cannot connect" three polls
# running, so comm_loss). These fleets are not about timeouts; the tests of timeouts set their own.
PATIENT_TIMEOUT_S = 5.0


def _patient(c: ControllerConfig) -> float:
    """The longest answer limit the controller's validator allows (its units' limits must add up to under
    four poll intervals), at most PATIENT_TIMEOUT_S, never shorter than the fleet's own."""
    allowed = 0.9 * 4 * c.poll_interval_s / len(c.units)
    return max(c.timeout_s, min(PATIENT_TIMEOUT_S, allowed))


def demo_fleet_on_free_ports() -> Fleet:
    fleet = load_fleet(DEMO_FLEET)
    fleet.controllers = {
        cid: c.model_copy(update={"port": free_port(), "timeout_s": _patient(c)})
        if isinstance(c, ControllerConfig)
        else c.model_copy(update={"port": free_port()})
        for cid, c in fleet.controllers.items()
    }
    return fleet


def demo_fleet_dir_on_free_ports(tmp: Path) -> Path:
    """A copy of the demo fleet's files with every controller on a free port (for subprocess runs)."""
    for d in ("demo", "maps", "rules"):
        shutil.copytree(DEMO_FLEET.parent / d, tmp / d)
    path = tmp / "demo" / "controllers.yaml"
    data = yaml.safe_load(path.read_text())
    fleet = load_fleet(DEMO_FLEET)
    for c in data["controllers"]:
        c["port"] = free_port()
        ctrl = fleet.controllers[c["id"]]
        if isinstance(ctrl, ControllerConfig):
            c["timeout_s"] = _patient(ctrl)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return tmp / "demo"


def full_demo_fleet_dir_on_free_ports(tmp: Path) -> Path:
    """The same with the demo's other kinds (deploy/config/demo/full, what `make demo` runs)."""
    demo = demo_fleet_dir_on_free_ports(tmp)
    path = demo / "full" / "controllers.yaml"
    data = yaml.safe_load(path.read_text())
    for c in data["controllers"]:
        c["port"] = free_port()
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return demo / "full"


def mqtt_demo_fleet_dir_on_free_ports(tmp: Path) -> Path:
    """`make demo` with Mosquitto installed (deploy/config/demo/full/mqtt); the broker port is a free one
    nothing listens on, so the demo starts its own private Mosquitto (never the machine's shared one)."""
    full_demo_fleet_dir_on_free_ports(tmp)
    shutil.copytree(DEMO_FLEET.parent / "metrics", tmp / "metrics")
    path = tmp / "demo" / "full" / "mqtt" / "fleet.yaml"
    data = yaml.safe_load(path.read_text())
    data["mqtt"]["port"] = free_port()
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path.parent


async def wait_until(predicate: Callable[[], bool], limit_s: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for: {what}")
        await asyncio.sleep(step)
