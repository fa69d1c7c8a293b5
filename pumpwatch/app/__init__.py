"""The composition root: `system.System` wires the parts into one process (collector sources → the fan-out
`System.emit` → live snapshot, historian writer, alarm service; the API's context), `serve` runs uvicorn,
`metrics` exports a System to Prometheus, `cli/` is the command line, `policy` its exposure rules,
`mqtt_acl` and `mosquitto` deployment helpers. Nothing in the package imports it (docs/architecture.md)."""
