"""How many independent looks a window counts as when it is judged again at every round.

The server judges a version's windows every monitoring round, each time on a window that
differs from the last by a few rows, and an alert fires on the first look that flags. A test
at level ``a`` at each look then raises a false alarm far more often than ``a``: a window of
data drawn as the reference was, judged every 20 rows while it filled from 30 to 1,000 rows,
had some feature flagged in 3% of fills at a level of 1% a look, and a low-traffic model whose
window of the last hour held 50 rows, judged at every row, raised one to five false data-drift
alerts a day. So the live monitor spends its level over the looks a window gets: each test is
judged at ``a`` divided by ``window_looks``, which counts the looks at a window while it grows
from its least size to its greatest as some independent ones.
"""

from __future__ import annotations

import math

LOOKS_PER_SIZE = 3
"""What the looks at a window while it doubles in size count as, in independent looks: a
random walk judged at every step from 30 to 1000 (six sizes) at ``a / (6 x 3)`` crossed that
level's normal bound in about ``a`` of its runs (``a`` 0.01: 1.01%, 0.005: 0.54%, 0.0025:
0.28%; judged every 10 steps 0.74%, 0.38%, 0.19%; 40,000 runs each,
``bench/concept_false_alarms.py --only walk``); at ``a / 6`` (one look a size), in 2.5 ``a``.
Data drift's tests (KS, Fisher's, chi-squared) over several features, each held to an
effect size as well, stay further under it (``bench/drift_false_alarms.py``)."""


def window_looks(min_rows: int, max_rows: int) -> int:
    """The independent looks that a window judged from ``min_rows`` rows on, and holding at
    most ``max_rows``, counts as: one size for each doubling from ``min_rows`` (30, 60, 120,
    240, 480, 960, 1,920 and 3,840 up to 5,000: eight), each ``LOOKS_PER_SIZE`` looks.

    The same at every size, and so stateless: the looks at every row of a doubling are about
    as many independent looks whatever its size, and a window that slides at its greatest
    size, or at whatever size its age bounds it to, is judged at that level as it slides (a
    window of the last hour's 50 rows turns over 24 times a day, each turn about one
    doubling's looks)."""
    min_rows = max(min_rows, 1)
    if max_rows <= min_rows:
        return LOOKS_PER_SIZE
    return (math.floor(math.log2(max_rows / min_rows)) + 1) * LOOKS_PER_SIZE
