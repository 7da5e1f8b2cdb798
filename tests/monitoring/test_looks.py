"""The looks a window judged at every round counts as: a size for each doubling."""

from __future__ import annotations

import pytest

from modelpilot.monitoring.looks import LOOKS_PER_SIZE, window_looks


@pytest.mark.parametrize(
    ("min_rows", "max_rows", "sizes"),
    [(30, 5000, 8), (30, 1000, 6), (30, 959, 5), (30, 960, 6), (50, 50, 1), (30, 20, 1)],
)
def test_a_window_counts_a_size_for_each_doubling_it_is_judged_at(
    min_rows: int, max_rows: int, sizes: int
) -> None:
    assert window_looks(min_rows, max_rows) == sizes * LOOKS_PER_SIZE
