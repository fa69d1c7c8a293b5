"""pumpwatch: monitoring for sewer pump stations, treatment plants and their controllers.

One namespace, layers checked by import-linter (docs/architecture.md), top to bottom:

- `pumpwatch.app`: the composition root (the `System` wiring, the command line); nothing imports it;
- `pumpwatch.api`: the HTTP API, the live stream and the console;
- `pumpwatch.alarms` | `pumpwatch.collector` | `pumpwatch.simulators`: independent of each other;
- `pumpwatch.protocols`: protocol code the collector and the simulators share (Sparkplug B);
- `pumpwatch.core`: the kernel (configuration, clock, storage, the sample type); it imports nothing above it.

`collector`, `alarms`, `api` and `simulators` are folders at the repository's top level, linked here.
"""

__version__ = "0.1.0"
