"""The embedded inference log's batches, kept in append-only files beside its database.

In SQLite a logged round is one row of a few hundred kilobytes, and storing it there costs
three times over: its pages go to the write-ahead log and again to the database at each
checkpoint, and trimming it reads every page back (SQLite walks the row's overflow chain to
free it, and overwrites each freed page with zeros where it was built with secure delete, as
Debian's is). So the embedded log keeps only a small row per batch in SQLite (model, version,
time, size) and writes the batch's contents, once, to the end of a segment file; old batches
go when every batch in their file has gone, with the file. In a scratch measurement (rounds
of 2,100 one-row requests of 20 64-bit numbers, four rounds a transaction, 200,000 requests
kept, 600,000 written) this took the log from 610-650 ns of CPU per request to 210-235.

A segment belongs to one writer (the monitoring process of one server process; several may
log to the same database) until it passes ``SEGMENT_BYTES``. Writers append, and the log
deletes files no batch refers to, only while holding the database's write lock, so that a
file is never deleted between a writer's append and the commit of the row that refers to it;
a writer whose file was deleted (all its batches trimmed by another) starts a new one. A crash
between an append and its commit leaves bytes no row refers to, which go with their file; an
append that fails (the disk full) is taken back, and leaves no file behind (a file with no
bytes in it holds no batch: writers delete such files as they start one).

Commits are as durable as the database's: the appends wait for the disk no more than its
commits do (``Registry.companion_engine``). After a machine crash a committed row may refer
to contents that never reached the disk: its record is ``UnreadableRecord``, as is one that
was overwritten since, and the log reads its batch as missing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Any

SEGMENT_BYTES = 16 << 20
"""Size past which a writer starts a new segment: what the log may hold beyond its bound,
per writer, while the batches of its oldest segment are trimmed one by one."""

SUFFIX = ".seg"

FIELDS = ("request_ids", "times", "row_counts", "inputs", "outputs", "packed")
"""A batch's columns that live in its segment record (text but ``packed``, which is bytes)."""

_HEADER = struct.Struct("<6q")
"""Each record starts with the length of each of ``FIELDS`` (-1: ``packed`` is None)."""


class UnreadableRecord(ValueError):
    """A record that does not decode: cut short, zeroed or overwritten (its message names
    the file and the offset)."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a batch's record is: segment file name, offset and length."""

    segment: str
    offset: int
    length: int


