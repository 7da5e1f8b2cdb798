"""Servers of one SQLite registry directory share its inference log, as servers of one
PostgreSQL registry do theirs: a label posted to either waits for the other's prediction to
reach the log, and reaches both servers' quality windows; a server alone waits for nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.log_sharers import DIRECTORY, SUFFIX, LogSharers
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored, send


@pytest.fixture
def directory_replicas(
    tmp_path: Path, iris_model_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> Iterator[tuple[Registry, Registry]]:
    """One SQLite registry directory (``iris``, with its labels), opened by two servers."""
    first = Registry.open(tmp_path / "registry")
    reference = iris_frame.assign(species=iris_target)
    register_model(first, "iris", iris_model_path, reference=reference, target="species")
    second = Registry.open(tmp_path / "registry")
    yield first, second
    first.close()
    second.close()


async def test_a_label_for_the_other_servers_prediction_waits_for_it(
    directory_replicas: tuple[Registry, Registry],
) -> None:
    """Two servers started on one registry directory, a label posted to the one that did not
    answer: refused 404 at once (96 of 196 in a tester's run), though the prediction reached
    the log they share a moment later."""
    first, second = directory_replicas
    async with monitored(first) as answering, monitored(second) as labelling:
        assert labelling.monitor.exchange is None and labelling.monitor.log_shared
        (answered,) = await send(answering.client, np.array([[5.1, 3.5, 1.4, 0.2]]), per_request=1)
        label = {"request_id": answered, "label": 0}
        reply = await labelling.client.post("/api/feedback/iris", json=label)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"accepted": 1, "unknown": []}


async def test_labels_posted_to_one_server_of_a_directory_reach_the_others_quality(
    directory_replicas: tuple[Registry, Registry],
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """Each server judged quality on the labels posted to it alone (accuracy 0.957 on one,
    0.962 on the other, in a tester's run), as servers of a PostgreSQL registry once did."""
    first, second = directory_replicas
    quick = {"monitor_interval_seconds": 0.2, "performance_min_labels": 20}
    async with monitored(first, **quick) as a, monitored(second, **quick) as b:
        b.monitoring.start()  # its thread, as a server runs it: it reads the labels
        rows = iris_frame.to_numpy()[:40]
        ids = await send(a.client, rows, per_request=1)
        await send(b.client, rows[:1], per_request=1)  # b serves iris too
        for _ in range(100):  # b's thread restored (no labels yet), then reported
            if "error" not in (await b.client.get("/api/monitoring/iris")).json():
                break
            await asyncio.sleep(0.1)
        wrong = (iris_target[:40] + 1) % 3  # every label contradicts its prediction
        labels = [{"request_id": i, "label": int(y)} for i, y in zip(ids, wrong, strict=True)]
        reply = await a.client.post("/api/feedback/iris", json={"labels": labels})
        assert reply.json()["accepted"] == 40
        for _ in range(100):  # server b was told nothing: it reads them from the log
            report = (await b.client.get("/api/monitoring/iris")).json()
            performance = report.get("performance")
            if performance is not None and performance["labels"] == 40:
                break
            await asyncio.sleep(0.1)
        assert performance is not None and performance["labels"] == 40, report
        assert performance["current"]["accuracy"] < 0.2


async def test_a_server_alone_refuses_a_label_it_has_no_prediction_for_at_once(
    labelled_iris: Registry,
) -> None:
    """Waiting for another server's predictions costs each label of an unknown id 2.5 s: a
    server alone on its registry directory does not wait, nor once the other has stopped."""
    async with monitored(labelled_iris) as alone:
        assert not alone.monitor.log_shared
        async with monitored(labelled_iris) as other:
            assert alone.monitor.log_shared and other.monitor.log_shared
        assert not alone.monitor.log_shared
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
