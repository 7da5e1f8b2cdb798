"""``modelpilot drift``: compare two datasets, or a model's reference with its logged traffic."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from modelpilot.cli.common import (
    ArtifactsOption,
    RegistryOption,
    err,
    make_settings,
    out,
    progress_bar,
)
from modelpilot.config import Settings
from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.monitoring.drift import DriftReport, DriftThresholds
from modelpilot.monitoring.drift_report import render_html
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.offline import Comparison, compare, log_rows
from modelpilot.monitoring.process import drift_thresholds
from modelpilot.registry.profile import ReferenceProfile, is_numeric_feature
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.tabular import count_rows, iter_table, read_table

DRIFT_EXIT_CODE = 3


def drift(
    reference: Annotated[
        Path | None,
        typer.Argument(
            metavar="REFERENCE",
            help="Reference data (CSV, Parquet or .npy), e.g. the training set.",
        ),
    ] = None,
    current: Annotated[
        Path | None,
        typer.Argument(metavar="CURRENT", help="Current data to compare with it (same columns)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Instead of two files: compare a model version's reference profile with "
            "its requests in the inference log (NAME, NAME:VERSION or NAME@ALIAS).",
            show_default=False,
        ),
    ] = None,
    last: Annotated[
        int, typer.Option(min=1, help="With --model: the newest requests to compare.")
    ] = 5000,
    since_minutes: Annotated[
        float | None,
        typer.Option(help="With --model: only requests of the last this many minutes."),
    ] = None,
    report: Annotated[
        Path, typer.Option("--report", "-o", help="Where to write the HTML report.")
    ] = Path("drift-report.html"),
    psi: Annotated[
        float | None,
        typer.Option(help="PSI from which a numeric feature drifts on large samples.", min=0),
    ] = None,
    p_value: Annotated[
        float | None,
        typer.Option(help="Significance level of the tests on small samples.", min=0, max=1),
    ] = None,
    fail_on_drift: Annotated[
        bool,
        typer.Option(help=f"Exit with code {DRIFT_EXIT_CODE} when the dataset drifted (for CI)."),
    ] = False,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Test every feature for drift, print a table and write an HTML report with histograms.

    Numbers are binned on the reference's deciles and compared with PSI, Jensen-Shannon,
    KL divergence and Wasserstein (plus a KS test on small samples); categories with
    Jensen-Shannon and chi-squared. The rule that decides is printed under the table.
    """
    settings = make_settings(
        registry=registry,
        artifacts=artifacts,
        drift_psi_threshold=psi,
        drift_p_value=p_value,
    )
    thresholds = drift_thresholds(settings)
    if model is not None:
        if reference is not None or current is not None:
            raise BadRequest("give either two data files or --model, not both")
        comparison, labels = _from_log(settings, model, last, since_minutes, thresholds)
    else:
        if reference is None or current is None:
            raise BadRequest("give a reference and a current data file, or --model NAME")
        comparison = _from_files(reference, current, thresholds)
        labels = (str(reference), str(current))
    _print(comparison.report, thresholds)
    title = f"Drift report: {labels[1]} against {labels[0]}"
    report.write_text(render_html(comparison, title, *labels), encoding="utf-8")
    err.print(f"HTML report: {report}", highlight=False)
    if fail_on_drift and comparison.report.dataset_drift:
        raise typer.Exit(DRIFT_EXIT_CODE)


def _from_files(reference: Path, current: Path, thresholds: DriftThresholds) -> Comparison:
    """Both files read alike: the reference's text columns are text in the current file too.

    The reference is read whole, and pandas guesses each column's type from all its values;
    the current file streams in chunks, each guessed on its own, so a chunk of a text column
    whose values all look like numbers (zip codes, "02134") would read as numbers (2134) and
    every one of them count as an unseen category. The reference is then read again with
    the same columns as text, so that both files read them by the same rule (a word pandas
    takes for missing, "NA", is then a category in both)."""
    frame = read_table(reference)
    if frame.empty:
        raise InvalidInput(f"the reference data has no rows ({reference})")
    text = [str(name) for name, column in frame.items() if not is_numeric_feature(column)]
    if text:
        frame = read_table(reference, text_columns=text)
    profile = ReferenceProfile.from_data(frame)
    total = count_rows(current)
    with progress_bar(transient=True) as progress:
        task = progress.add_task(f"reading {current.name}", total=total)
        return compare(
            profile,
            iter_table(current, 50_000, text_columns=text),
            thresholds,
            on_rows=lambda n: progress.update(task, advance=n),
        )


