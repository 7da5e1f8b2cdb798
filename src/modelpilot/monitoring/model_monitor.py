"""Watching one served version: input drift, what it predicts, and how right it is."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftReport, DriftThresholds
from modelpilot.monitoring.drift_results import HeldDrift, holding
from modelpilot.monitoring.log_records import LogEntry
from modelpilot.monitoring.monitor_state import MonitorState, pivots_of
from modelpilot.monitoring.performance import (
    PerformanceReport,
    PerformanceThresholds,
    PerformanceWindow,
)
from modelpilot.monitoring.predictions import PredictionBins, PredictionSummary
from modelpilot.monitoring.quality_history import QualityHistory
from modelpilot.monitoring.window import RecentRows
from modelpilot.monitoring.window_parts import PartedWindow, newest, part_rows
from modelpilot.registry.profile import FeatureProfile, ReferenceProfile
from modelpilot.registry.quality import stated_metrics
from modelpilot.registry.types import ModelVersion

RESTORE_CHUNK = 200
"""Logged requests put back in a window together (the window's time is kept per chunk)."""


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Windows and thresholds for model monitoring (built from ``Settings``)."""

    window_rows: int = 5000
    window_seconds: float = 3600.0
    drift: DriftThresholds = field(default_factory=DriftThresholds)
    performance_rows: int = 1000
    performance_seconds: float = 24 * 3600.0
    performance: PerformanceThresholds = field(default_factory=PerformanceThresholds)
    window_parts: int = 0
    """Parts each worker tells its window in, for the merge to take the newest rows over all
    (``window_parts``); 0 where the process serves alone, and its window counts whole."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Logged requests that could not be put back in the windows."""

    requests: int
    error: str
    """What the first of them raised."""


@dataclass(frozen=True, slots=True)
class ModelReport:
    model: str
    version: str
    requests: int
    rows: int
    drift: DriftReport | None
    predictions: PredictionSummary | None
    performance: PerformanceReport | None
    performance_history: list[dict[str, float]]
    classes_total: dict[str, int] = field(default_factory=dict)
    """Predictions by class since the server started (classifiers)."""
    labels_total: int = 0
    reference_performance: dict[str, float] = field(default_factory=dict)
    drift_unwatched: str = ""
    """Why the version's input drift is not watched (``drift`` None), in words; "" where
    it is: the dashboard said "no reference profile" of a model that declares inputs of its
    own, registered with a reference (whose predictions were watched against it)."""
    quality_unjudged: str = ""
    """Why the version's labels are never judged for concept drift (nothing to judge them
    against: ``PerformanceWindow.never_judged``), in words; "" where they are: a version
    registered without reference figures showed its accuracy, 2%, beside "concept_drift":
    false and no word that nothing judged it."""

    @property
    def concept_drift(self) -> bool:
        return self.performance is not None and self.performance.concept_drift


def _drift_unwatched(version: ModelVersion, profile: ReferenceProfile | None) -> str:
    """Why ``version``'s input drift is not watched, as registration said it."""
    signature = version.signature
    if profile is None:
        return "the version has no reference profile (register it with --reference DATA)"
    if not signature.is_tabular:
        inputs = ", ".join(s.name for s in signature.inputs)
        return (
            f"the model declares inputs of its own ({inputs}), and drift is watched on one "
            "table of features"
        )
    return (
        f"its reference profile has {len(profile.features)} features and the model takes "
        f"{signature.n_features}"
    )


class ModelMonitor:
    """All that is watched about one version. Not thread-safe: the ``Monitor`` serializes calls."""

    def __init__(
        self, version: ModelVersion, profile: ReferenceProfile | None, config: MonitorConfig
    ) -> None:
        self.version = version
        self.config = config
        self.binning: ProfileBinning | None = None
        signature = version.signature
        if (
            profile is not None
            and signature.is_tabular
            and (signature.n_features in (None, len(profile.features)))
        ):
            self.binning = ProfileBinning(profile)
        self.drift_unwatched = (
            "" if self.binning is not None else _drift_unwatched(version, profile)
        )
        self.predictions = PredictionBins(version, profile) if signature.outputs else None
        features = self.binning.size if self.binning else 0
        feature_sums = self.binning.sums_size if self.binning else 0
        self._split = (features, feature_sums)
        prediction_size = self.predictions.size if self.predictions else 0
        prediction_sums = self.predictions.sums_size if self.predictions else 3
        self.window = PartedWindow(
            features + prediction_size,
            feature_sums + prediction_sums,
            config.window_rows,
            config.window_seconds,
        )
        self.recent = RecentRows(config.drift.large_sample_rows)
        self.cumulative_classes = np.zeros(prediction_size, dtype=np.int64)
        self.requests = 0
        self.rows = 0
        metadata = version.metadata
        # Measured at registration on the labelled reference data, or stated there (a
        # "metrics" mapping, or `--metadata accuracy=0.95`, which wins: a figure stated beside
        # reference data that the model trained on is the one to judge against).
        reference_metrics = {
            **_floats(metadata.get("reference_metrics")),
            **_floats(stated_metrics(metadata)),
        }
        # Label shift is judged against the reference labels only: against what the model
        # predicted on the reference data, a clusterer's cluster ids or an outlier
        # detector's share set by its contamination raised a certain concept drift on
        # labels that were right. The errors' scale may come from the predictions.
        outcome = None
        if profile is not None:
            outcome = profile.target or profile.predictions
        target = profile.target if profile is not None else None
        reference_labels = target.categories if target is not None else None
        self.performance = PerformanceWindow(
            "classification" if self.predictions and self.predictions.classifier else "regression",
            list(self.predictions.classes) if self.predictions else [],
            reference_metrics,
            reference_labels or None,
            config.performance_rows,
            config.performance_seconds,
            config.performance,
            # A label must be one of the model's classes, where it says what they are, else
            # of the reference labels' (and predictions'), where its profile names them all
            # (not where it pooled the rarer ones); label shift is tested at the
            # significance level data drift is.
            known_classes=signature.extra.get("classes", []),
            label_classes=list(profile.target.categories)
            if profile is not None and profile.target is not None and profile.target.other is None
            else [],
            p_value=config.drift.p_value,
            # An error is judged against the target's scale where its reference one is ~0.
            target_scale=_scale(outcome),
            several_targets=bool(self.predictions and self.predictions.several),
        )
        self._history = QualityHistory()

    def observe(
        self,
        requests: int,
        rows: np.ndarray | None,
        outputs: dict[str, np.ndarray],
        at: float,
        totals: bool = True,
    ) -> None:
        """Account for answered requests: their input rows (2-D) and outputs, concatenated.
        Without ``totals`` they go into the windows only (requests restored from the log were
        counted by the server that answered them).

        Everything is binned before anything is kept: requests that cannot be binned raise
        and leave the windows as they were (counted among the requests, as answered)."""
        self.requests += requests if totals else 0
        limit = self.window.max_rows
        head = 0
        early_classes = None
        if rows is not None and rows.shape[0] > limit:
            # The window holds its last ``window_rows`` rows, in whole batches: of a larger one
            # only its last rows go in (whole, it would hold the window past its size for as
            # long as it stayed). The totals count it all.
            total, head = rows.shape[0], rows.shape[0] - limit
            if totals and self.predictions is not None and self.predictions.classifier and outputs:
                early = _row_slice(outputs, total, slice(None, head))
                early_classes = self.predictions.count(early)[0]
            rows = rows[head:]
            outputs = _row_slice(outputs, total, slice(head, None))
        n = 0 if rows is None else rows.shape[0]
        features, feature_sums = self._split
        counts = np.zeros(self.window.counts.size, dtype=np.int64)
        sums = np.zeros(self.window.sums.size)
        binned = self.binning is not None and rows is not None and n > 0
        if binned:
            assert self.binning is not None and rows is not None
            counts[:features], sums[:feature_sums] = self.binning.count(rows)
        prediction_counts = None
        if self.predictions is not None and outputs:
            prediction_counts, prediction_sums = self.predictions.count(outputs)
            counts[features:] = prediction_counts
            sums[feature_sums:] = prediction_sums
            # Without input rows (a model of named inputs), rows are its predictions: a
            # classifier's counted by class (labels of text have no numeric sums).
            counted = prediction_counts.sum() if self.predictions.classifier else prediction_sums[0]
            n = n or int(counted)
        if binned:
            assert rows is not None
            self.recent.add(rows)
        if totals:
            self.rows += head + n
            if early_classes is not None:
                self.cumulative_classes += early_classes
            if prediction_counts is not None and self.predictions and self.predictions.classifier:
                self.cumulative_classes += prediction_counts
        self.window.add(n, counts, sums, at)

    def restore(self, entries: Sequence[LogEntry]) -> Skipped | None:
        """Put requests from the inference log (oldest first) back in the windows, as a
        server that restarts finds them; the totals stay as they are.

        Requests are put back in chunks, as rounds were taken. A chunk that cannot be joined
        into one array per name (a request answered with rows of another shape, which the
        running server binned apart) goes back request by request, as it was binned; a
        request that cannot go back at all is skipped (what was skipped is returned): one
        logged answer must not cost the windows the rest."""
        signature = self.version.signature
        name = signature.inputs[0].name if signature.is_tabular and self.binning else None
        skipped, error = 0, ""
        for start in range(0, len(entries), RESTORE_CHUNK):
            chunk = entries[start : start + RESTORE_CHUNK]
            names = set(chunk[0].outputs)
            if any(set(e.outputs) != names or (name and name not in e.inputs) for e in chunk):
                continue  # written by another form of the version: not this window's
            try:
                self._restore_chunk(chunk, name, names)
                continue
            except (ValueError, TypeError, KeyError, IndexError):
                pass  # nothing was counted: ``observe`` fails before it adds
            for entry in chunk:
                try:
                    self._restore_chunk([entry], name, names)
                except (ValueError, TypeError, KeyError, IndexError) as exc:
                    skipped += 1
                    error = error or f"{type(exc).__name__}: {exc}"
        return Skipped(skipped, error) if skipped else None

    def _restore_chunk(self, chunk: Sequence[LogEntry], name: str | None, names: set[str]) -> None:
        rows = _logged([r for e in chunk for r in e.inputs[name]]) if name else None
        outputs = {n: _logged([v for e in chunk for v in e.outputs[n]]) for n in names}
        self.observe(len(chunk), rows, outputs, chunk[-1].created_at, totals=False)

    def label(
        self,
        truth: Any,
        predicted: Any,
        proba: np.ndarray | None,
        at: float,
        key: Any = None,
        count: bool = True,
    ) -> None:
        """Take the label of one predicted row; ``key`` (request id and row) makes a second
        label for the same row replace the first. Without ``count``, the labels total leaves
        it out (restored from the log, it was counted when posted)."""
        self.performance.add(truth, predicted, proba, at, key, count)

    def state(self, now: float | None = None) -> MonitorState:
        """What this process knows about the version, for sibling workers to merge."""
        self.window.expire(now)
        config, recent, parts = self.config, None, None
        large = config.drift.large_sample_rows
        if config.window_parts:
            parts = self.window.parts(part_rows(config.window_rows, config.window_parts))
        # Shared, a window under the KS test's rows may be the newest of a larger one.
        if self.window.rows < large or (parts is not None and config.window_rows < large):
            recent = self.recent.last(min(self.window.rows, large - 1))
        return MonitorState(
            self.version.model,
            self.version.version,
            self.requests,
            self.rows,
            self.window.rows,
            self.window.counts.copy(),
            self.window.sums.copy(),
            recent,
            self.performance.rows(now),
            self.performance.total,
            self.cumulative_classes.copy(),
            self.predictions.pivot if self.predictions else None,
            tuple(self.predictions.pivots)
            if self.predictions and self.predictions.several
            else None,
            self.predictions.class_names() if self.predictions else None,
            parts,
        )

    def report(
        self,
        now: float | None = None,
        peers: Sequence[MonitorState] = (),
        own: MonitorState | None = None,
        held: bool = False,
        held_drift: HeldDrift | None = None,
    ) -> ModelReport:
        """This version's report, over this process's windows (``own``, if already taken at
        ``now``) plus those of ``peers``; ``held``: whether its concept drift holds where its
        quality window cannot judge (``PerformanceWindow.report``); ``held_drift``: the data
        drift that holds where its drift window cannot judge (``drift_results.holding``)."""
        now = time.time() if now is None else now
        own = own or self.state(now)
        # (A state of another shape is of another form of the version: a worker of a release
        # that kept one column's sums of a prediction of several values a row, say.)
        peers = [
            p
            for p in peers
            if p.counts.shape == own.counts.shape and p.sums.shape == own.sums.shape
        ]
        # Workers sharing the window: the newest of their rows, whichever worker took them.
        own, *peers = newest([own, *peers], self.config.window_rows)
        peers = [self._by_name(p) for p in peers]
        counts = own.counts + sum((p.counts for p in peers), np.zeros_like(own.counts))
        features, feature_sums = self._split
        sums = own.sums + sum((self._rebased(p) for p in peers), np.zeros_like(own.sums))
        window_rows = own.window_rows + sum(p.window_rows for p in peers)
        drift = None
        if self.binning is not None:
            recent = None
            if window_rows < self.config.drift.large_sample_rows:
                parts = [s.recent for s in (own, *peers) if s.recent is not None]
                recent = np.concatenate(parts) if parts else None
            drift = self.binning.report(
                counts[:features], sums[:feature_sums], recent, self.config.drift
            )
            if held_drift is not None and not drift.judged:
                drift = holding(drift, held_drift, self.config.drift)
        predictions = None
        if self.predictions is not None:
            predictions = self.predictions.summary(counts[features:], sums[feature_sums:])
        others = [row for p in peers for row in p.labelled]
        performance = self.performance.report(now, others, held)
        # No labels (an empty window, or a drift held on none): a gap in the chart.
        self._history.record(now, performance.current if performance is not None else {})
        classes: dict[str, int] = {}
        if self.predictions is not None and self.predictions.classifier:
            totals = own.classes + sum((p.classes for p in peers), np.zeros_like(own.classes))
            if self.predictions.seen is not None:
                classes = self.predictions.seen.by_name(totals)
            else:
                classes = {name: int(totals[i]) for i, name in enumerate(self.predictions.classes)}
        return ModelReport(
            self.version.model,
            str(self.version.version),
            own.requests + sum(p.requests for p in peers),
            own.rows + sum(p.rows for p in peers),
            drift,
            predictions,
            performance,
            self._history.points(),
            classes,
            own.labels_total + sum(p.labels_total for p in peers),
            dict(self.performance.reference),
            drift_unwatched=self.drift_unwatched,
            quality_unjudged=self.performance.never_judged,
        )

    def _by_name(self, peer: MonitorState) -> MonitorState:
        """``peer`` with its predictions' class counts in this process's slots, where the
        version names no classes and each process gives them slots as it sees them."""
        predictions = self.predictions
        names = getattr(peer, "class_names", None)
        if predictions is None or predictions.seen is None or names is None:
            return peer
        at = self._split[0]
        theirs = peer.counts[at:]
        window = predictions.aligned(theirs, names)
        counts = peer.counts
        if window is not theirs:
            counts = np.concatenate([counts[:at], window])
        return replace(peer, counts=counts, classes=predictions.aligned(peer.classes, names))

    def _rebased(self, peer: MonitorState) -> np.ndarray:
        """``peer``'s sums, its predictions' taken about this process's pivots (each the
        peer's, where this process has counted no number of that column yet)."""
        predictions = self.predictions
        if predictions is None:
            return peer.sums
        theirs = pivots_of(peer)
        for column, pivot in enumerate(theirs[: predictions.width]):
            if predictions.pivots[column] is None:
                predictions.pivots[column] = pivot
        at = self._split[1]
        sums = peer.sums.copy()
        sums[at:] = predictions.rebased(sums[at:], [p or 0.0 for p in theirs])
        return sums


def _logged(values: list[Any]) -> np.ndarray:
    """Logged values (JSON's lists) as the array the model was given: numbers as floats
    (null a missing value), anything else (text beside numbers) as objects."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray(values, dtype=object)


def _scale(outcome: FeatureProfile | None) -> float | None:
    """How large a regression's labels run (their standard deviation, else their size where
    they are constant), from their profile (or that of the predictions, which track them);
    None where nothing says (no numeric profile, or labels all 0)."""
    if outcome is None or outcome.kind != "numeric":
        return None
    return outcome.std or (abs(outcome.mean) if outcome.mean else None)


def _floats(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, item in value.items():
        try:
            out[str(key)] = float(item)
        except (TypeError, ValueError):
            continue
    return out


def _row_slice(outputs: dict[str, np.ndarray], rows: int, part: slice) -> dict[str, np.ndarray]:
    """``part`` of the rows of every output that has one row per input row (others whole)."""
    return {
        name: values[part] if values.ndim and values.shape[0] == rows else values
        for name, values in outputs.items()
    }
