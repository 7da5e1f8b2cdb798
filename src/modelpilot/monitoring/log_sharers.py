"""The other servers of one SQLite registry directory, which share its inference log.

Two servers started on one registry directory both write the log file beside it (SQLite lets
several processes share a file). Servers of one PostgreSQL registry know that they share
theirs, and so wait for each other's predictions to reach it before refusing a label, and
read each other's labels (``Monitor.log_shared``); servers of one directory did neither: a
label posted to the one that had not answered was refused at once (about half of them, behind
a load balancer), and their quality windows diverged. A single server must not pay for that
(each label for an unknown id would wait 2.5 s), so each server says that it is there with a
file it holds locked (``flock``) in ``inference-log.servers`` beside the log, for as long as
it lives, and each looks for the others' whenever it needs to know. A file nobody holds is of
a server that is gone: it is removed by whoever finds it.

Workers of one server (``serve --workers``) share a name (their worker directory's), so that
they are not taken for other servers: they know each other through their exchange.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
import weakref
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: each server then knows of no other
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

DIRECTORY = "inference-log.servers"
"""Where the servers' files are, beside the registry's database (and the inference log's)."""

SUFFIX = ".server"


class LogSharers:
    """This server's file among the servers of one registry directory, and the others'."""

    def __init__(self, directory: Path, group: str | None = None) -> None:
        """``group``: the name this server's processes share (a new one if None)."""
        self.directory = directory
        self.group = group or uuid.uuid4().hex[:12]
        self._path: Path | None = None
        self._lock = threading.Lock()
        self._seen: frozenset[str] = frozenset()
        if fcntl is None:
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Locked before it has its name: a server looking meanwhile would take a file
            # nobody holds for one of a server gone, and remove it.
            made = directory / f".{uuid.uuid4().hex}.new"
            fd = os.open(made, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = directory / f"{self.group}.{os.getpid()}.{uuid.uuid4().hex[:8]}{SUFFIX}"
            os.rename(made, path)
        except OSError as exc:
            logger.warning(
                "cannot say in %s that this server uses the registry's inference log (%s): "
                "other servers of the registry will not wait for its predictions",
                directory,
                exc,
            )
            return
        self._path = path
        self._closer = weakref.finalize(self, _release, fd, path)

    @classmethod
    def of(cls, database: str, workers: Path | None) -> LogSharers | None:
        """The sharers of the registry whose database is at the URL ``database``: None for
        PostgreSQL (whose servers share the log whatever they are); ``workers``: the worker
        directory of this server's workers, if it has some."""
        if not database.startswith("sqlite:///"):
            return None
        group = None
        if workers is not None:
            group = hashlib.sha256(str(workers.resolve()).encode()).hexdigest()[:12]
        return cls(Path(database.removeprefix("sqlite:///")).parent / DIRECTORY, group)

    def others(self) -> frozenset[str]:
        """The other servers alive now, by group; said in the log when it changes."""
        alive = frozenset(self._alive())
        with self._lock:
            seen, self._seen = self._seen, alive
        if alive and not seen:
            logger.info(
                "another server uses this SQLite registry and its inference log (%s): labels "
                "for predictions not on record yet wait for them, and each server reads the "
                "labels the others take, as servers of one PostgreSQL registry do",
                self.directory,
            )
        elif seen and not alive:
            logger.info("no other server uses this SQLite registry's inference log any more")
        return alive

    def _alive(self) -> set[str]:
        if fcntl is None or self._path is None:
            return set()
        alive: set[str] = set()
        try:
            names = [p for p in self.directory.iterdir() if p.name.endswith(SUFFIX)]
        except OSError:
            return alive
        for path in names:
            group = path.name.split(".", 1)[0]
            if group == self.group:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # removed meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                alive.add(group)
            except OSError:
                continue
            else:
                path.unlink(missing_ok=True)  # nobody holds it: its server is gone
            finally:
                os.close(fd)
        return alive

    def close(self) -> None:
        """Let the others know that this server is gone."""
        if self._path is not None:
            self._closer()


def _release(fd: int, path: Path) -> None:
    path.unlink(missing_ok=True)
    os.close(fd)
