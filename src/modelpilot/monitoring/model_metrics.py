"""Model metrics in Prometheus form, read from the monitor's last reports at scrape time."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from modelpilot.errors import NotFound
from modelpilot.monitoring.alerts import RULES, SEVERITY
from modelpilot.monitoring.feature_exposition import FeatureLines
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.monitor_state import MonitorState
from modelpilot.monitoring.predictions import WATCHED_COLUMNS, PredictionBins, SeenClasses
from modelpilot.monitoring.system import ChildUsage

VERSION = ["model", "version"]


class ModelCollector(Collector):
    """Drift, prediction distribution, quality from labels, and alerts."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._class_names: dict[tuple[str, int], list[str]] = {}
        """Each version's classes, in the order of its states' class counts ([] if none)."""
        self._seen: dict[tuple[str, int], SeenClasses] = {}
        """The classes of each version that names none, as this process gave them series
        (``SeenClasses``): its workers' states carry their classes by name."""
        self._seen_lock = threading.Lock()  # scrapes may run side by side
        self._feature_lines = FeatureLines()
        """The per-feature series, written once per drift report (``feature_exposition``)."""

    def collect(self) -> Iterator[Any]:
        reports = self.monitor.reports()
        totals = self._running_totals(reports)
        dataset = GaugeMetricFamily(
            "modelpilot_dataset_drift",
            "1 when enough features drifted (as modelpilot_feature_drifted, held with the "
            "data_drift alert while the window cannot judge).",
            labels=VERSION,
        )
        share = GaugeMetricFamily(
            "modelpilot_drifted_features_share",
            "Share of features that drifted; while the window holds too few rows to judge, "
            "the share the data_drift alert holds.",
            labels=VERSION,
        )
        window = GaugeMetricFamily(
            "modelpilot_drift_window_rows", "Rows in the drift window.", labels=VERSION
        )
        classes = CounterMetricFamily(
            "modelpilot_prediction_class",
            "Predictions by class since the server started.",
            labels=[*VERSION, "class"],
        )
        mean = GaugeMetricFamily(
            "modelpilot_prediction_mean",
            "Mean prediction over the window (of a classifier's labels where they are numbers: "
            "for 0/1 labels, the share of 1s; none for text labels). A prediction of several "
            'values a row has one per column instead, labelled output="predict[0]" (from 0; '
            f"its first {WATCHED_COLUMNS} columns).",
            labels=VERSION,
        )
        variance = GaugeMetricFamily(
            "modelpilot_prediction_variance",
            "Prediction variance over the window (as the mean, of numeric labels alone; by "
            "output column, as the mean).",
            labels=VERSION,
        )
        prediction_drift = GaugeMetricFamily(
            "modelpilot_prediction_drift_score",
            "Jensen-Shannon distance between the window's predictions and the reference's.",
            labels=VERSION,
        )
        performance = GaugeMetricFamily(
            "modelpilot_model_performance",
            "Quality over the window of labelled predictions (metric: accuracy; f1, the "
            "macro-averaged F1, the mean of every class's, binary models too; auc, of the "
            "second class for two classes, else one-vs-rest macro-averaged over the classes "
            "the labels hold; mae; rmse: of a regressor of several targets, over every "
            "target's errors).",
            labels=[*VERSION, "metric"],
        )
        reference = GaugeMetricFamily(
            "modelpilot_reference_performance",
            "Quality stored at registration (metrics as in modelpilot_model_performance: f1 "
            "macro-averaged F1).",
            labels=[*VERSION, "metric"],
        )
        labels = CounterMetricFamily(
            "modelpilot_labels", "Labels joined to predictions.", labels=VERSION
        )
        concept = GaugeMetricFamily(
            "modelpilot_concept_drift",
            "1 when quality fell or the labels shifted past their thresholds; while the window "
            "holds too few labels to judge, the verdict the concept_drift alert holds.",
            labels=VERSION,
        )
        for report in reports:
            key = [report.model, report.version]
            if report.drift is not None:
                dataset.add_metric(key, float(report.drift.dataset_drift))
                share.add_metric(key, report.drift.drifted_share)
                window.add_metric(key, report.drift.rows)
            if report.predictions is not None:
                if report.predictions.mean is not None:
                    mean.add_metric(key, report.predictions.mean)
                if report.predictions.variance is not None:
                    variance.add_metric(key, report.predictions.variance)
                _by_column(report, mean, variance)
                if report.predictions.drift is not None:
                    prediction_drift.add_metric(key, report.predictions.drift)
            for name, value in report.reference_performance.items():
                reference.add_metric([*key, name], value)
            if report.performance is not None:
                for name, value in report.performance.current.items():
                    performance.add_metric([*key, name], value)
            concept.add_metric(key, float(report.concept_drift))
        for (model, version), (by_class, labelled) in sorted(totals.items()):
            for name, count in by_class.items():
                classes.add_metric([model, version, name], float(count))
            labels.add_metric([model, version], labelled)
        drifts = ((r.model, r.version, r.drift) for r in reports if r.drift is not None)
        yield from self._feature_lines.families(drifts)
        yield from (dataset, share, window)
        yield from (classes, mean, variance, prediction_drift)
        yield from (performance, reference, labels, concept)
        yield from self._alerts()

    def _running_totals(
        self, reports: Sequence[ModelReport]
    ) -> dict[tuple[str, str], tuple[dict[str, int], int]]:
        """Each version's predictions by class and labels since the server started.

        With worker processes, summed over the last snapshot of every worker (``siblings``),
        this one's included, and of a dead one until its successor carries its totals on;
        not taken from this worker's report, which adds its own live totals to its
        siblings' last published ones. Every worker then answers with the same sums, or
        newer ones, and they never go back; they lag by up to a monitoring round.
        """
        exchange = self.monitor.exchange
        if exchange is None:
            return {(r.model, r.version): (r.classes_total, r.labels_total) for r in reports}
        for report in reports:
            self._class_names.setdefault(
                (report.model, int(report.version)), list(report.classes_total)
            )
        sums: dict[tuple[str, int], tuple[np.ndarray, int]] = {}
        with self._seen_lock:
            for snapshot in exchange.everyone():
                for state in snapshot.states:
                    key = (state.model, state.version)
                    classes = self._by_name(key, state)
                    counted = sums.get(key)
                    if counted is None:
                        sums[key] = (classes.copy(), state.labels_total)
                    elif counted[0].shape == classes.shape:
                        sums[key] = (counted[0] + classes, counted[1] + state.labels_total)
            totals = {}
            for (model, version), (counts, labelled) in sums.items():
                seen = self._seen.get((model, version))
                by_class = {}
                if seen is not None:
                    if counts.size == seen.capacity + 1:
                        by_class = seen.by_name(counts)
                else:
                    names = self._names(model, version)
                    if len(names) < counts.size:  # the last count: classes it does not know
                        by_class = {name: int(counts[i]) for i, name in enumerate(names)}
                totals[(model, str(version))] = (by_class, labelled)
        return totals

    def _by_name(self, key: tuple[str, int], state: MonitorState) -> np.ndarray:
        """``state``'s predictions by class, in the slots this process gives the version's
        classes where it names none (each worker gives them slots as it sees them)."""
        names = getattr(state, "class_names", None)
        if names is None:
            return state.classes
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = SeenClasses((), state.classes.size - 1)
        if seen.capacity + 1 != state.classes.size:
            return state.classes  # another form of the version: left out, by its shape
        return seen.aligned(state.classes, names)

    def _names(self, model: str, version: int) -> list[str]:
        """``version``'s classes: as its monitor knows them, or (in a worker just started, before
        its first report) as the registry does."""
        names = self._class_names.get((model, version))
        if names is None:
            watched = self.monitor.model_monitor(model, version)
            bins = watched.predictions if watched is not None else None
            if watched is None:
                registry = self.monitor.registry
                try:
                    found = registry.get_version(model, version)
                except NotFound:
                    return []
                if found.signature.outputs:
                    profile = None
                    if found.has_reference:
                        profile = registry.reference_profile(model, version)
                    bins = PredictionBins(found, profile)
            names = bins.classes if bins is not None and bins.classifier else []
            self._class_names[(model, version)] = names
        return names

    def _alerts(self) -> Iterator[Any]:
        """Alerts by rule, model, version and severity: a model's version apart from its
        name, as in every other metric, so that they join in PromQL (both empty for the
        service's own rules, error rate and latency)."""
        book = self.monitor.alert_state()
        labels = ["rule", *VERSION, "severity"]
        active = GaugeMetricFamily(
            "modelpilot_alert_active",
            "1 while an alert holds (rule: " + ", ".join(RULES) + ").",
            labels=labels,
        )
        for alert in book.active:
            active.add_metric([alert.rule, *_model_and_version(alert.model), alert.severity], 1)
        yield active
        pending = GaugeMetricFamily(
            "modelpilot_alert_pending",
            "1 while a drift rule holds but has not held long enough to fire "
            "(MODELPILOT_ALERT_FOR_SECONDS), or monitoring_losing "
            "(MODELPILOT_ALERT_MONITORING_LOSS_FOR_SECONDS).",
            labels=labels,
        )
        for rule, model in book.pending:
            pending.add_metric([rule, *_model_and_version(model), SEVERITY[rule]], 1)
        yield pending
        fired = CounterMetricFamily(
            "modelpilot_alerts_fired", "Alerts that started firing.", labels=labels
        )
        for (rule, model, severity), count in book.fired_total.items():
            fired.add_metric([rule, *_model_and_version(model), severity], count)
        yield fired


