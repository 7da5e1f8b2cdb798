"""How often the live data-drift verdict flags traffic drawn as the reference was, judged at
every look as the server judges it, and how large a shift it still catches: at the level of
one look (``modelpilot drift``'s) and at the level split over the window's looks (the live
monitor's, ``looks.window_looks``).

The data: eight features as an acceptance tester's (six normal ones of different means and
scales, one narrow, one exponential), a reference of 3,000 rows drawn afresh for each run,
judged by ``ProfileBinning`` with the server's defaults (p 0.01, PSI 0.2, 30 to 1,000 rows
tested, a window of up to 5,000 rows). Each look records, of the features whose effect size
reaches its line, the least p-value of their tests (0 where PSI decides alone): the look is
flagged at a level when that is under it, so one run gives every level's figures.

- fills: a window filling from 30 to 1,000 rows (a start, a new version, an alias moved),
  judged every ``step`` rows; a run counts once if any look flags.
- rolling: a low-traffic model, its window the last hour's rows (50 or 100 an hour), judged at
  every new row for a day; separate flagged episodes are separate alerts.
- power: one look at a window of 30, 100, 300 or 1,000 rows whose first feature's mean moved
  by some of its standard deviations.

Not run in CI (minutes)::

    python bench/drift_false_alarms.py                  # every table
    python bench/drift_false_alarms.py --only rolling --runs 50
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.looks import window_looks
from modelpilot.registry.profile import ReferenceProfile

MEANS = np.array([0, 5, -3, 10, 0, 100, 1, 2.0])
SCALES = np.array([1, 2, 0.5, 3, 1, 15, 0.2, 1.0])
REFERENCE_ROWS = 3000
WINDOW_ROWS = 5000
THRESHOLDS = DriftThresholds()
FEATURES = len(MEANS)


def draw(rows: int, rng: np.random.Generator) -> np.ndarray:
    values = rng.normal(MEANS, SCALES, size=(rows, FEATURES))
    values[:, -1] = rng.exponential(2.0, size=rows)  # a skewed one
    return values


def levels() -> dict[str, float]:
    """Each test's level: at one look, and split over the live window's looks."""
    one = THRESHOLDS.p_value / (2 * FEATURES)
    looks = window_looks(THRESHOLDS.min_rows, WINDOW_ROWS)
    return {"one look": one, f"{looks} looks": one / looks}


class Judge:
    """A fresh reference's binning, and the looks at windows of one stream of rows."""

    def __init__(self, rng: np.random.Generator) -> None:
        columns = [f"f{i}" for i in range(FEATURES)]
        reference = pd.DataFrame(draw(REFERENCE_ROWS, rng), columns=columns)
        self.binning = ProfileBinning(ReferenceProfile.from_data(reference))

    def flag_levels(self, rows: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
        """For each window ``rows[a:b]``, the level under which it is flagged."""
        counted = [self.binning.count(rows[i : i + 1]) for i in range(rows.shape[0])]
        counts = np.vstack([np.zeros_like(counted[0][0])] + [c for c, _ in counted]).cumsum(0)
        sums = np.vstack([np.zeros_like(counted[0][1])] + [s for _, s in counted]).cumsum(0)
        found = []
        for a, b in spans:
            recent = rows[a:b] if b - a < THRESHOLDS.large_sample_rows else None
            report = self.binning.report(
                counts[b] - counts[a], sums[b] - sums[a], recent, THRESHOLDS
            )
            level = np.inf
            for f in report.features:
                effect, line = (
                    (f.psi, THRESHOLDS.psi)
                    if f.kind == "numeric"
                    else (f.js_distance, THRESHOLDS.js_distance)
                )
                if f.method == "none" or not effect >= line:
                    continue
                p = f.deciding_p_value
                level = min(level, 0.0 if p is None else p)
            found.append(level)
        return np.array(found)


def fills(runs: int, step: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    flagged = {name: 0 for name in levels()}
    for _ in range(runs):
        judge = Judge(rng)
        found = judge.flag_levels(draw(1000, rng), [(0, k) for k in range(30, 1001, step)])
        for name, level in levels().items():
            flagged[name] += bool((found < level).any())
    cells = " | ".join(f"{flagged[name]} ({flagged[name] / runs:.1%})" for name in levels())
    print(f"| fill 30 to 1,000 rows | {step} | {runs} | {cells} |")


def rolling(runs: int, per_hour: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    episodes = {name: 0 for name in levels()}
    days = {name: 0 for name in levels()}
    for _ in range(runs):
        judge = Judge(rng)
        rows = per_hour * 25  # an hour to fill, then a day of a full window sliding
        spans = [(end - per_hour, end) for end in range(per_hour, rows + 1)]
        found = judge.flag_levels(draw(rows, rng), spans)
        for name, level in levels().items():
            flags = found < level
            episodes[name] += int(flags[0]) + int(np.count_nonzero(flags[1:] & ~flags[:-1]))
            days[name] += bool(flags.any())
    cells = " | ".join(
        f"{episodes[name] / runs:.2f} ({days[name] / runs:.0%} of days)" for name in levels()
    )
    print(f"| {per_hour} rows an hour, every row | {runs} days | {cells} |")


def power(runs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    judges = [Judge(rng) for _ in range(10)]
    shifts = (0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
    print("| rows | level | " + " | ".join(f"{s} sd" for s in shifts) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in shifts) + " |")
    for rows in (30, 100, 300, 1000):
        found = {}
        for shift in shifts:
            levels_found = []
            for run in range(runs):
                window = draw(rows, rng)
                window[:, 0] += shift * SCALES[0]
                levels_found.append(judges[run % 10].flag_levels(window, [(0, rows)])[0])
            found[shift] = np.array(levels_found)
        for name, level in levels().items():
            cells = " | ".join(f"{np.mean(found[s] < level):.2f}" for s in shifts)
            print(f"| {rows:,} | {name} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs a case")
    parser.add_argument("--only", choices=["fills", "rolling", "power"], help="one table only")
    args = parser.parse_args()
    started = time.time()
    names = " | ".join(levels())
    if args.only in (None, "fills"):
        print(f"| traffic as the reference | judged every | runs | {names} |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in levels()) + " |")
        fills(args.runs * 2, 20, 1)
        fills(args.runs // 2, 1, 2)
        print()
    if args.only in (None, "rolling"):
        print(f"| traffic as the reference | runs | alerts a day: {names} |")
        print("| --- | --- | " + " | ".join("---" for _ in levels()) + " |")
        rolling(args.runs // 2, 50, 3)
        rolling(args.runs // 4, 100, 4)
        print()
    if args.only in (None, "power"):
        power(args.runs, 5)
        print()
    print(f"took {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
