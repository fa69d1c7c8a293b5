"""pumpwatch: monitoring for sewer pump stations, treatment plants and their controllers.

This package is the shared kernel: configuration (fleet files), the clock, the historian schema and the
command line. `collector`, `alarms`, `simulators` and `api` build on it; `simulators` never import
`collector`, `alarms` or `api`, so the field side of every integration test stays a black box.
"""

__version__ = "0.1.0"