class Segments:
    """Batch records in the segment files of one directory, for one writer and any reader."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._writer = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._sequence = 0
        self._file: FileIO | None = None  # the open segment this writer appends to
        self._name = ""

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def append(self, record: bytes) -> Place:
        """Write ``record`` at the end of this writer's segment. Call it only while holding
        the database's write lock, and commit the row that refers to it before letting go.

        A failed write (the disk full, or the file past the size limit) is taken back
        (``_take_back``): on a full disk the log retries about once a second, and a new
        file for each try left 136 empty files behind in two minutes (some 86,000 a day),
        which on a small file system use up its inodes too."""
        file = self._current()
        offset = file.seek(0, os.SEEK_END)
        try:
            _write_all(file, record)
        except OSError:
            self._take_back(file, offset)
            raise
        return Place(self._name, offset, len(record))

    def _take_back(self, file: FileIO, offset: int) -> None:
        """Leave the segment as it was before a failed append: cut back to ``offset``, and
        a file the append made, gone (its name free for the next). Shortening a file needs
        no free space; if it fails all the same, what got there stays behind (no row refers
        to it, and it goes with its file), and the next append starts another file rather
        than trust this one's offsets."""
        name = self._name
        try:
            if offset:
                file.truncate(offset)
                file.seek(offset)
                return
            self.close()
            (self.directory / name).unlink()
            self._sequence -= 1
        except OSError:
            self.close()

    def read(self, place: Place, only: str | None = None) -> dict[str, Any] | None:
        """The fields of the record at ``place`` (just ``only``, if given); None if its
        segment has gone (trimmed since the row was read). ``UnreadableRecord`` if the
        segment holds something else there: after a machine crash a committed row's contents
        may not have reached the disk, and a file may have been damaged since."""
        path = self.directory / place.segment
        try:
            with open(path, "rb") as file:
                file.seek(place.offset)
                if only is None:
                    return decode(file.read(place.length))
                lengths = _HEADER.unpack(file.read(_HEADER.size))
                if _HEADER.size + sum(max(n, 0) for n in lengths) != place.length:
                    raise struct.error("a segment record of the wrong length")
                index = FIELDS.index(only)
                file.seek(sum(max(n, 0) for n in lengths[:index]), os.SEEK_CUR)
                return {only: _field(only, lengths[index], file.read(max(lengths[index], 0)))}
        except FileNotFoundError:
            return None
        except (struct.error, UnicodeDecodeError) as exc:
            raise UnreadableRecord(f"{path}, the record at byte {place.offset}: {exc}") from None

    def sweep(self, referenced: Collection[str]) -> int:
        """Delete the segments no batch refers to (under the database's write lock: then no
        other writer is between an append and its commit). Returns how many went."""
        removed = 0
        for path in self.directory.glob(f"*{SUFFIX}"):
            if path.name in referenced:
                continue
            if path.name == self._name:
                self.close()
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def _current(self) -> FileIO:
        file = self._file
        if file is not None and (file.tell() >= self.segment_bytes or _unlinked(file)):
            self.close()  # full, or deleted by another writer's sweep: start another
            file = None
        if file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sweep_empty()
            self._sequence += 1
            self._name = f"{self._writer}-{self._sequence:06d}{SUFFIX}"
            # Unbuffered: a failed write leaves nothing waiting in a buffer to reach the file
            # after it has been cut back.
            file = self._file = open(self.directory / self._name, "ab", buffering=0)  # noqa: SIM115
        return file

    def _sweep_empty(self) -> None:
        """Delete the empty segment files: no batch is in them, and (under the write lock)
        none is a writer's between making its file and writing to it. Earlier releases left
        one for every failed append; a writer whose file this was starts another, as after
        a sweep. Once a segment, so at a writer's first append too: a few files to list."""
        for path in self.directory.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to delete
                if path.stat().st_size == 0:
                    path.unlink()


def encode(row: Mapping[str, Any]) -> bytes:
    """A batch row's ``FIELDS`` as one record."""
    parts: list[bytes] = []
    lengths: list[int] = []
    for name in FIELDS:
        value = row[name]
        if value is None:
            parts.append(b"")
            lengths.append(-1)
        else:
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(data)
            lengths.append(len(data))
    return b"".join([_HEADER.pack(*lengths), *parts])


def decode(record: bytes) -> dict[str, Any]:
    """The fields :func:`encode` wrote: text again, ``packed`` as bytes or None."""
    lengths = _HEADER.unpack_from(record)
    out: dict[str, Any] = {}
    offset = _HEADER.size
    for name, length in zip(FIELDS, lengths, strict=True):
        out[name] = _field(name, length, record[offset : offset + max(length, 0)])
        offset += max(length, 0)
    if offset != len(record):
        raise struct.error("a segment record of the wrong length")
    return out


def _field(name: str, length: int, data: bytes) -> Any:
    if length < 0:
        return None
    if len(data) != length:
        raise struct.error("a segment record cut short")
    return data if name == "packed" else data.decode()


def _write_all(file: FileIO, data: bytes) -> None:
    """Write all of ``data`` (an unbuffered file may take part of it; the rest then raises
    the reason, such as ENOSPC or EFBIG)."""
    with memoryview(data) as view:
        written = 0
        while written < len(view):
            taken = file.write(view[written:])
            if not taken:  # not seen from a regular file, but never loop on it
                raise OSError(errno.EIO, "a segment file took no bytes")
            written += taken


def _unlinked(file: FileIO) -> bool:
    return os.fstat(file.fileno()).st_nlink == 0
