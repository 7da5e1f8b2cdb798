"""The per-feature drift series in the Prometheus text format, written once per drift report.

A version's drift report holds a handful of series per feature: four scores, a verdict, a
p-value, two missing shares and a test. A model of 2,000 features has some 14,000 of them,
and prometheus_client's ``generate_latest`` formats each sample on its own (its label names
checked, its labels sorted, a string built from pieces): 150-200 ms of pure Python for such a
scrape. On a thread of its own that still stalled serving as long, the event loop waiting
for the interpreter lock while the scrape held it. These families are written here instead,
with the labels in the order ``generate_latest`` sorts them to, so the text is the same
byte for byte: each feature's lines in one format string, about a tenth of the time, and only
once per report (an idle model's report stays the same object until its window changes,
``ProfileBinning.report``). Their samples are still there for whatever reads the registry
(``get_sample_value``), made when asked.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from modelpilot.monitoring.collected import Families
from modelpilot.monitoring.drift_results import DriftReport

SCORES = ("psi", "js_distance", "kl_divergence", "wasserstein")
"""``modelpilot_feature_drift_score``'s methods, in the order they are written."""


@dataclass(frozen=True)
class Family:
    name: str
    documentation: str
    extra: str | None = None
    """Its label besides model, version and feature (``method``, ``data``), if any."""

    def labels(self, feature: str, extra: str | None) -> str:
        """The series' labels past the model and version's, escaped, in the order
        ``generate_latest`` sorts them to (by name)."""
        if self.extra is None:
            return f'feature="{feature}",'
        if self.extra < "feature":
            return f'{self.extra}="{extra}",feature="{feature}",'
        return f'feature="{feature}",{self.extra}="{extra}",'


DRIFT_SCORE = Family(
    "modelpilot_feature_drift_score",
    "Drift score of one feature over the drift window, by method "
    "(psi, js_distance, kl_divergence, wasserstein in reference standard deviations); "
    "no series while the window is empty.",
    "method",
)
DRIFTED = Family(
    "modelpilot_feature_drifted",
    "1 when the feature drifted under the configured rule; while the window holds too "
    "few rows to judge, the verdict the data_drift alert holds.",
)
P_VALUE = Family(
    "modelpilot_feature_drift_p_value",
    "p-value that decides the feature's drift: the smaller of its two tests' (numbers: "
    "KS of the values, Fisher's exact test of the missing share; categories: "
    "chi-squared, Fisher's exact test of the rare categories' share); under the "
    "drift p-value divided by twice the number of features it drifted, when its effect "
    "size (PSI for numbers, Jensen-Shannon for categories) also reaches its threshold. "
    "No series where no test ran (too few rows; numbers on large windows against a "
    "reference of as many values, where PSI decides).",
)
MISSING_SHARE = Family(
    "modelpilot_feature_missing_share",
    "Share of rows in which the feature is missing, in the drift window or the reference.",
    "data",
)
MISSING_P_VALUE = Family(
    "modelpilot_feature_missing_p_value",
    "p-value of Fisher's exact test of the window's missing share against the "
    "reference's, on windows small enough to use it (numeric features).",
)
FAMILIES = (DRIFT_SCORE, DRIFTED, P_VALUE, MISSING_SHARE, MISSING_P_VALUE)

Entry = tuple[Family, str, str | None, float]
"""A series of a report: its family, feature, extra label's value, and value."""


