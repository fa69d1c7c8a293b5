"""The one Mosquitto launcher (pumpwatch.app.mosquitto): the demo's private broker and the tests' fixture
are the same code, so what the tests start is what `pumpwatch demo` starts."""

from __future__ import annotations

import pytest

from pumpwatch.app.mosquitto import Mosquitto, find_mosquitto, private_broker, reachable
from tests.mqtt_broker import MosquittoBroker
from tests.services import free_port, service_missing


@pytest.fixture
def binary() -> str:
    found = find_mosquitto()
    if found is None:
        service_missing("Mosquitto", "install it with `apt-get install mosquitto`; .ci/run does")
    assert found is not None
    return found


def test_the_demos_private_broker_answers_for_the_life_of_the_block(binary: str) -> None:
    with private_broker(binary) as port:
        assert reachable("127.0.0.1", port, 0.5)
    assert not reachable("127.0.0.1", port, 0.2)


def test_a_broker_that_cannot_start_says_why_with_its_log(binary: str) -> None:
    broker = Mosquitto(binary, free_port(), settings="no_such_option true\n")
    try:
        with pytest.raises(RuntimeError, match=r"mosquitto exited with \d+ on 127\.0\.0\.1:\d+") as err:
            broker.start()
        assert "no_such_option" in str(err.value)  # the broker's own complaint, from its log
        assert not broker.running
    finally:
        broker.cleanup()
    assert not broker.folder.exists()


def test_the_tests_broker_is_the_apps_launcher_and_restarts_on_its_port(binary: str) -> None:
    broker = MosquittoBroker()
    assert isinstance(broker, Mosquitto)
    try:
        broker.start()
        port = broker.port
        broker.restart()
        assert broker.running and broker.port == port and broker.starts == 2
        assert reachable(broker.host, port, 0.5)
        assert broker.broker_config().port == port
    finally:
        broker.cleanup()
    assert not broker.running
