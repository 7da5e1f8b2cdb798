"""A ``TapLedger``: the totals a dead monitoring process told carry on, once, and what it took
after that counts as dropped (``test_tap_replaced`` has it with real monitoring processes)."""

from __future__ import annotations

import pytest

from modelpilot.monitoring.tap_ledger import TapLedger
from tests.monitoring.conftest import worker_state


def test_told_totals_carry_on_once_and_what_was_never_told_counts_as_dropped() -> None:
    ledger = TapLedger(1 << 20)
    ledger.handed(6)
    ledger.told([worker_state([2, 3, 1])])
    ledger.handed(4)  # taken, never told
    said = ledger.died()
    assert ledger.dropped == 4
    assert "4 answered requests went unmonitored with it" in said
    ledger.unserved(3)  # answered while none ran
    assert ledger.started() == 3 and ledger.dropped == 7
    ledger.handed(2)
    states = ledger.told([worker_state([0, 2, 0])])
    assert sum(s.requests for s in states) == 8
    assert list(sum(s.classes for s in states)) == [2, 5, 1]
    assert sum(s.window_rows for s in states) == 4  # the dead one's windows are gone
    assert "no request went unmonitored" in ledger.died()  # it told all it took
    assert ledger.started() == 0 and ledger.dropped == 7
    assert sum(s.requests for s in ledger.told([])) == 8  # each carried on once


def test_requests_refused_while_a_child_caught_up_are_said_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rounds refused as the monitoring process fell behind were counted, but no line said so."""
    ledger = TapLedger(64 << 20)
    ledger.refused(30)
    ledger.told([])
    ledger.refused(5)  # within the minute: said the next time, or with its death
    ledger.told([])
    said = [r.getMessage() for r in caplog.records if r.name == "modelpilot.monitoring.tap_ledger"]
    assert len(said) == 1
    assert "fell behind (more than 64 MiB of rounds waited for it): 30 answered" in said[0]
    assert "5 more were refused" in ledger.died()
    assert ledger.dropped == 35