def _from_log(
    settings: Settings,
    model: str,
    last: int,
    since_minutes: float | None,
    thresholds: DriftThresholds,
) -> tuple[Comparison, tuple[str, str]]:
    registry = Registry.open(settings.registry, settings.artifacts, create=False)
    log = None
    try:
        version = registry.resolve(ModelRef.parse(model))
        profile = registry.reference_profile(version.model, version.version)
        if profile is None:
            raise InvalidInput(
                f"{version} has no reference profile: register it with --reference DATA"
            )
        log = InferenceLog(registry.companion_engine("inference-log"))
        since = time.time() - since_minutes * 60 if since_minutes is not None else None
        entries = log.recent(version.model, version.version, limit=last, since=since)
        rows = log_rows(entries, version.signature)
        window = f"{len(entries):,} logged requests ({rows.shape[0]:,} rows)"
        return compare(profile, [rows], thresholds), (f"{version} reference profile", window)
    finally:
        if log is not None:
            log.close()
        registry.close()


def _print(report: DriftReport, thresholds: DriftThresholds) -> None:
    # Narrow, so that feature names fit in 80 columns ("sepal_le…" said little).
    table = Table(
        title="Feature drift",
        title_justify="left",
        box=box.SIMPLE,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("feature", overflow="fold")  # a long name on two lines, not cut short
    table.add_column("verdict")
    # Missing shares only where some feature has missing values: the table fits 80 columns.
    holes = any(_missing(f.reference_missing_share, f.missing_share) for f in report.features)
    for name in ("method", "score", "threshold", "PSI", "JS", "W (sd)", "missing")[: 6 + holes]:
        table.add_column(name, justify="right")
    for f in report.features:
        if f.method == "none":
            verdict = "[dim]too few rows[/]"
        else:
            verdict = "[bold red]drifted[/]" if f.drifted else "[green]ok[/]"
        table.add_row(
            f.name,
            verdict,
            f.method,
            _figure(f.score, 4),
            _figure(f.threshold, 4),
            _figure(f.psi, 3),
            _figure(f.js_distance, 3),
            "-" if f.wasserstein is None else _figure(f.wasserstein, 3),
            *([_missing(f.reference_missing_share, f.missing_share) or "-"] if holes else []),
        )
    out.print(table)
    drifted = report.drifted_features
    summary = (
        f"[bold red]Dataset drift[/]: {len(drifted)} of {len(report.features)} features "
        f"({', '.join(drifted)})"
        if report.dataset_drift
        else f"No dataset drift: {len(drifted)} of {len(report.features)} features drifted"
        + (f" ({', '.join(drifted)})" if drifted else "")
    )
    out.print(f"{summary} over {report.rows:,} rows.", highlight=False)
    out.print(
        f"[dim]Rule: under {thresholds.min_rows} rows no verdict; under "
        f"{thresholds.large_sample_rows} rows KS (and Fisher's exact test of the share of "
        f"missing values) / chi-squared (and Fisher's of rare and unseen categories) at "
        f"p < {thresholds.p_value} over all features (each at {thresholds.p_value} / their "
        "number); "
        f"from then on PSI >= {thresholds.psi} / Jensen-Shannon >= {thresholds.js_distance}. "
        f"Dataset drift from {thresholds.dataset_share:.0%} of features.[/]",
        highlight=False,
    )


def _missing(reference: float, current: float) -> str:
    """The share of rows missing the feature, in the reference -> in the current data ("" if
    neither misses any)."""
    if math.isnan(reference) or math.isnan(current) or reference == current == 0.0:
        return ""
    return f"{_share(reference)}->{_share(current)}"


def _share(value: float) -> str:
    return f"{value:.0%}" if value == 0.0 or value >= 0.1 else f"{value:.1%}"


def install(app: typer.Typer) -> None:
    app.command()(drift)


def _figure(value: float, places: int) -> str:
    """``value`` to ``places`` decimals, or in powers of ten where that would be too wide
    for its column (a feature whose values went wild: a Wasserstein of 1e+14 spreads)."""
    return f"{value:.{places}f}" if abs(value) < 1e6 else f"{value:.3g}"
