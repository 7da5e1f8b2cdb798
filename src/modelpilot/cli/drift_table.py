"""``modelpilot drift``'s table: each feature's verdict and figures, then the dataset's verdict
and the rule that decided, sized to fit a terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from modelpilot.cli.common import out, terminal_text

if TYPE_CHECKING:  # imported where used: pandas and SQLAlchemy, which --help needs not
    from modelpilot.monitoring.drift import DriftReport, DriftThresholds, FeatureDrift
    from modelpilot.monitoring.offline import Comparison


def has_verdict(report: DriftReport) -> bool:
    """Whether any feature was judged: below the minimum of rows none is."""
    return any(f.method != "none" for f in report.features)


TABLE_ROWS = 50
"""A report of more features prints this many rows, the drifted ones first: a table of 5,000
took a minute to print and could not be read. The HTML report has them all."""


def print_table(comparison: Comparison, thresholds: DriftThresholds) -> None:
    """The features' verdicts and figures (up to ``TABLE_ROWS``), the dataset's verdict and
    the rule that decided, on stdout."""
    from modelpilot.monitoring.drift_results import figures_apart

    report = comparison.report
    # Narrow, so that feature names fit in 80 columns ("sepal_le…" said little).
    table = Table(
        title="Feature drift",
        title_justify="left",
        box=box.SIMPLE,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("feature", overflow="fold")  # a long name on two lines, not cut short
    table.add_column("verdict", overflow="fold")  # "drifted" in pieces, never "drift…"
    shown = _shown(report.features)
    # Missing shares only where some feature has missing values: the table fits 80 columns.
    holes = any(_missing(f.reference_missing_share, f.missing_share) for f in shown)
    rows = []
    for f in shown:
        if f.method == "none":  # no verdict, so no score to weigh against a threshold
            verdict = "[dim]no rows[/]" if f.rows == 0 else "[dim]too few rows[/]"
            if f.error is not None:  # its tests failed (the verdict line says so)
                verdict = "[bold red]failed[/]"
            score, threshold = "-", "-"
        else:
            verdict = "[bold red]drifted[/]" if f.drifted else "[green]ok[/]"
            score, threshold = _figure(f.score, 4), _figure(f.threshold, 4)
            if abs(f.score) < 1e4:  # as many places as keep the two on their sides
                score, threshold = figures_apart(f.score, f.threshold, 4)
        rows.append(
            (
                _name(f.name),
                verdict,
                f.method,
                score,
                threshold,
                _figure(f.psi, 3),
                _figure(f.js_distance, 3),
                "-" if f.wasserstein is None else _figure(f.wasserstein, 3),
                *([_missing(f.reference_missing_share, f.missing_share) or "-"] if holes else []),
            )
        )
    names = ("method", "score", "threshold", "PSI", "JS", "W (sd)", "missing")[: 6 + holes]
    for position, name in enumerate(names, start=2):
        # Never wrapped nor cut: squeezed, "1.02e+300" read "1.02e+3…", a thousand. The
        # figures are short enough (see _figure) for the words to give way instead.
        widest = max((len(row[position]) for row in rows), default=0)
        table.add_column(name, justify="right", no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    if out.measure(table, options=out.options.update_width(1_000)).maximum > out.width:
        # One space between columns rather than two, before any word has to give way; the
        # verdict keeps two ("drifted missing" read as one phrase).
        table.padding = (0, 0)
        table.columns[1].min_width = len("drifted") + 1
    out.print(table)
    left = len(report.features) - len(shown)
    if left:
        drifted = sum(f.drifted for f in report.features) - sum(f.drifted for f in shown)
        among = f", {drifted:,} of them drifted" if drifted else ", none of them drifted"
        out.print(
            f"[dim]{left:,} more features left out of the table{among}: the HTML report "
            "has them all.[/]",
            highlight=False,
        )
    for f in shown:
        if f.drifted and f.name in comparison.new_values:
            said = terminal_text(comparison.new_values[f.name])
            out.print(f"{_name(f.name)}: {said}", highlight=False)
    verdict = report.verdict[:1].upper() + report.verdict[1:]
    if report.rows == 0:  # a file of a header alone, or a log without rows in the window
        verdict = "No rows in the current data: no verdict"
    verdict = terminal_text(verdict)
    if report.dataset_drift:
        summary = f"[bold red]{verdict}[/] over {report.rows:,} rows."
    elif has_verdict(report):
        summary = f"{verdict} over {report.rows:,} rows."
    else:  # the verdict says how many rows there were, and how many are needed
        summary = f"[yellow]{verdict}[/]."
    out.print(summary, highlight=False)
    out.print(
        f"[dim]Rule: under {thresholds.min_rows} rows no verdict; then PSI >= "
        f"{thresholds.psi} / Jensen-Shannon >= {thresholds.js_distance}, and, under "
        f"{thresholds.large_sample_rows} rows or against a reference of fewer values, KS (and "
        "Fisher's exact test of the share of "
        f"missing values) / on any, chi-squared of both samples' counts (and Fisher's of rare "
        f"and unseen categories) at p < {thresholds.p_value} over all features (each test at "
        f"{thresholds.p_value} / twice their number). "
        f"Dataset drift from {thresholds.dataset_share:.0%} of features. Score: the figure "
        "that decides, 1 - p for a test (its threshold 1 - the test's level), so that higher "
        "is always further from the reference. W (sd): Wasserstein in reference standard "
        "deviations.[/]",
        highlight=False,
    )


def _name(name: str) -> str:
    """A feature's name for the table (markup): as ``terminal_text`` writes it, the empty
    name as "(empty)" in italics, as the HTML report shows it (a blank cell said nothing)."""
    return terminal_text(name) if name else "[italic](empty)[/]"


def _shown(features: Sequence[FeatureDrift]) -> list[FeatureDrift]:
    """The features the table prints: all of them, in the profile's order, up to
    ``TABLE_ROWS``; of more, the drifted ones first (still in that order), then the others."""
    if len(features) <= TABLE_ROWS:
        return list(features)
    first = sorted(features, key=lambda f: not f.drifted)  # (a stable sort)
    return first[:TABLE_ROWS]


def _missing(reference: float, current: float) -> str:
    """The share of rows missing the feature, in the reference -> in the current data ("" if
    neither misses any)."""
    if math.isnan(reference) or math.isnan(current) or reference == current == 0.0:
        return ""
    return f"{_share(reference)}->{_share(current)}"


def _share(value: float) -> str:
    return f"{value:.0%}" if value == 0.0 or value >= 0.1 else f"{value:.1%}"


def _figure(value: float, places: int) -> str:
    """``value`` to ``places`` decimals, or in powers of ten to two digits where that would
    be wider (a feature whose values went wild: a Wasserstein of 1e+14 spreads, or 1e+300,
    which as 1.02e+300 left the 80 columns no room for its digits); "-" for NaN, a figure
    the data cannot define (no reference value to move from)."""
    if math.isnan(value):
        return "-"
    return f"{value:.{places}f}" if abs(value) < 1e4 else f"{value:.2g}"
