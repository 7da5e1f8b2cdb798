"""Servers of one SQLite registry directory share its inference log, as servers of one
PostgreSQL registry do theirs: a label posted to either waits for the other's prediction to
reach the log, and reaches both servers' quality windows (tested with the PostgreSQL
replicas', ``test_feedback_siblings``); a server alone waits for nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from modelpilot.monitoring import monitor as monitor_module
from modelpilot.monitoring.log_sharers import DIRECTORY, SUFFIX, LogSharers
from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored


async def test_a_server_alone_refuses_a_label_it_has_no_prediction_for_at_once(
    labelled_iris: Registry,
) -> None:
    """Waiting for another server's predictions costs each label of an unknown id 2.5 s: a
    server alone on its registry directory does not wait, nor once the other has stopped."""
    async with monitored(labelled_iris) as alone:
        assert not alone.monitor.log_shared
        async with monitored(labelled_iris) as other:
            await _until(lambda: alone.monitor.log_shared)
            assert other.monitor.log_shared
        await _until(lambda: not alone.monitor.log_shared)
        started = time.monotonic()
        label = {"request_id": "never-answered", "label": 0}
        reply = await alone.client.post("/api/feedback/iris", json=label)
        assert reply.status_code == 404, reply.text
        # Not after the wait for another server's predictions (``sibling_seconds``).
        assert time.monotonic() - started < alone.monitor.sibling_seconds


def test_the_file_of_a_server_that_died_is_taken_for_none(tmp_path: Path) -> None:
    """A server killed (SIGKILL, a crash) leaves its file behind: nobody holds it, so it is
    no server, and whoever looks removes it."""
    directory = tmp_path / DIRECTORY
    here = LogSharers(directory)
    script = (
        "import os, sys; from pathlib import Path\n"
        "from modelpilot.monitoring.log_sharers import LogSharers\n"
        "held = LogSharers(Path(sys.argv[1])); print('there', flush=True); sys.stdin.read()\n"
        "os._exit(0)  # no clean-up, as a process killed\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "there\n"
        assert len(here.others()) == 1
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
        assert child.stdout is not None
        child.stdout.close()
    assert len(list(directory.glob(f"*{SUFFIX}"))) == 2  # its file is still there
    assert here.others() == frozenset()
    assert [p.name.split(".")[0] for p in directory.glob(f"*{SUFFIX}")] == [here.group]
    here.close()
    assert list(directory.glob(f"*{SUFFIX}")) == []


def test_workers_of_one_server_are_no_other_server(tmp_path: Path) -> None:
    """Workers of one server know each other through their exchange: the files of the
    server's workers are not another server's."""
    registry = f"sqlite:///{tmp_path / 'registry' / 'registry.db'}"
    workers = [LogSharers.of(registry, tmp_path / "workers") for _ in range(2)]
    other = LogSharers.of(registry, None)
    try:
        assert all(w is not None and len(w.others()) == 1 for w in workers)
        assert other is not None and len(other.others()) == 1  # the server of the two
        assert LogSharers.of("postgresql://127.0.0.1/x", None) is None
    finally:
        for sharers in [*workers, other]:
            assert sharers is not None
            sharers.close()


MARGIN_SECONDS = 1.5
"""Beyond the monitor's cache of the answer (``SHARERS_SECONDS``): a loaded machine's slack."""


async def _until(seen: Callable[[], bool]) -> None:
    """Wait until ``seen``, for the cache's life and a margin at most (AssertionError else)."""
    deadline = time.monotonic() + monitor_module.SHARERS_SECONDS + MARGIN_SECONDS
    while not seen():
        assert time.monotonic() < deadline, "not seen within the cache's life and a margin"
        await asyncio.sleep(0.02)


def _gone_server(directory: Path, name: str) -> Path:
    """The file of a server that died (nobody holds it): whoever looks for servers removes it."""
    path = directory / f"{name}.1.deadbeef{SUFFIX}"
    path.touch()
    return path


def test_a_monitor_looks_for_other_servers_once_a_cache_life(labelled_iris: Registry) -> None:
    """Each evaluation, and each label post whose ids are not found at once, asks whether
    other servers share the log: the directory was listed and each file tried for its lock
    every time. The answer is kept for ``SHARERS_SECONDS``: a file of a server gone, left
    there meanwhile, shows that nobody looked again (a look removes it)."""
    monitor = Monitor(labelled_iris)
    try:
        assert monitor.sharers is not None
        directory = monitor.sharers.directory
        first = _gone_server(directory, "gone")
        assert not monitor.shares_labels
        assert not first.exists()  # looked: removed
        second = _gone_server(directory, "gone-too")
        for _ in range(100):
            assert not monitor.shares_labels
        assert second.exists()  # not looked again within the cache's life
        time.sleep(monitor_module.SHARERS_SECONDS + 0.05)
        assert not monitor.shares_labels
        assert not second.exists()  # the cache's life over: looked again
    finally:
        monitor.stop()


async def test_a_second_server_is_seen_within_the_cache_life(labelled_iris: Registry) -> None:
    """The cached answer costs a server coming or going at most ``SHARERS_SECONDS`` (and a
    margin) before the first one waits for its predictions and reads its labels."""
    monitor = Monitor(labelled_iris)
    try:
        assert monitor.sharers is not None
        assert not monitor.shares_labels  # cached: no other server
        other = LogSharers(monitor.sharers.directory)
        try:
            started = time.monotonic()
            await _until(lambda: monitor.shares_labels)
            assert time.monotonic() - started < monitor_module.SHARERS_SECONDS + MARGIN_SECONDS
        finally:
            other.close()
        await _until(lambda: not monitor.shares_labels)
    finally:
        monitor.stop()
