"""Labels kept in the inference log by several servers at once (replicas of one PostgreSQL
registry): a request's label is one row, whichever server took it, however they race."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_tables import labels_table
from modelpilot.registry.store import Registry


def test_the_same_labels_taken_by_two_servers_at_once_are_one_row_each(
    postgres_location: str, tmp_path: Path
) -> None:
    """Posted at once to two servers, each deleted the old rows before either inserted, and
    both kept theirs: 325 rows for 300 labels, and 160 rows of two values for 150 that were
    corrected on one server while the other took the first."""
    registries = [Registry.open(postgres_location, tmp_path / "artifacts") for _ in range(2)]
    logs = [InferenceLog(r.companion_engine("inference-log")) for r in registries]
    ids = [f"r{i}" for i in range(50)]
    try:
        for attempt in range(20):
            start = threading.Barrier(len(logs))

            def post(log: InferenceLog, label: int, start: threading.Barrier) -> None:
                start.wait()
                for i in range(0, len(ids), 5):  # in calls of five, as a client posts them
                    log.set_labels("iris", {rid: label for rid in ids[i : i + 5]})

            threads = [
                threading.Thread(target=post, args=(log, attempt * 2 + n, start))
                for n, log in enumerate(logs)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with logs[0]._engine.connect() as conn:
                rows, distinct = conn.execute(
                    select(func.count(), func.count(func.distinct(labels_table.c.request_id)))
                ).one()
            assert (rows, distinct) == (50, 50), f"attempt {attempt}"
    finally:
        for log in logs:
            log.close()
        for registry in registries:
            registry.close()


def test_labels_taken_at_once_by_workers_of_one_sqlite_log_are_all_kept(tmp_path: Path) -> None:
    """``serve --workers 3`` on a SQLite registry: each worker's monitoring process writes the
    log, and a sixth of the labels posted at once were refused at once, "database is locked"
    (a transaction begun as a read, turned into a write after another process's commit, is
    refused without the busy timeout), and answered 503."""
    registries = [Registry.open(tmp_path / "registry") for _ in range(4)]
    logs = [InferenceLog(r.companion_engine("inference-log")) for r in registries]
    failed: list[BaseException] = []
    start = threading.Barrier(len(logs))

    def post(worker: int, log: InferenceLog) -> None:
        start.wait()
        for n in range(50):
            try:
                log.set_labels("iris", {f"w{worker}-{n}": n % 3})
            except Exception as exc:
                failed.append(exc)

    try:
        threads = [threading.Thread(target=post, args=item) for item in enumerate(logs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failed == []
        with logs[0]._engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(labels_table)).scalar() == 200
    finally:
        for log in logs:
            log.close()
        for registry in registries:
            registry.close()
