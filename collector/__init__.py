"""Collector: reads field devices (Modbus TCP, MQTT JSON, Sparkplug B) and emits `Sample`s
(`pumpwatch.core.sample`) to the `Emit` callable the composition root gives it (`sources.Emit`).

Exceptions (`errors.py`)::

    CollectorError
    └── SourceError
        ├── ConnectError   the device could not be reached or did not answer (`sources/modbus.py`: a unit's
        │                  points turn comm_loss, the link reconnects with backoff)
        └── DecodeError    the device sent something that does not fit its register map or metric map
            └── Rejected   one MQTT message or value that does not fit (`sources/mqtt_common.py`): counted
                │          by reason, kept as a dead letter; the messages around it are stored
                └── Ignored   well-formed but not usable yet (Sparkplug data before its birth): a rebirth
                              is asked for, no dead letter

A source never lets one of these out of its `run()`: each is turned into a sample quality, a count and a
log line where an operator looks (a bug that escapes is restarted by `supervisor.run_sources`).
"""
