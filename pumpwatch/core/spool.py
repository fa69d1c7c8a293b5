"""Store-and-forward spool: what the database cannot take now waits on local disk, in order.

Format: a folder of append-only segment files `<seq:016d>.seg`, each a run of records

    [u32 length][u32 crc32 of payload][payload]      (little endian)

and a `cursor` file `"<seq> <offset>"`: everything before it has been delivered. A record is whatever bytes
the caller gives (a batch of sample rows, one alarm event) plus its row count, so a full spool can count
what it drops exactly.

Why segment files and not SQLite: appends are one `write` + one `fsync` per batch (about one per second),
dropping the oldest data is deleting a file (O(1), no vacuum), and the bytes on disk are exactly the
capacity we state. SQLite would need row deletes and a VACUUM to give space back.

Durability: `append` returns after `fsync` of the segment (and of the folder when a segment is created), so
a batch accepted by the spool survives a crash or power cut; what is lost in a crash is only what had not
reached the spool yet (the writer's current flush interval). The cursor is replaced atomically
(write + rename, not fsync'd) after each delivered record, so a process crash re-delivers at most the one
record being delivered, and a power cut at most the records delivered since the cursor last reached the
disk; both users make that harmless (samples are keyed by (point, time); alarm transitions are
no-ops when the alarm is already in that state).

Recovery: at open every segment is scanned; a torn or corrupt tail (a crash mid-write) is cut off and its
bytes logged. Full spool: the oldest whole segments are deleted until the new record fits, and the rows they
held that were not yet delivered are added to `dropped_rows`. No disk space (ENOSPC or any OSError while
writing): the partial record is cut off, the oldest segment is dropped and the write tried once more; if
it still fails, the record itself is dropped and counted. The spool never raises on a write.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_HEAD = struct.Struct("<II")  # length, crc32
_COUNT = struct.Struct("<I")  # rows in the record, first field of the stored payload
_SUFFIX = ".seg"
MAX_RECORD = 256 * 1024 * 1024


class SpoolLocked(RuntimeError):
    """Another process has this spool folder open (two writers would interleave their records)."""


@dataclass
class _Segment:
    seq: int
    path: Path
    size: int = 0
    # (end offset, rows) of every record, in order: enough to count exactly what a drop loses
    records: deque[tuple[int, int]] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    pending_records: int
    pending_rows: int
    bytes: int
    capacity_bytes: int
    dropped_rows: int
    dropped_records: int
    write_errors: int
    last_error: str | None

    @property
    def fill_pct(self) -> float:
        return 100.0 * self.bytes / self.capacity_bytes if self.capacity_bytes else 0.0


class Spool:
    """A bounded, durable FIFO of byte records on local disk. Thread-safe (one lock)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        capacity_bytes: int = 4 * 1024**3,
        segment_bytes: int | None = None,
        fsync: bool = True,
    ) -> None:
        if capacity_bytes < 4096:
            raise ValueError(f"spool capacity {capacity_bytes} bytes is too small (at least 4096)")
        self.folder = Path(folder)
        self.capacity_bytes = capacity_bytes
        self.segment_bytes = segment_bytes or max(4096, min(64 * 1024**2, capacity_bytes // 32))
        self.fsync = fsync
        self._lock = threading.Lock()
        self._segments: deque[_Segment] = deque()  # [0] is the one being read, [-1] the one written
        self._ci = 0  # index in _segments[0].records of the next record to deliver
        self._next_seq = 0
        self._fd: int | None = None  # append descriptor of _segments[-1]
        self._bytes = 0
        self._pending_records = 0
        self._pending_rows = 0
        self.dropped_rows = 0
        self.dropped_records = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.folder / "lock", "a+b")  # noqa: SIM115 (held while open)
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise SpoolLocked(f"spool {self.folder} is in use by another process") from None
        self._recover()

    # -- open / recovery ---------------------------------------------------------------------------------
    def _recover(self) -> None:
        cur_seq, cur_off = self._read_cursor()
        self._next_seq = cur_seq
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            self._next_seq = max(self._next_seq, seq + 1)
            if not path.is_file():
                log.error("spool %s: %s is not a regular file; ignored", self.folder, path.name)
                continue
            seg = _Segment(seq, path)
            data = path.read_bytes()
            off = 0
            while off + _HEAD.size <= len(data):
                length, crc = _HEAD.unpack_from(data, off)
                end = off + _HEAD.size + length
                if length < _COUNT.size or length > MAX_RECORD or end > len(data):
                    break
                payload = data[off + _HEAD.size : end]
                if zlib.crc32(payload) != crc:
                    break
                seg.records.append((end, _COUNT.unpack_from(payload)[0]))
                off = end
            if off < len(data):
                log.error(
                    "spool %s: cut %d bytes of a torn or corrupt record at offset %d (a crash mid-write)",
                    path.name,
                    len(data) - off,
                    off,
                )
                with open(path, "r+b") as f:
                    f.truncate(off)
            seg.size = off
            delivered = seq < cur_seq or (seq == cur_seq and off <= cur_off)
            if delivered or not seg.records:
                path.unlink()
                continue
            self._segments.append(seg)
        self._ci = 0
        if self._segments and self._segments[0].seq == cur_seq:
            self._ci = sum(1 for end, _ in self._segments[0].records if end <= cur_off)
        self._bytes = sum(s.size for s in self._segments)
        for i, seg in enumerate(self._segments):
            live = list(seg.records)[self._ci :] if i == 0 else seg.records
            self._pending_records += len(live)
            self._pending_rows += sum(n for _, n in live)
        if self._pending_records:
            log.warning(
                "spool %s: %d records (%d rows) from before the restart wait for delivery",
                self.folder,
                self._pending_records,
                self._pending_rows,
            )

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seq, off = (self.folder / "cursor").read_text().split()
            return int(seq), int(off)
        except (OSError, ValueError):
            return 0, 0

    def _write_cursor(self) -> None:
        if self._segments:
            seg = self._segments[0]
            cur = (seg.seq, seg.records[self._ci - 1][0] if self._ci else 0)
        else:
            cur = (self._next_seq, 0)
        tmp = self.folder / "cursor.tmp"
        tmp.write_text(f"{cur[0]} {cur[1]}\n")
        os.replace(tmp, self.folder / "cursor")

    # -- status ------------------------------------------------------------------------------------------
    def status(self) -> SpoolStatus:
        with self._lock:
            return SpoolStatus(
                self._pending_records,
                self._pending_rows,
                self._bytes,
                self.capacity_bytes,
                self.dropped_rows,
                self.dropped_records,
                self.write_errors,
                self.last_error,
            )

    def __len__(self) -> int:
        return self._pending_records

    @property
    def empty(self) -> bool:
        return self._pending_records == 0

    # -- writing -----------------------------------------------------------------------------------------
    def append(self, data: bytes, rows: int = 1) -> bool:
        """Store one record durably. False (and counted in `dropped_rows`) if even the disk refused it."""
        payload = _COUNT.pack(rows) + data
        record = _HEAD.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if len(record) > self.capacity_bytes or len(payload) > MAX_RECORD:
                self._count_drop(1, rows, f"a record of {len(record)} bytes exceeds the spool capacity")
                return False
            self._make_room(len(record))
            for attempt in (1, 2):
                try:
                    self._write(record, rows)
                    return True
                except OSError as exc:
                    self.write_errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.error("spool write failed (%s), attempt %d", exc, attempt)
                    self._undo_partial()
                    if attempt == 1:  # make space: the oldest segment goes, and we start a fresh file
                        if len(self._segments) > 1 or (self._segments and self._segments[0].records):
                            self._drop_oldest()
                        self._close_fd()
            self._count_drop(1, rows, self.last_error)
            return False

    def _count_drop(self, records: int, rows: int, why: str | None) -> None:
        self.dropped_records += records
        self.dropped_rows += rows
        log.error("spool dropped %d rows (%s); %d rows dropped in all", rows, why, self.dropped_rows)

    def _make_room(self, need: int) -> None:
        while self._bytes + need > self.capacity_bytes and self._segments:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        seg = self._segments.popleft()
        lost = list(seg.records)[self._ci :]
        self._ci = 0
        self._bytes -= seg.size
        if lost:
            n = sum(r for _, r in lost)
            self._pending_records -= len(lost)
            self._pending_rows -= n
            self._count_drop(len(lost), n, "spool full: the oldest segment was deleted")
        if not self._segments:
            self._close_fd()
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _roll(self) -> None:
        self._close_fd()
        seq = self._next_seq
        self._next_seq += 1
        seg = _Segment(seq, self.folder / f"{seq:016d}{_SUFFIX}")
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._segments.append(seg)
        if self.fsync:
            dfd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _write(self, record: bytes, rows: int) -> None:
        last = self._segments[-1] if self._segments else None
        if last is None or (last.size and last.size + len(record) > self.segment_bytes):
            self._roll()
        elif self._fd is None:
            self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
        seg = self._segments[-1]
        fd = self._fd
        assert fd is not None  # opened just above
        view = memoryview(record)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(fd)
        seg.size += len(record)
        seg.records.append((seg.size, rows))
        self._bytes += len(record)
        self._pending_records += 1
        self._pending_rows += rows

    def _undo_partial(self) -> None:
        """Cut whatever part of a failed record reached the file, so the framing stays clean."""
        if self._segments and self._fd is not None:
            try:
                os.ftruncate(self._fd, self._segments[-1].size)
            except OSError:
                pass
        if self._segments and not self._segments[-1].records:  # an empty file we just created
            seg = self._segments.pop()
            self._close_fd()
            try:
                seg.path.unlink()
            except OSError:
                pass

    # -- reading -----------------------------------------------------------------------------------------
    def peek(self) -> bytes | None:
        """The oldest undelivered record's data, or None when there is none. Call `commit` once stored."""
        with self._lock:
            while self._segments:
                seg = self._segments[0]
                if self._ci >= len(seg.records):
                    if len(self._segments) == 1:
                        return None
                    self._retire_first()
                    continue
                start = seg.records[self._ci - 1][0] if self._ci else 0
                with open(seg.path, "rb") as f:
                    f.seek(start)
                    length, crc = _HEAD.unpack(f.read(_HEAD.size))
                    payload = f.read(length)
                if len(payload) != length or zlib.crc32(payload) != crc:
                    # The file changed under us (disk fault, someone edited it): count and skip it.
                    self.last_error = f"corrupt record in {seg.path.name} at offset {start}"
                    log.error("spool: %s; the rest of that segment is dropped", self.last_error)
                    self._drop_oldest()
                    continue
                return payload[_COUNT.size :]
            return None

    def commit(self) -> None:
        """The record `peek` returned is stored downstream: move past it, for good."""
        with self._lock:
            seg = self._segments[0]
            self._pending_records -= 1
            self._pending_rows -= seg.records[self._ci][1]
            self._ci += 1
            if self._ci >= len(seg.records):
                self._retire_first()
            self._write_cursor()

    def _retire_first(self) -> None:
        """Delete the first segment, every record of which is delivered."""
        seg = self._segments.popleft()
        if not self._segments:
            self._close_fd()
        self._bytes -= seg.size
        self._ci = 0
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        with self._lock:
            self._close_fd()
            self._lockfile.close()


class Forwarder(Generic[T]):
    """Store-and-forward over a `Spool`: the one queue the historian writer (sample batches) and the alarm
    service (journal events) both put what the database cannot take now into, and take it back out of in
    order. The caller keeps the one rule that makes it ordered: while the spool holds anything, new items
    go behind it (`park`), never straight to the database.

    `encode(item) -> (bytes, rows)` and `decode(bytes) -> item` are the caller's format; `deliver(item)` its
    database write, run in a worker thread. `forward_one()` delivers the oldest record and only then removes
    it (a crash in between delivers it again: both callers' writes are idempotent)."""

    def __init__(
        self,
        spool: Spool,
        encode: Callable[[T], tuple[bytes, int]],
        decode: Callable[[bytes], T],
        deliver: Callable[[T], object],
    ) -> None:
        self.spool = spool
        self._encode = encode
        self._decode = decode
        self._deliver = deliver

    @property
    def empty(self) -> bool:
        return self.spool.empty

    async def park(self, item: T) -> bool:
        """Append `item` behind everything spooled (fsync'd). False if the spool had to drop it (counted)."""
        data, rows = self._encode(item)
        return await asyncio.to_thread(self.spool.append, data, rows)

    async def forward_one(self) -> T | None:
        """Deliver the oldest spooled item and remove it; None when the spool is empty. Raises what
        `deliver` raised, and the item stays first in line."""
        data = await asyncio.to_thread(self.spool.peek)
        if data is None:
            return None
        item = self._decode(data)
        await asyncio.to_thread(self._deliver, item)
        await asyncio.to_thread(self.spool.commit)
        return item
