"""The shipped Mosquitto setup (deploy/mosquitto) on the real broker (goal 20): no anonymous clients, one
account per device, a device can neither publish on nor subscribe to another device's topics, and nobody
but the collector may publish a command (NCMD/DCMD). The shipped mosquitto.conf is used as it is, except
that the test listens on a free plain loopback port instead of 8883 with the site's certificates."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from pumpwatch.app.mqtt_acl import COLLECTOR_USER, write_credentials
from pumpwatch.core.config import load_fleet
from tests.conftest import REPO
from tests.mqtt_broker import MosquittoBroker, mosquitto_binary
from tests.services import service_missing

pytestmark = pytest.mark.integration

CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
SITE_ONLY = (
    "listener",
    "protocol",
    "cafile",
    "certfile",
    "keyfile",
    "tls_version",
    "persistence",
    "autosave",
)
SITE_ONLY += ("log_dest", "connection_messages")


def test_shipped_config_is_tls_only_and_closed_to_anonymous() -> None:
    lines = [ln.split() for ln in CONF.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    settings = {ln[0]: ln[1:] for ln in lines}
    assert settings["allow_anonymous"] == ["false"]
    assert [ln[1:] for ln in lines if ln[0] == "listener"] == [["8883"]]  # no plain-text listener
    assert settings["tls_version"] == ["tlsv1.2"] and "certfile" in settings and "keyfile" in settings
    assert "password_file" in settings and "acl_file" in settings


def test_config_for(creds: Path) -> str:
    out = []
    for ln in CONF.read_text().splitlines():
        key = ln.split()[0] if ln.strip() else ""
        if not key or key.startswith("#") or key in SITE_ONLY:
            continue
        if key == "password_file":
            ln = f"password_file {creds / 'passwd'}"
        elif key == "acl_file":
            ln = f"acl_file {creds / 'acl'}"
        out.append(ln)
    # Started as root, mosquitto drops to the user "mosquitto", who may not read the test's files.
    return "\n".join(out) + f"\npersistence false\nuser {getpass.getuser()}\n"


test_config_for.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[tuple[MosquittoBroker, dict[str, str]]]:
    if mosquitto_binary() is None:
        service_missing("Mosquitto", "apt-get install mosquitto (it brings mosquitto_passwd)")
    passwords = write_credentials(load_fleet(REPO / "deploy" / "config" / "city"), tmp_path / "creds")
    b = MosquittoBroker(config=test_config_for(tmp_path / "creds"))
    b.start()
    try:
        yield b, passwords
    finally:
        b.stop()
        b.cleanup()


def client(b: MosquittoBroker, user: str | None, password: str | None, cid: str) -> aiomqtt.Client:
    return aiomqtt.Client(b.host, b.port, identifier=cid, username=user, password=password, timeout=5)


async def collect(c: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for m in c.messages:
        into.append((str(m.topic), bytes(m.payload)))


async def until(pred, what: str, limit_s: float = 5.0) -> None:
    for _ in range(int(limit_s / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {limit_s} s: {what}")


async def test_devices_stay_on_their_own_topics(broker) -> None:
    b, pw = broker
    with pytest.raises(aiomqtt.MqttError):
        async with client(b, None, None, "anon"):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with client(b, "HNM-MP-161", "wrong-password", "bad"):
            pass
    dev_a, dev_b = "HNM-MP-161", "HNM-MP-162"
    json_a, json_b = f"scada/v1/hanamizu/{dev_a}", f"scada/v1/hanamizu/{dev_b}"
    got_collector: list[tuple[str, bytes]] = []
    got_a: list[tuple[str, bytes]] = []
    got_edge: list[tuple[str, bytes]] = []
    async with (
        client(b, COLLECTOR_USER, pw[COLLECTOR_USER], "collector") as col,
        client(b, dev_a, pw[dev_a], "dev-a") as a,
        client(b, dev_b, pw[dev_b], "dev-b") as bb,
        client(b, "edge-1", pw["edge-1"], "edge-1") as e1,
        client(b, "edge-2", pw["edge-2"], "edge-2") as e2,
    ):
        await col.subscribe("scada/v1/hanamizu/#", qos=1)
        await col.subscribe("spBv1.0/yamabe/#", qos=1)
        # Mosquitto 2.0 grants the SUBACK but checks read access on every message: nothing is delivered
        await a.subscribe(f"{json_b}/#", qos=1)
        await a.subscribe("#", qos=1)
        await e1.subscribe("spBv1.0/yamabe/NCMD/edge-1", qos=1)
        tasks = [
            asyncio.create_task(collect(c, g)) for c, g in ((col, got_collector), (a, got_a), (e1, got_edge))
        ]
        try:
            # A publishes as B, then on its own topic (same client: delivery keeps this order)
            await a.publish(json_b, b'{"values": {"wet_well_level_m": 9.9}}', qos=1)
            await a.publish(f"{json_b}/status", b"offline", qos=1)
            await a.publish(json_a, b"sentinel-a", qos=1)
            await until(lambda: (json_a, b"sentinel-a") in got_collector, "A's own message at the collector")
            await bb.publish(json_b, b"from-b", qos=1)
            await until(lambda: (json_b, b"from-b") in got_collector, "B's own message at the collector")
            # edge-2 impersonating edge-1's node data; a device sending a command to edge-1
            await e2.publish("spBv1.0/yamabe/NDATA/edge-1", b"forged", qos=1)
            await e2.publish("spBv1.0/yamabe/NDATA/edge-2", b"sentinel-e2", qos=1)
            await a.publish("spBv1.0/yamabe/NCMD/edge-1", b"command-from-a-device", qos=1)
            await e2.publish("spBv1.0/yamabe/NCMD/edge-1", b"command-from-a-node", qos=1)
            await a.publish(json_a, b"sentinel-a2", qos=1)
            await until(lambda: ("spBv1.0/yamabe/NDATA/edge-2", b"sentinel-e2") in got_collector, "edge-2")
            await until(lambda: (json_a, b"sentinel-a2") in got_collector, "A's second sentinel")
            # the collector may ask edge-1 for a rebirth
            await col.publish("spBv1.0/yamabe/NCMD/edge-1", b"rebirth", qos=1)
            await until(lambda: bool(got_edge), "the collector's NCMD at edge-1")
            await asyncio.sleep(0.2)
        finally:
            for t in tasks:
                t.cancel()
    assert (json_b, b'{"values": {"wet_well_level_m": 9.9}}') not in got_collector
    assert not [m for m in got_collector if m[0] == f"{json_b}/status"]
    assert ("spBv1.0/yamabe/NDATA/edge-1", b"forged") not in got_collector
    assert got_edge == [("spBv1.0/yamabe/NCMD/edge-1", b"rebirth")]  # no command from anyone else
    assert got_a == []  # A saw nothing of B's
