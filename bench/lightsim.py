"""A light Modbus TCP simulator: one asyncio server answers every station from precomputed registers.

Run as its own process (`python -m bench.lightsim COUNT BASE`) so its CPU is not counted as the collector's.
Listens on COUNT loopback ports from BASE up (skipping ports in use: one endpoint per station, as the
fleet config wants) and prints them as JSON. Answers FC1-4 for any unit id and address with a pattern
that changes every request (values move, so nothing downstream can shortcut on unchanged values).
"""

from __future__ import annotations

import asyncio
import json
import resource
import struct
import sys

_HDR = struct.Struct(">HHHBB")  # transaction, protocol, length, unit, function
_REQ = struct.Struct(">HH")  # start, count
PATTERNS = [struct.pack(">125H", *[(i * 37 + k * 11) % 400 for i in range(125)]) for k in range(16)]


class Server(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.t = transport
        self.buf = b""
        self.k = 0

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while len(buf) >= 12:
            tid, _proto, length, unit, fc = _HDR.unpack_from(buf)
            end = 6 + length
            if len(buf) < end:
                break
            start, count = _REQ.unpack_from(buf, 8)
            self.k = (self.k + 1) & 15
            if fc in (3, 4):
                body = PATTERNS[self.k][: 2 * count]
                pdu = bytes((fc, len(body))) + body
            elif fc in (1, 2):
                nbytes = (count + 7) // 8
                pdu = bytes((fc, nbytes)) + bytes(nbytes)
            else:
                pdu = bytes((fc | 0x80, 1))
            out.append(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
            buf = buf[end:]
        self.buf = buf
        if out:
            self.t.write(b"".join(out))


def raise_fd_limit(n: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, soft), max(n, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(count: int, base: int) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    ports: list[int] = []
    port = base
    while len(ports) < count and port < 65000:
        try:
            await loop.create_server(Server, "127.0.0.1", port, backlog=64)
            ports.append(port)
        except OSError:
            pass
        port += 1
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()  # the simulator should cost as little as possible; the collector side is measured
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
