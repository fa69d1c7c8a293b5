"""Collector: reads field devices (Modbus TCP now; MQTT later) and emits `Sample`s.

Exceptions::

    CollectorError
    └── SourceError
        ├── ConnectError   the device could not be reached
        └── DecodeError    the device answered something that does not fit its register map
"""
