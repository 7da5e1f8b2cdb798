"""The disk result cache: one file per entry in a directory that a machine's workers share.

The directory is bounded: every ``SWEEP_EVERY`` stores, a worker sweeps one of its 256
subdirectories (the next, in turn), deleting the entries older than the TTL, temporary files
left by a store that died half-way, and, past ``max_entries / 256`` entries in it, the
oldest. Keys are sha256 digests, so each subdirectory holds its share of the entries and the
whole stays near ``max_entries`` (plus the stores between two sweeps of a subdirectory).
Before, an entry was deleted only when its own key was looked up again, which traffic that
rarely repeats (the common case) never did: the directory grew until the disk was full.

Files are read and written in a thread: a disk that hangs (a network mount) holds neither
the event loop nor a request past its deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
import tempfile
import time
from pathlib import Path

from modelpilot.serving.cache_entries import Outputs, pack, unpack
from modelpilot.serving.result_cache import ResultCache

logger = logging.getLogger(__name__)

SUBDIRECTORIES = 256
"""Entries go to a subdirectory by the first two hex digits of their key."""

SWEEP_EVERY = 16
"""Stores between two sweeps of a subdirectory, by one process: a full round of the
directory every 4,096 stores, each sweep reading one subdirectory (``max_entries / 256``
entries and what was stored since its last sweep)."""

TEMPORARY_PREFIX = ".entry-"

STALE_TEMPORARY_SECONDS = 60.0
"""A temporary file this old is a store's that died before it renamed it (a store takes
milliseconds): a sweep deletes it."""


class DiskResultCache(ResultCache):
    """One file per entry under ``root``; expired by its modification time."""

    def __init__(self, ttl_seconds: float, root: Path, max_entries: int = 10_000) -> None:
        super().__init__(ttl_seconds)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self._stores = itertools.count(1)
        # Each process starts its round at a subdirectory of its own: the workers sharing
        # the directory sweep different parts of it.
        self._next_sweep = itertools.count(random.randrange(SUBDIRECTORIES))

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def _get(self, key: str) -> Outputs | None:
        return await asyncio.to_thread(self._read, key)

    async def _set(self, key: str, outputs: Outputs) -> None:
        data = pack(outputs)  # Unstorable before any file is made
        await asyncio.to_thread(self._write, key, data)

    async def _discard(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    def _read(self, key: str) -> Outputs | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if stat.st_mtime + self.ttl < time.time():
            _remove(path)
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # expired and deleted by a sweep in between
            return None
        return unpack(data)

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            # A full disk fails at the first byte or half-way: the partial file would stay
            # for ever (lookups only read final names), keeping a full disk fuller.
            _remove(Path(tmp))
            raise
        if next(self._stores) % SWEEP_EVERY == 0:
            self.sweep(next(self._next_sweep) % SUBDIRECTORIES)

    def sweep(self, index: int) -> int:
        """Delete subdirectory ``index``'s expired entries, its stale temporary files, and
        its oldest entries past its share of ``max_entries``; returns how many went."""
        folder = self.root / f"{index:02x}"
        now = time.time()
        kept: list[tuple[float, str]] = []
        removed = 0
        try:
            with os.scandir(folder) as found:
                for entry in found:
                    try:
                        modified = entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:
                        continue
                    if entry.name.startswith(TEMPORARY_PREFIX):
                        expired = modified + STALE_TEMPORARY_SECONDS < now
                    else:
                        expired = modified + self.ttl < now
                    if expired:
                        removed += _remove(Path(entry.path))
                    elif not entry.name.startswith(TEMPORARY_PREFIX):
                        kept.append((modified, entry.path))
        except FileNotFoundError:
            return removed
        share = math.ceil(self.max_entries / SUBDIRECTORIES)
        if len(kept) > share:
            kept.sort()
            for _, path in kept[: len(kept) - share]:
                removed += _remove(Path(path))
        return removed


def _remove(path: Path) -> int:
    """Delete ``path``; 1 if it went, 0 if it was gone already or cannot go (a read-only
    disk: the lookup that found it expired is still a miss, not a failed cache)."""
    try:
        path.unlink()
    except OSError:
        return 0
    return 1
