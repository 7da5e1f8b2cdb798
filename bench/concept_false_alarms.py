"""How often concept drift flags a model exactly as good as at registration, and how soon it
flags one that got worse: a simulation with ModelPilot's own ``PerformanceWindow`` at the
server's defaults (window 1000 labels, p 0.01, max drop 0.1, max error rise 20%, label shift
0.1, min labels 30).

A healthy run: a reference of 1,500 held-out rows (its figures, label counts and target scale
are what ``register`` stores) and a stream of 1,000 further held-out labels from the same
distribution, the window judged after every ``step`` labels (1: at every label post; 10: a
post of 10 labels an evaluation). A run that flags once counts as a false alarm. A fall: the
same, but the labels of the stream are worse than at registration (a classifier's label
replaced, with the share that takes its accuracy from 0.9 to 0.7 or 0.5, by a class it did
not predict; a regressor's error doubled), from the first label ("empty window") or after
1,000 healthy labels ("full window"); the figure is the labels posted since the fall until the
window flags. Not run in CI (minutes)::

    python bench/concept_false_alarms.py            # 400 healthy runs a case, 40 falls
    python bench/concept_false_alarms.py --only healthy --steps 10 --runs 1000
    python bench/concept_false_alarms.py --only walk     # the sequential rate of one test
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge

from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.quality import classification_metrics, regression_metrics

LABELS = 1000
REFERENCE_ROWS = 1500


@dataclass
class Model:
    """Held-out rows of a fitted model: labels, predictions and probabilities."""

    task: str
    truth: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray | None

    def window(self, rows: np.ndarray) -> PerformanceWindow:
        """A window as the server builds one, from ``rows`` as the reference."""
        truth, predicted = self.truth[rows].tolist(), self.predicted[rows].tolist()
        thresholds = PerformanceThresholds()
        if self.task == "regression":
            return PerformanceWindow(
                "regression",
                [],
                regression_metrics(truth, predicted),
                None,
                LABELS,
                86_400.0,
                thresholds,
                target_scale=float(np.std(truth)),
            )
        assert self.proba is not None
        reference = classification_metrics(truth, predicted, list(self.proba[rows]), [0, 1, 2])
        counts = Counter(str(t) for t in truth)
        return PerformanceWindow(
            "classification",
            [0, 1, 2],
            reference,
            dict(counts),
            LABELS,
            86_400.0,
            thresholds,
            known_classes=[0, 1, 2],
        )


def classifier(class_sep: float) -> Model:
    """The tester's 3-class logistic regression (``class_sep`` 1.0: accuracy 0.86; 1.15: 0.9)."""
    x, y = make_classification(
        n_samples=80_000,
        n_features=6,
        n_informative=4,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=class_sep,
        random_state=1,
    )
    fitted = LogisticRegression(max_iter=1000).fit(x[:3000], y[:3000])
    held = x[3000:]
    return Model("classification", y[3000:], fitted.predict(held), fitted.predict_proba(held))


def regressor() -> Model:
    x, y = make_regression(n_samples=80_000, n_features=4, noise=10, random_state=2)
    fitted = Ridge().fit(x[:3000], y[:3000])
    return Model("regression", y[3000:], fitted.predict(x[3000:]), None)


Worse = Callable[[np.random.Generator, float, float], float]
"""A label made worse: (rng, truth, prediction) -> the label posted."""


def relabelled(share: float) -> Worse:
    """A classifier's label replaced, with chance ``share``, by a class it did not predict."""

    def worse(rng: np.random.Generator, truth: float, predicted: float) -> float:
        if rng.random() >= share:
            return truth
        return float(rng.choice([c for c in (0, 1, 2) if c != predicted]))

    return worse


def doubled(rng: np.random.Generator, truth: float, predicted: float) -> float:
    return predicted + 2 * (truth - predicted)


def stream(
    model: Model,
    rng: np.random.Generator,
    step: int,
    healthy: int,
    worse: Worse | None,
) -> tuple[int | None, str]:
    """Labels posted (after the ``healthy`` ones) until the window flags, and why."""
    rows = rng.choice(len(model.truth), REFERENCE_ROWS + healthy + LABELS, replace=False)
    window = model.window(rows[:REFERENCE_ROWS])
    at = 1e9
    for posted, row in enumerate(rows[REFERENCE_ROWS:], start=1):
        at += 0.01
        truth, predicted = float(model.truth[row]), float(model.predicted[row])
        if worse is not None and posted > healthy:
            truth = worse(rng, truth, predicted)
        if model.task == "classification":
            truth, predicted = int(truth), int(predicted)
        proba = None if model.proba is None else model.proba[row]
        window.add(truth, predicted, proba, at, key=posted)
        if posted % step == 0 and posted > healthy:
            report = window.report(at)
            if report is not None and report.concept_drift:
                return posted - healthy, "+".join(report.degraded) or "label shift"
    return None, ""


