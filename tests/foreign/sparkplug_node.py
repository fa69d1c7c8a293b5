"""A Sparkplug B edge node written with pysparkplug (not pumpwatch's codec), for
tests/e2e/test_foreign_devices.py. Runs in its own venv (tests/foreign/venv.py).

    python sparkplug_node.py HOST PORT GROUP NODE DEVICE

Metrics use the vendor's own names (the test's metric map maps them onto pumpwatch's points). Commands on
standard input, one per line, each answered "ok" on standard output:
    set NAME VALUE   a node metric (NDATA); `dset` for the device's (DDATA); values are JSON
    beat             publish the heartbeats (node and device) so both are heard
    ddeath           deregister the device (DDEATH)
    dbirth           register it again (DBIRTH)
    stop             a clean disconnect (pysparkplug publishes NDEATH first)
The test kills the process (SIGKILL) for a death by the broker's will.
"""

from __future__ import annotations

import json
import sys
import time

import pysparkplug as psp

NODE_METRICS = {"Power/MainsFail": psp.DataType.BOOLEAN, "Beat": psp.DataType.INT64}
DEVICE_METRICS = {
    "Level": psp.DataType.DOUBLE,
    "Pump1/Run": psp.DataType.BOOLEAN,
    "Power/MainsFail": psp.DataType.BOOLEAN,
    "Starts1": psp.DataType.INT64,
    "Beat": psp.DataType.INT64,
}


def metric(name: str, datatype: psp.DataType, value: object) -> psp.Metric:
    return psp.Metric(timestamp=psp.get_current_timestamp(), name=name, datatype=datatype, value=value)


def main() -> None:
    host, port, group, node_id, device_id = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
    node_values: dict[str, object] = {"Power/MainsFail": False, "Beat": 0}
    dev_values: dict[str, object] = {
        "Level": 1.05,
        "Pump1/Run": True,
        "Power/MainsFail": False,
        "Starts1": 42,
    }
    dev_values["Beat"] = 0
    node = psp.EdgeNode(group, node_id, [metric(n, t, node_values[n]) for n, t in NODE_METRICS.items()])

    def device() -> psp.Device:
        return psp.Device(device_id, [metric(n, t, dev_values[n]) for n, t in DEVICE_METRICS.items()])

    node.register(device())
    node.connect(host, port=port, keepalive=5)
    time.sleep(0.5)  # paho's loop thread publishes the births
    out = sys.stdout
    out.write("ok\n")
    out.flush()
    for line in sys.stdin:
        cmd, *args = line.split(maxsplit=2)
        if cmd == "set":
            node_values[args[0]] = json.loads(args[1])
            node.update([metric(args[0], NODE_METRICS[args[0]], node_values[args[0]])])
        elif cmd == "dset":
            dev_values[args[0]] = json.loads(args[1])
            node.update_device(device_id, [metric(args[0], DEVICE_METRICS[args[0]], dev_values[args[0]])])
        elif cmd == "beat":
            node_values["Beat"] = int(node_values["Beat"]) + 1  # type: ignore[call-overload]
            node.update([metric("Beat", NODE_METRICS["Beat"], node_values["Beat"])])
            if device_id in node.devices:
                dev_values["Beat"] = int(dev_values["Beat"]) + 1  # type: ignore[call-overload]
                node.update_device(device_id, [metric("Beat", DEVICE_METRICS["Beat"], dev_values["Beat"])])
        elif cmd == "ddeath":
            node.deregister(device_id)
        elif cmd == "dbirth":
            node.register(device())
        elif cmd == "stop":
            node.disconnect()
        out.write("ok\n")
        out.flush()


if __name__ == "__main__":
    main()
