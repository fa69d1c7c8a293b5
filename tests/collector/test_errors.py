"""The collector's error tree (collector/__init__.py) is the one its sources raise."""

from __future__ import annotations

import pytest

from pumpwatch.collector.errors import CollectorError, ConnectError, DecodeError, SourceError
from pumpwatch.collector.sources.modbus import UnitPlan
from pumpwatch.collector.sources.mqtt_common import Ignored, Rejected
from pumpwatch.collector.sources.mqtt_json import loads
from tests.collector.test_modbus_field_shape import gateway, source, units
from tests.collector.test_modbus_source import PLAN, Recorder
from tests.services import free_port


def test_the_tree_as_drawn() -> None:
    assert issubclass(SourceError, CollectorError)
    assert issubclass(ConnectError, SourceError) and issubclass(DecodeError, SourceError)
    assert issubclass(Rejected, DecodeError) and issubclass(Ignored, Rejected)


def test_a_message_that_does_not_fit_is_a_decode_error_with_its_reason() -> None:
    with pytest.raises(DecodeError) as err:
        loads(b"{not json")
    assert isinstance(err.value, Rejected) and err.value.reason == "malformed JSON"


async def test_a_modbus_unit_without_a_link_raises_connect_error() -> None:
    src = source(gateway(free_port(), units(1)), Recorder())
    unit = UnitPlan(1, "S1", PLAN, None)
    with pytest.raises(ConnectError, match="not connected"):
        await src._read_block(unit, PLAN.blocks[0])
