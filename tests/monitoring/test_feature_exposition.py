"""The per-feature drift series, written as text once per drift report: the same text as
prometheus_client writes, byte for byte, and the same samples for whatever reads them."""

from __future__ import annotations

import math

import pandas as pd
from prometheus_client import generate_latest

from modelpilot.monitoring.collected import Families
from modelpilot.monitoring.drift_results import DriftReport, FeatureDrift
from modelpilot.monitoring.feature_exposition import FAMILIES, FeatureLines, exposition
from tests.monitoring.conftest import Served, send, shifted_traffic

NAMES = ["plain", 'quote"d', "back\\slash", "new\nline", "ünïcode €", ""]


def feature(name: str, i: int, empty: bool = False) -> FeatureDrift:
    nan = math.nan
    return FeatureDrift(
        name=name,
        kind="numeric",
        rows=0 if empty else 100 + i,
        method="none" if empty else "ks",
        score=0.5,
        threshold=0.9,
        drifted=i % 2 == 0,
        reason="",
        psi=nan if empty else 0.1 * i,
        js_distance=nan if empty else 1e-300 * i,
        kl_divergence=nan if empty else math.inf,
        wasserstein=None if i % 3 == 0 else 12345.678 * i,
        p_value=None if empty else 10.0**-i,
        missing_share=nan if empty else 0.25,
        reference_missing_share=0.0,
        missing_p_value=None if i % 2 else 0.5,
        rare_p_value=1e-20 if i == 4 else None,
    )


def report(*features: FeatureDrift) -> DriftReport:
    return DriftReport(100, tuple(features), False, 0.0, "")


def test_the_text_is_prometheus_clients_and_the_samples_are_the_reports() -> None:
    reports = [
        ("m", "1", report(*(feature(name, i) for i, name in enumerate(NAMES)))),
        ('odd "model"\\', "22", report(feature("x", 7), feature("empty", 3, empty=True))),
    ]
    families = FeatureLines().families(reports)
    assert [f.name for f in families] == [f.name for f in FAMILIES]
    # prometheus_client writes these families from their samples, as it would any other's.
    assert exposition(Families(list(families))) == generate_latest(Families(list(families)))

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    key = (("feature", 'quote"d'), ("method", "psi"), ("model", "m"), ("version", "1"))
    assert samples[("modelpilot_feature_drift_score", key)] == 0.1
    psi_of_empty = (("feature", "empty"), ("method", "psi"), ("model", 'odd "model"\\'))
    assert ("modelpilot_feature_drift_score", (*psi_of_empty, ("version", "22"))) not in samples
    wasserstein = [k for k in samples if ("method", "wasserstein") in k[1]]
    assert len(wasserstein) == 5  # not of features 0 and 3, whose wasserstein is None
    # The deciding p-value: the smallest of the tests'.
    deciding = (("feature", ""), ("model", "m"), ("version", "1"))
    assert samples[("modelpilot_feature_drift_p_value", deciding)] == 1e-5
    shares = [k for k in samples if k[0] == "modelpilot_feature_missing_share"]
    assert len(shares) == 2 * len(NAMES) + 3  # the empty feature's window share is NaN


def test_a_report_is_written_once_while_it_stays_the_last() -> None:
    lines = FeatureLines()
    first = report(feature("a", 1))
    text = lines.families([("m", "1", first)])[0].exposition()
    again = lines.families([("m", "1", first)])[0]
    assert again.exposition() == text
    assert lines._kept[("m", "1")].drift is first  # kept, not written again
    newer = report(feature("a", 2))
    assert lines.families([("m", "1", newer)])[0].exposition() != text
    assert lines.families([])[0].exposition().count("\n") == 2  # a version gone: HELP, TYPE


async def test_metrics_carry_the_served_models_feature_series_as_before(
    served: Served, iris_frame: pd.DataFrame
) -> None:
    """The whole registry of a monitored server: every per-feature line as
    ``generate_latest`` writes it (the other families' figures move between two reads)."""
    await send(served.client, shifted_traffic(iris_frame, 300, seed=3))
    served.monitor.flush()
    registry = served.monitoring.registry

    def feature_lines(text: bytes) -> list[str]:
        return [
            line
            for line in text.decode().splitlines()
            if line.removeprefix("# HELP ")
            .removeprefix("# TYPE ")
            .startswith("modelpilot_feature_")
        ]

    ours = feature_lines(exposition(registry))
    assert len(ours) > 10 * 4  # four features' scores, verdicts, shares and p-values
    assert ours == feature_lines(generate_latest(registry))
    scrape = (await served.client.get("/metrics")).text
    assert [line for line in scrape.splitlines() if line in set(ours)] == ours
