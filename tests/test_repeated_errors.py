"""Errors that repeat: the first logged whole, the rest summed up once per interval."""

from __future__ import annotations

import logging
import time

import pytest

from modelpilot.repeated_errors import RepeatedErrors

logger = logging.getLogger("tests.repeated")


def test_an_error_that_repeats_is_logged_once_per_interval_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = RepeatedErrors(logger, seconds=0.2)
    caplog.set_level(logging.ERROR, logger.name)
    try:
        raise ConnectionRefusedError("the database is down")
    except ConnectionRefusedError:
        logged = [errors.error("write", "writing failed: %s", "down", exc_info=True)]
        logged += [errors.error("write", "writing failed: %s", "down") for _ in range(5)]
    assert logged == [True] + [False] * 5
    assert errors.error("lookup", "lookup failed")  # another kind: its own first time
    time.sleep(0.25)
    assert errors.error("write", "writing failed: %s", "still down")
    lines = [(r.getMessage(), bool(r.exc_info)) for r in caplog.records]
    assert lines == [
        ("writing failed: down", True),
        ("lookup failed", False),
        (
            "writing failed: still down (6 times since it was last logged: it is logged "
            "once every 0.2 s)",
            False,
        ),
    ]
