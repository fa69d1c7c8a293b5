"""Collector: reads field devices (Modbus TCP, MQTT JSON, Sparkplug B) and emits `Sample`s
(`pumpwatch.core.sample`) to the `Emit` callable the composition root gives it (`sources.Emit`).

Exceptions (`errors.py`)::

    CollectorError
    └── SourceError
        ├── ConnectError   the device could not be reached
        └── DecodeError    the device answered something that does not fit its register map
"""