def healthy_rates(name: str, model: Model, runs: int, step: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    firsts, why = [], Counter[str]()
    for _ in range(runs):
        first, reason = stream(model, rng, step, 0, None)
        if first is not None:
            firsts.append(first)
            why[reason] += 1
    rate = len(firsts) / runs
    high = _upper(len(firsts), runs)
    print(
        f"| {name} | {step} | {runs} | {len(firsts)} ({rate:.1%}, at most {high:.1%}) | "
        f"{_spread(firsts)} | {dict(why) or '-'} | {time.perf_counter() - started:.0f} s |"
    )


def fall(name: str, model: Model, worse: Worse, runs: int, step: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cells = []
    for healthy in (0, LABELS):
        found = [stream(model, rng, step, healthy, worse)[0] for _ in range(runs)]
        caught = sorted(n for n in found if n is not None)
        missed = f", {runs - len(caught)} missed" if len(caught) < runs else ""
        cells.append(f"{_spread(caught)}{missed}")
    print(f"| {name} | {step} | {runs} | {cells[0]} | {cells[1]} |")


def walk(total: float, step: int, paths: int = 40_000) -> float:
    """How often a random walk judged from ``PerformanceThresholds().min_labels`` to ``LABELS``
    steps, every ``step``, at ``look_level`` for one test crosses its normal bound: the
    sequential rate of one test whose statistic is a mean (``looks.LOOKS_PER_SIZE``)."""
    from modelpilot.monitoring.resampling import look_level  # not in older releases

    rng = np.random.default_rng(13)
    start = PerformanceThresholds().min_labels
    bound = NormalDist().inv_cdf(1 - look_level(total, 1, start, LABELS))
    sizes = np.arange(1, LABELS + 1)
    looks = sizes[(sizes >= start) & (sizes % step == 0)] - 1
    crossed = 0
    for _ in range(paths // 10_000):
        means = rng.standard_normal((10_000, LABELS)).cumsum(axis=1) / np.sqrt(sizes)
        crossed += int(np.count_nonzero((means[:, looks] > bound).any(axis=1)))
    return crossed / paths


def _spread(values: list[int]) -> str:
    """The median and the 10th to 90th percentiles: ``60 (40-90)``."""
    if not values:
        return "-"
    low, mid, high = np.percentile(values, [10, 50, 90])
    return f"{mid:.0f} ({low:.0f}-{high:.0f})"


def _upper(hits: int, runs: int) -> float:
    """The one-sided 95% upper bound of a rate of ``hits`` in ``runs`` (Wilson's)."""
    z = 1.645
    rate = hits / runs
    centre = rate + z * z / (2 * runs)
    spread = z * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs * runs))
    return (centre + spread) / (1 + z * z / runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400, help="healthy runs a case")
    parser.add_argument("--falls", type=int, default=40, help="runs a fall")
    parser.add_argument("--only", choices=["healthy", "falls", "walk"], help="one table only")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=["classifier", "regressor"],
        default=["classifier", "regressor"],
        help="which models' streams",
    )
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[1, 10], help="labels between looks (1 10)"
    )
    args = parser.parse_args()
    if args.only in (None, "walk"):
        print("| level | judged every | random walks crossing |")
        print("| --- | --- | --- |")
        for total in (0.01, 0.005, 0.0025):
            for step in args.steps:
                print(f"| {total} | {step} | {walk(total, step):.2%} |")
        print()
        if args.only:
            return
    tester, ninety, ridge = classifier(1.0), classifier(1.15), regressor()
    if args.only in (None, "healthy"):
        print("| healthy model | judged every | runs | false alarms | at labels | why | took |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for step in args.steps:
            if "classifier" in args.models:
                healthy_rates("classifier (accuracy 0.86)", tester, args.runs, step, 7)
                healthy_rates("classifier (accuracy 0.90)", ninety, args.runs, step, 8)
            if "regressor" in args.models:
                healthy_rates("regressor (Ridge)", ridge, args.runs, step, 9)
        print()
    if args.only in (None, "falls"):
        print("| fall | judged every | runs | labels to flag: empty window | full window |")
        print("| --- | --- | --- | --- | --- |")
        for step in args.steps:
            if "classifier" in args.models:
                fall(
                    "accuracy 0.90 -> 0.70", ninety, relabelled(1 - 0.7 / 0.9), args.falls, step, 10
                )
                fall(
                    "accuracy 0.90 -> 0.50", ninety, relabelled(1 - 0.5 / 0.9), args.falls, step, 11
                )
            if "regressor" in args.models:
                fall("regressor's error x2", ridge, doubled, args.falls, step, 12)


if __name__ == "__main__":
    main()
