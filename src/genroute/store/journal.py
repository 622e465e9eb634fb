"""The ledger's local journal: every spend record on disk before its call is answered, until
the database has it; and the dead-letter file of rows the database refused.

A journal is a directory of segment files, `ledger-<instance>-<n>.jsonl`, one JSON record a
line. Each instance appends to its own current segment (one `write` per record, before the
call's response is sent, so a process that is killed keeps every answered call in the OS's
file cache; `sync` makes it durable against a power loss at every ledger flush) and holds
an exclusive `flock` on each of its segments while they exist. A segment is deleted once
every record in it is in the database. While the database is down the segments are the
queue (the spool): the writer replays them when it is back.

A segment nobody holds a lock on belongs to a process that is gone (killed, crashed, or
stopped while the database was down): any instance sharing the directory adopts it,
replays it, and deletes it (`orphans`). Replaying twice is harmless: the ledger keeps one
row per `row_id`.

A new segment is created under a temporary name, locked, then renamed, so that no other
instance can adopt it before its owner holds it. `max_bytes` bounds what this instance
keeps on disk (`full`); the writer then refuses new calls rather than lose their spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from genroute.store.ledger import SpendRecord, Totals, record_from_json
from genroute.store.repo import utcnow

__all__ = [
    "DEAD_LETTERS",
    "DeadLetters",
    "Journal",
    "Orphan",
    "Segment",
    "read_records",
    "short_error",
]

log = logging.getLogger("genroute.ledger")

DEAD_LETTERS = "dead-letter.jsonl"
_PREFIX = "ledger-"
_SUFFIX = ".jsonl"


@dataclass(eq=False)
class Segment:
    """One of this instance's segment files."""

    path: Path
    fd: int
    appended: int = 0  # records written to it
    committed: int = 0  # of those, written to the database from memory
    size: int = 0
    closed: bool = False  # no more records go to it
    dirty: bool = False  # written since its last fdatasync
    replay: bool = False  # its records are read back from the file (memory copies dropped)
    carry: Totals = field(default_factory=Totals)  # spend of records left for the replay

    @property
    def settled(self) -> bool:
        """Whether every record in it is in the database (it may be deleted once closed)."""
        return not self.replay and self.committed >= self.appended


@dataclass(eq=False)
class Orphan:
    """Another (gone) process's segment, locked by us while we replay it."""

    path: Path
    fd: int


