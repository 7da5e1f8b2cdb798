"""Servers sharing one inference log trim it by the smallest bound of those there, whoever
writes.

A tester ran a server with ``MODELPILOT_INFERENCE_LOG_MAX_ROWS=1000`` beside one with the
default (200,000) on one PostgreSQL registry, and sent all the traffic to the second: the log
grew to 7,654 requests, and the first server's first write trimmed it to 717 at once, so the
labels of the ~6,900 requests the second had just answered found nothing. Each server trimmed
by its own bound, and only as it wrote.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, delete, insert, select

from modelpilot.monitoring.inference_log import InferenceLog, open_log
from modelpilot.monitoring.log_bounds import GONE_SECONDS, LogBounds, database_now
from modelpilot.monitoring.log_tables import bounds
from modelpilot.registry.store import Registry
from tests.monitoring.test_log_bound_restarts import requests


@contextmanager
def server_log(registry: Registry, max_rows: int) -> Iterator[InferenceLog]:
    """The inference log as a server opens it, with ``max_rows`` its bound."""
    log = open_log(registry.companion_engine("inference-log"), max_rows)
    assert log is not None
    try:
        yield log
    finally:
        log.close()


@contextmanager
def engine_of(registry: Registry) -> Iterator[Engine]:
    engine = registry.companion_engine("inference-log")
    try:
        yield engine
    finally:
        engine.dispose()


def said(engine: Engine) -> dict[str, int]:
    """The bounds said in the log, by writer."""
    with engine.connect() as conn:
        return {w: int(n) for w, n in conn.execute(select(bounds.c.writer, bounds.c.max_rows))}


def test_an_idle_server_bounds_what_another_writes(log_registry: Registry) -> None:
    """The finding's steps: the server with the larger bound takes all the traffic, the one
    with the smaller none; the log holds the smaller bound (and a tenth) all along."""
    with server_log(log_registry, 10_000) as busy, server_log(log_registry, 100):
        for n in range(60):
            busy.append([requests(f"r{n}-", 10)])
            assert busy.count() <= 110, f"after round {n}"
        assert [e.request_id for e in busy.recent("m", limit=1)] == ["r59-9"]


def test_a_server_that_comes_with_a_smaller_bound_bounds_the_next_write(
    log_registry: Registry,
) -> None:
    """Whoever makes it: the server with the larger bound, writing on, trims the log to the
    newcomer's bound, which has written nothing."""
    with server_log(log_registry, 10_000) as busy:
        for n in range(30):
            busy.append([requests(f"before{n}-", 10)])
        assert busy.count() == 300
        with server_log(log_registry, 100):
            busy.append([requests("after", 10)])
            assert 90 < busy.count() <= 100
            assert [e.request_id for e in busy.recent("m", limit=1)] == ["after9"]


def test_a_server_that_stopped_bounds_the_log_no_more(log_registry: Registry) -> None:
    with server_log(log_registry, 10_000) as busy:
        with server_log(log_registry, 100):
            pass
        for n in range(30):
            busy.append([requests(f"r{n}-", 10)])
        assert busy.count() == 300


def test_a_server_that_died_counts_only_until_its_word_is_old(log_registry: Registry) -> None:
    """A server killed says nothing: its bound holds for ``GONE_SECONDS`` after it last said
    it, then goes (and its row with it), however long ago it was."""
    with engine_of(log_registry) as engine, server_log(log_registry, 10_000) as busy:
        with engine.begin() as conn:
            now = database_now(conn)
            conn.execute(
                insert(bounds),
                [
                    {"writer": "long-gone", "max_rows": 50, "seen_at": now - 30 * 86_400},
                    {"writer": "just-gone", "max_rows": 100, "seen_at": now - GONE_SECONDS - 1},
                ],
            )
        for n in range(30):
            busy.append([requests(f"r{n}-", 10)])
        assert busy.count() == 300
        busy.trim()  # a trim looks at the servers there, and forgets the others
        assert list(said(engine).values()) == [10_000]
        with engine.begin() as conn:
            row = {"writer": "died-now", "max_rows": 100, "seen_at": database_now(conn)}
            conn.execute(insert(bounds).values(**row))
        busy.trim()
        assert 90 < busy.count() <= 100


def test_an_idle_server_keeps_saying_its_bound(log_registry: Registry) -> None:
    """Its thread says it again, with no write to make: taken for gone meanwhile (its
    database out of reach for a minute), it counts again at its next beat."""
    with engine_of(log_registry) as engine:
        writer = engine.execution_options(modelpilot_write=True)
        InferenceLog(engine).close()  # the tables
        idle = LogBounds(writer, 100, beat_seconds=0.05)
        try:
            assert said(engine) == {idle.name: 100}
            with engine.begin() as conn:
                conn.execute(delete(bounds))
            deadline = time.monotonic() + 120
            while not said(engine) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert said(engine) == {idle.name: 100}
            with engine.connect() as conn:
                first = conn.execute(select(bounds.c.seen_at)).scalar_one()
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    if conn.execute(select(bounds.c.seen_at)).scalar_one() > first:
                        break
                time.sleep(0.05)
            else:
                raise AssertionError("the bound was not said again")
        finally:
            idle.leave()
        assert said(engine) == {}
        assert idle.failures == 0


def test_a_reader_says_no_bound(log_registry: Registry) -> None:
    """``modelpilot drift`` opens the log with the default bound: it must not bound the
    servers' log for as long as it reads."""
    with engine_of(log_registry) as engine, server_log(log_registry, 10_000) as busy:
        reader = InferenceLog(log_registry.companion_engine("inference-log"), max_rows=100)
        try:
            assert list(said(engine).values()) == [10_000]
            for n in range(30):
                busy.append([requests(f"r{n}-", 10)])
            assert busy.count() == 300
        finally:
            reader.close()


def test_a_log_of_an_earlier_release_takes_the_bounds(log_registry: Registry) -> None:
    """Its count's row without the smallest bound (and no table of bounds): opened by a
    server, it gets both, and its bound holds."""
    with engine_of(log_registry) as engine:
        InferenceLog(engine).close()
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE inference_log_bounds")
            conn.exec_driver_sql("ALTER TABLE inference_log_state DROP COLUMN bound")
    with server_log(log_registry, 10_000) as busy, server_log(log_registry, 100):
        for n in range(30):
            busy.append([requests(f"r{n}-", 10)])
        assert busy.count() <= 110
