"""Tests of the simulators and of `pumpwatch.hydraulics`. Shared helpers (not fixtures) live here."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path

from pumpwatch.config.loader import Fleet, load_fleet
from pumpwatch.config.models import StationConfig
from tests.services import free_port

DEMO_FLEET = Path(__file__).resolve().parents[2] / "deploy" / "config" / "demo"


def demo_fleet_on_free_ports() -> Fleet:
    """The demo fleet with every controller moved to a free loopback port."""
    fleet = load_fleet(DEMO_FLEET)
    fleet.controllers = {
        cid: c.model_copy(update={"port": free_port(), "host": "127.0.0.1"})
        for cid, c in fleet.controllers.items()
    }
    return fleet


@lru_cache  # read-only: tests that change a fleet load their own
def demo_fleet() -> Fleet:
    return load_fleet(DEMO_FLEET)


def station_config(station_id: str = "KITA-MP-01") -> StationConfig:
    """A station of the demo fleet (KITA-MP-01 is MPS-REF of domain.md §1.2)."""
    return demo_fleet().stations[station_id]


async def settle(rounds: int = 5) -> None:
    """Let woken tasks run (after `FakeClock.advance`)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