def entries(drift: DriftReport) -> Iterator[Entry]:
    """Every per-feature series of ``drift``, feature by feature."""
    for feature in drift.features:
        name = feature.name
        scores = (feature.psi, feature.js_distance, feature.kl_divergence, feature.wasserstein)
        for method, value in zip(SCORES, scores, strict=True):
            if value is not None and not math.isnan(value):  # NaN: an empty window
                yield DRIFT_SCORE, name, method, value
        yield DRIFTED, name, None, float(feature.drifted)
        # The p-value of the verdict's test (a feature drifted by the rare categories' test
        # once read 1.0 here, its chi-squared test's).
        if feature.deciding_p_value is not None:
            yield P_VALUE, name, None, feature.deciding_p_value
        for data, share in (
            ("window", feature.missing_share),
            ("reference", feature.reference_missing_share),
        ):
            if not math.isnan(share):
                yield MISSING_SHARE, name, data, share
        if feature.missing_p_value is not None:
            yield MISSING_P_VALUE, name, None, feature.missing_p_value


def _escaped(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class ReportLines:
    """One version's drift report, its lines of each family written out."""

    def __init__(self, model: str, version: str, drift: DriftReport) -> None:
        self.model, self.version = model, version
        self.drift = drift  # held, so that its id is not another's while this is kept
        tail = f'model="{_escaped(model)}",version="{_escaped(version)}"}} '
        lines: dict[str, list[str]] = {family.name: [] for family in FAMILIES}
        for family, feature, extra, value in entries(drift):
            lines[family.name].append(
                f"{family.name}{{{family.labels(_escaped(feature), extra)}{tail}"
                f"{floatToGoString(value)}\n"  # type: ignore[no-untyped-call]
            )
        self.text = {name: "".join(found) for name, found in lines.items()}

    def samples(self, wanted: Family) -> Iterator[Sample]:
        """``wanted``'s samples of this report, as prometheus_client would hold them."""
        for family, feature, extra, value in entries(self.drift):
            if family is wanted:
                labels = {"model": self.model, "version": self.version, "feature": feature}
                if family.extra is not None and extra is not None:
                    labels[family.extra] = extra
                yield Sample(family.name, labels, value)


class FeatureFamily(Metric):
    """One per-feature family over every version's report: its text written already, its
    samples made only when something reads them (``Metric.samples``)."""

    def __init__(self, family: Family, reports: list[ReportLines]) -> None:
        self._family, self._reports = family, reports
        super().__init__(family.name, family.documentation, "gauge")

    @property
    def samples(self) -> list[Sample]:
        return [s for report in self._reports for s in report.samples(self._family)]

    @samples.setter
    def samples(self, _: list[Sample]) -> None:
        """(``Metric.__init__`` sets an empty list: the samples are the reports'.)"""

    def exposition(self) -> str:
        """The family in the text format, as ``generate_latest`` writes it."""
        documentation = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        head = f"# HELP {self.name} {documentation}\n# TYPE {self.name} gauge\n"
        return head + "".join(report.text[self.name] for report in self._reports)


class FeatureLines:
    """The lines of each version's last drift report, kept while it stays the last."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], ReportLines] = {}
        self._lock = threading.Lock()  # scrapes may run side by side

    def families(self, reports: Iterable[tuple[str, str, DriftReport]]) -> list[FeatureFamily]:
        """The per-feature families of ``reports`` (model, version, drift report)."""
        kept: dict[tuple[str, str], ReportLines] = {}
        with self._lock:
            for model, version, drift in reports:
                lines = self._kept.get((model, version))
                if lines is None or lines.drift is not drift:
                    lines = ReportLines(model, version, drift)
                kept[(model, version)] = lines
            self._kept = kept
        ordered = list(kept.values())
        return [FeatureFamily(family, ordered) for family in FAMILIES]


def exposition(registry: Collector) -> bytes:
    """``registry`` in the Prometheus text format: ``generate_latest``'s, but the per-feature
    families written from their reports' text (see the module's docstring)."""
    parts: list[str] = []
    others: list[Metric] = []
    for family in registry.collect():
        if isinstance(family, FeatureFamily):
            if others:
                parts.append(generate_latest(Families(others)).decode())
                others = []
            parts.append(family.exposition())
        else:
            others.append(family)
    if others:
        parts.append(generate_latest(Families(others)).decode())
    return "".join(parts).encode()
