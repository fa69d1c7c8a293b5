"""The collector's errors (the tree is drawn in `pumpwatch/collector/__init__.py`)."""

from __future__ import annotations


class CollectorError(Exception):
    """Base of the collector's errors."""


class SourceError(CollectorError):
    """A source failed to read its device."""


class ConnectError(SourceError):
    """The device could not be reached, or did not answer in time (raised by the Modbus source per unit)."""


class DecodeError(SourceError):
    """The device sent something that does not fit its register map or metric map (the MQTT handlers'
    `Rejected` is one)."""
