"""MQTT fixtures; tests/conftest.py imports them (`from tests.mqtt_fixtures import mqtt_broker`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mqtt_broker import MosquittoBroker

__all__ = ["mqtt_broker"]


@pytest.fixture
def mqtt_broker() -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto on a free loopback port: `.host`, `.port`, `.broker_config()`, `.restart()`."""
    broker = MosquittoBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.cleanup()
