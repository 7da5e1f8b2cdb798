"""An inference log whose disk is full: its writes fail while its reads go on working, and a
label post each fails. The monitoring process says so once a minute, not once a post, says
that it takes labels again only when a write works, and tells the client the disk is full.

A full disk is stood in for by SQLite's own page limit (``PRAGMA max_page_count``), which
refuses a write that needs a new page with the very error a full disk gives ("database or
disk is full"), and lets reads through."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import LocalTap
from modelpilot.monitoring.tap_child import LogOutages, _answer
from modelpilot.registry.store import Registry
from modelpilot.repeated_errors import RepeatedErrors

LOGGER = "modelpilot.monitoring.tap_child"

LARGE = list(range(3000))
"""A label larger than a page (a list of one value per row), so that writing it needs pages."""


@pytest.fixture
def full_log(registry: Registry) -> Iterator[tuple[InferenceLog, Any]]:
    """An inference log, and a switch that fills its disk (True) or frees it (False)."""
    log = InferenceLog(registry.companion_engine("inference-log"))
    engine = log._engine
    full = [False]

    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        if full[0]:  # at most the pages it has: no write that needs one more goes through
            dbapi_conn.execute("PRAGMA max_page_count=1")

    def fill(on: bool) -> None:
        full[0] = on
        engine.dispose()  # connections are made again, with the limit or without

    yield log, fill
    log.close()


def ask(tap: LocalTap, outages: LogOutages, method: str, *args: Any) -> tuple[bool, Any]:
    worked, value, _ = _answer(
        tap, method, args, RepeatedErrors(logging.getLogger(LOGGER)), outages
    )
    return worked, value


def test_a_full_disk_is_said_once_and_reads_that_work_do_not_end_it(
    registry: Registry,
    full_log: tuple[InferenceLog, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every label post logged an error and then a false "answers questions again" (its reads
    worked, and ended the outage, so the next failure was logged again): 25 lines in 4 s; and
    the client was told the database did not answer."""
    log, fill = full_log
    tap = LocalTap(registry, MonitorConfig(), log)
    outages = LogOutages.of(logging.getLogger(LOGGER))
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        assert ask(tap, outages, "set_labels", "iris", {"before": 1}) == (True, {})
        fill(True)
        for n in range(10):
            worked, said = ask(tap, outages, "set_labels", "iris", {f"r{n}": LARGE})
            assert not worked
            assert "disk is full" in said and "does not answer" not in said
            assert ask(tap, outages, "labelled_since", 0.0, 10)[0]  # reads go on
            assert ask(tap, outages, "lookup", "iris", [f"r{n}"]) == (True, {})
        lines = [r for r in caplog.records if r.name == LOGGER]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert lines[0].levelno == logging.ERROR and "set_labels failed" in lines[0].getMessage()
        assert "full" in lines[0].getMessage()

        fill(False)
        assert ask(tap, outages, "set_labels", "iris", {"after": LARGE}) == (True, {})
        ask(tap, outages, "set_labels", "iris", {"after again": 1})
        [back] = [r for r in caplog.records if r.name == LOGGER][1:]
        assert back.levelno == logging.INFO
        assert "takes labels again" in back.getMessage() and "(10 failed)" in back.getMessage()
    finally:
        tap.close()
