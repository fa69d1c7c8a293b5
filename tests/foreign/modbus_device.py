"""A Modbus TCP device served by pyModbusTCP (not pymodbus), for tests/e2e/test_foreign_devices.py.

    python -m tests.foreign.modbus_device PORT VALUES_JSON

VALUES_JSON: {"coils"|"discrete_inputs"|"holding_registers"|"input_registers": {"ADDRESS": [v, ...]}}, wire
addresses. Serves until killed; the test freezes it (SIGSTOP: the connection stays open, nothing answers),
thaws it (SIGCONT) or kills it (SIGKILL: connection reset, then refused).
"""

from __future__ import annotations

import json
import sys
import time

from pyModbusTCP.server import ModbusServer


def main() -> None:
    port, values = int(sys.argv[1]), json.loads(sys.argv[2])
    server = ModbusServer(host="127.0.0.1", port=port, no_block=True)
    bank = server.data_bank
    setters = {
        "coils": bank.set_coils,
        "discrete_inputs": bank.set_discrete_inputs,
        "holding_registers": bank.set_holding_registers,
        "input_registers": bank.set_input_registers,
    }
    for table, blocks in values.items():
        for address, words in blocks.items():
            setters[table](int(address), words)
    server.start()
    sys.stdout.write("serving\n")
    sys.stdout.flush()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