def short_error(exc: BaseException) -> str:
    """An error's first line, without the SQL and parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {lines[0] if lines else ''}"[:500]


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_records(fd: int) -> tuple[list[SpendRecord], int]:
    """Every record in an open segment, and how many lines could not be read (a line torn
    by a crash in the middle of its write)."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    records: list[SpendRecord] = []
    bad = 0
    for line in b"".join(chunks).splitlines():
        if not line.strip():
            continue
        try:
            records.append(record_from_json(orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            bad += 1
    return records, bad


class Journal:
    """This instance's segments in `directory` (see the module docstring)."""

    def __init__(
        self, directory: Path, *, max_bytes: int = 256 << 20, segment_records: int = 10_000
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_records = segment_records
        self.instance = uuid.uuid4().hex[:12]
        self.segments: list[Segment] = []
        self._current: Segment | None = None
        self._seq = 0

    def open(self) -> None:
        """Create the directory (raises OSError when it cannot)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        probe = self.directory / f".probe-{self.instance}"
        probe.write_bytes(b"")
        probe.unlink()

    # -- this instance's segments ---------------------------------------------------------

    def _new_segment(self) -> Segment:
        self._seq += 1
        name = f"{_PREFIX}{self.instance}-{self._seq:06d}{_SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(temporary, self.directory / name)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        segment = Segment(self.directory / name, fd)
        self.segments.append(segment)
        return segment

    def append(self, record: SpendRecord) -> Segment:
        """Write one record to the current segment (raises OSError, e.g. a full disk)."""
        segment = self._current
        if segment is None or segment.appended >= self.segment_records:
            self.rotate()
            segment = self._current = self._new_segment()
        line = record.json_line()
        written = os.write(segment.fd, line)
        if written != len(line):  # a short write: the line is torn, the record is not kept
            raise OSError(f"short write to {segment.path} ({written} of {len(line)} bytes)")
        segment.appended += 1
        segment.size += written
        segment.dirty = True
        return segment

    def rotate(self) -> None:
        """Close the current segment: later records go to a new one."""
        if self._current is not None:
            self._current.closed = True
            self._current = None
        self.collect()

    def committed(self, segment: Segment, count: int) -> None:
        """`count` of the segment's records are in the database."""
        segment.committed += count

    def collect(self) -> None:
        """Delete the closed segments whose records are all in the database."""
        for segment in list(self.segments):
            if segment.closed and segment.settled:
                self._delete(segment)

    def _delete(self, segment: Segment) -> None:
        with contextlib.suppress(OSError):
            segment.path.unlink()
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        self.segments.remove(segment)

    def finished(self, segment: Segment) -> None:
        """A replayed segment is in the database: delete it."""
        self._delete(segment)

    def spool(self) -> None:
        """The database is down: every segment still holding records will be read back
        from its file; the current one is closed so that it can be."""
        for segment in self.segments:
            if not segment.settled or segment.replay:
                segment.replay = True
        self.rotate()

    def replayable(self) -> list[Segment]:
        """This instance's closed segments whose records are to be read back, oldest first."""
        return [s for s in self.segments if s.closed and s.replay]

    def read(self, segment: Segment | Orphan) -> tuple[list[SpendRecord], int]:
        """The records of a segment (and how many lines were torn)."""
        return read_records(segment.fd)

    @property
    def size(self) -> int:
        """Bytes this instance keeps in its segments."""
        return sum(s.size for s in self.segments)

    @property
    def backlog(self) -> int:
        """Records in this instance's segments not yet in the database (an upper bound)."""
        return sum(s.appended - (0 if s.replay else s.committed) for s in self.segments)

    @property
    def full(self) -> bool:
        """Whether this instance's segments hold `max_bytes` or more."""
        return self.size >= self.max_bytes

    @property
    def current(self) -> Segment | None:
        """The segment records are appended to now (None until the next record)."""
        return self._current

    async def sync(self) -> None:
        """Make what was appended durable (fdatasync, off the event loop)."""
        for segment in [s for s in self.segments if s.dirty]:
            segment.dirty = False
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.fdatasync, segment.fd)

    def close(self) -> None:
        """Sync and close every segment: those fully in the database are deleted, the
        others stay for the next start (or another instance) to replay."""
        for segment in list(self.segments):
            with contextlib.suppress(OSError):
                os.fdatasync(segment.fd)
            if segment.settled:
                self._delete(segment)
            else:
                with contextlib.suppress(OSError):
                    os.close(segment.fd)
        self.segments.clear()
        self._current = None

    # -- other processes' segments --------------------------------------------------------

    def _candidates(self) -> Iterator[Path]:
        mine = {s.path.name for s in self.segments}
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and name not in mine:
                yield Path(entry.path)

    def orphans(self) -> list[Orphan]:
        """Segments no live process holds, now locked by this one (release each with
        `adopted` after replaying it, or `abandon` to leave it)."""
        found: list[Orphan] = []
        for path in self._candidates():
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            if not _lock(fd) or not path.exists():  # held by its owner, or just replayed
                os.close(fd)
                continue
            found.append(Orphan(path, fd))
        return found

    def adopted(self, orphan: Orphan) -> None:
        """An orphan is in the database: delete it."""
        with contextlib.suppress(OSError):
            orphan.path.unlink()
        os.close(orphan.fd)

    def abandon(self, orphan: Orphan) -> None:
        """Leave an orphan for later (its lock released)."""
        os.close(orphan.fd)


class DeadLetters:
    """Rows the database refused, one JSON line each with the error, in `dead-letter.jsonl`
    (or, without a directory, in the log at ERROR)."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else Path(directory) / DEAD_LETTERS

    def add(self, record: SpendRecord, error: BaseException, *, counted: bool) -> None:
        """Set a row aside; `counted`: whether its spend still reached its budgets."""
        entry: dict[str, Any] = {
            "record": record.to_json(),
            "error": short_error(error),
            "at": utcnow().isoformat(),
            "spend_counted": counted,
        }
        try:
            line = orjson.dumps(entry, default=str) + b"\n"
        except TypeError:
            line = repr(entry).encode("utf-8", "replace") + b"\n"
        if self.path is not None:
            try:
                with open(self.path, "ab") as handle:
                    handle.write(line)
                return
            except OSError:
                log.exception("spend ledger: cannot write the dead-letter file %s", self.path)
        log.error("spend ledger: row set aside: %s", line.decode(errors="replace").rstrip())