def _by_column(report: ModelReport, mean: GaugeMetricFamily, variance: GaugeMetricFamily) -> None:
    """The mean and variance of each column of a prediction of several values a row, with
    an ``output`` label beside the model's and version's (``predict[1]``). The series of a
    prediction of one value a row keep their labels as they were (no ``output``), so that
    dashboards and rules over them hold; a version's series have one form or the other."""
    columns = report.predictions.columns if report.predictions is not None else None
    for column in columns or ():
        labels = {"model": report.model, "version": report.version, "output": column.output}
        if column.mean is not None:
            mean.samples.append(Sample(mean.name, labels, column.mean))
        if column.variance is not None:
            variance.samples.append(Sample(variance.name, labels, column.variance))


def _model_and_version(label: str) -> tuple[str, str]:
    """An alert's ``model:version`` as its two labels (``""`` twice for the service's)."""
    model, _, version = label.rpartition(":")
    return (model, version) if model else (label, "")


class MonitorCollector(Collector):
    """Monitoring's own work in this process: what it dropped, left unwatched, cost and
    failed to do. Per process, as the workers of ``serve --workers`` each do their own
    (exported there with a worker label, which sum() adds up; every worker's merged view of
    the models is ``ModelCollector``'s)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._child = ChildUsage()

    def collect(self) -> Iterator[Any]:
        child = self._child.read(self.monitor.tap.pid)
        if child is not None:  # "process" metrics cover the serving process alone
            cpu, rss = child
            yield CounterMetricFamily(
                "modelpilot_monitor_process_cpu_seconds",
                "CPU time of the monitoring process (of every one, where one died and was "
                "replaced).",
                value=cpu,
            )
            yield GaugeMetricFamily(
                "modelpilot_monitor_process_resident_memory_bytes",
                "Resident memory of the monitoring process.",
                value=rss,
            )
        if self.monitor.tap.pid is not None:  # a monitoring process of its own
            yield CounterMetricFamily(
                "modelpilot_monitor_process_restarts",
                "Monitoring processes started in place of one that died or was killed as hung "
                "(the server's log says why, and what went with it).",
                value=self.monitor.tap.restarts,
            )
        yield CounterMetricFamily(
            "modelpilot_alert_webhook_failures",
            "Attempts at an alert notification that the webhook did not take (retries count).",
            value=self.monitor.alerts.webhook_failures,
        )
        yield CounterMetricFamily(
            "modelpilot_alert_webhook_dropped",
            "Alert notifications never delivered: refused, or given up after every retry.",
            value=self.monitor.alerts.webhook_dropped,
        )
        yield CounterMetricFamily(
            "modelpilot_monitor_dropped",
            "Answered requests left unmonitored: the monitor fell behind (more calls waited "
            "for it than it holds), or its monitoring process was being replaced, or died (or "
            "was killed as hung) before it counted them (in no total; in the inference log only "
            "as far as it wrote them). Labels for those the log lacks cannot join.",
            value=self.monitor.dropped,
        )
        yield CounterMetricFamily(
            "modelpilot_monitor_unlogged",
            "Answered requests monitored but never written to the inference log: its writes "
            "failed for longer than a minute (database down, disk full), or it could not be "
            "opened. Labels for them cannot join.",
            value=self.monitor.unlogged,
        )
        yield CounterMetricFamily(
            "modelpilot_monitor_unsampled",
            "Answered requests left unwatched by the sample rate (MODELPILOT_MONITOR_SAMPLE_RATE).",
            value=self.monitor.unsampled,
        )
        yield CounterMetricFamily(
            "modelpilot_monitor_handover_seconds",
            "CPU time the event loop spent handing answered calls over to the monitoring "
            "process (joining, encoding, writing them): monitoring's own cost on the loop.",
            value=self.monitor.handover_seconds,
        )
        yield CounterMetricFamily(
            "modelpilot_monitor_failures",
            "Monitoring rounds, inference log writes and restores that raised, and logged "
            "batches that could not be read back (see the log).",
            value=self.monitor.failures,
        )
