"""``modelpilot drift``: compare two datasets, or a model's reference with its logged traffic."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import Progress

from modelpilot.cli.common import (
    ArtifactsOption,
    RegistryOption,
    err,
    make_settings,
    progress_bar,
    terminal_text,
)
from modelpilot.cli.declared import DRIFT_SETTINGS
from modelpilot.cli.drift_table import has_verdict, print_table
from modelpilot.errors import BadRequest, InvalidInput

if TYPE_CHECKING:  # imported where used: pandas and SQLAlchemy, which --help needs not
    import numpy as np

    from modelpilot.config import Settings
    from modelpilot.monitoring.drift import DriftThresholds
    from modelpilot.monitoring.inference_log import InferenceLog
    from modelpilot.monitoring.offline import Comparison
    from modelpilot.registry.types import ModelVersion

DRIFT_EXIT_CODE = 3
NO_VERDICT_EXIT_CODE = 4
"""With --fail-on-drift, too few rows for a verdict (none at all among them): neither drift
nor its absence, so that a CI job fed a truncated (or empty) file does not pass it as "no
drift"."""


def _bounds(setting: str) -> str:
    """A setting's range as --help writes ranges ("0<x<1", "x>0"), from its declaration (as
    ``declared`` copies it, pinned to it by a test), so that the two cannot disagree
    (--p-value once showed 0<=x<=1 and refused 0 and 1)."""
    rule = DRIFT_SETTINGS[setting]
    bound = {
        name: f"{getattr(rule, name):g}"
        for name in ("gt", "ge", "lt", "le")
        if getattr(rule, name) is not None
    }
    low = f"{bound['gt']}<" if "gt" in bound else f"{bound['ge']}<=" if "ge" in bound else ""
    high = f"<{bound['lt']}" if "lt" in bound else f"<={bound['le']}" if "le" in bound else ""
    if low and not high:  # as click writes a range open above
        return f"x>{bound['gt']}" if "gt" in bound else f"x>={bound['ge']}"
    return f"{low}x{high}"


def _checked(setting: str) -> Callable[[float | None], float | None]:
    """A flag's check by the rules of the setting it sets: refused there, the value is
    refused here, and the error names the flag the user typed (the setting's message named
    --drift-psi-threshold, which is no flag)."""

    def check(value: float | None) -> float | None:
        from pydantic import TypeAdapter, ValidationError

        from modelpilot.config import Settings

        if value is None:
            return None
        if math.isnan(value):  # else refused as "should be less than 1", which it is not
            raise typer.BadParameter("not a number")
        # Built here, not with the app: it needs the settings' class, which --help does not.
        adapter: TypeAdapter[float] = TypeAdapter(
            Settings.model_fields[setting].rebuild_annotation()
        )
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise typer.BadParameter(exc.errors()[0]["msg"]) from None

    return check


def _minutes(value: float | None) -> float | None:
    """--since-minutes: a window of some length (NaN once meant no limit, and -5 a window
    that could hold no request, said as if the log were empty)."""
    if value is not None and not value > 0:  # NaN is not
        raise typer.BadParameter(f"{value:g} is not a number of minutes above 0 (x>0)")
    return value


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
        int | None,
        typer.Option(
            min=1,
            help="With --model: the newest rows to compare (of requests of several rows, "
            "the oldest in part). Default: $MODELPILOT_DRIFT_WINDOW_ROWS, the live window's.",
            show_default=False,
        ),
    ] = None,
    since_minutes: Annotated[
        float | None,
        typer.Option(
            help="With --model: only requests of the last this many minutes [x>0]. "
            "Default: $MODELPILOT_DRIFT_WINDOW_SECONDS, the live window's age.",
            callback=_minutes,
            show_default=False,
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="COLUMN",
            help="With two files: a column that is no feature (the target, an id) to leave "
            "out of the comparison (repeatable).",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path, typer.Option("--report", "-o", help="Where to write the HTML report.")
    ] = Path("drift-report.html"),
    psi: Annotated[
        float | None,
        typer.Option(
            help="PSI from which a numeric feature drifts on large samples. "
            f"[{_bounds('drift_psi_threshold')}; default: $MODELPILOT_DRIFT_PSI_THRESHOLD, "
            f"else {DRIFT_SETTINGS['drift_psi_threshold'].default:g}]",
            callback=_checked("drift_psi_threshold"),
            show_default=False,
        ),
    ] = None,
    js: Annotated[
        float | None,
        typer.Option(
            help="Jensen-Shannon distance from which a categorical feature drifts on large "
            f"samples. [{_bounds('drift_js_threshold')}; default: "
            "$MODELPILOT_DRIFT_JS_THRESHOLD, else "
            f"{DRIFT_SETTINGS['drift_js_threshold'].default:g}]",
            callback=_checked("drift_js_threshold"),
            show_default=False,
        ),
    ] = None,
    p_value: Annotated[
        float | None,
        typer.Option(
            help="Significance level of the tests on small samples, for all features "
            f"together. [{_bounds('drift_p_value')}; default: $MODELPILOT_DRIFT_P_VALUE, "
            f"else {DRIFT_SETTINGS['drift_p_value'].default:g}]",
            callback=_checked("drift_p_value"),
            show_default=False,
        ),
    ] = None,
    fail_on_drift: Annotated[
        bool,
        typer.Option(
            help=f"For CI: exit with code {DRIFT_EXIT_CODE} when the dataset drifted, and "
            f"with {NO_VERDICT_EXIT_CODE} when the current data has too few rows for a "
            "verdict, or none (neither passes as no drift)."
        ),
    ] = False,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Test every feature for drift, print a table and write an HTML report with histograms.

    Numbers are binned on the reference's deciles (a value holding a tenth of the rows, or
    each value of a feature of ten or fewer, in a bin of its own) and compared with PSI,
    Jensen-Shannon, KL divergence and Wasserstein (plus a KS test on small samples);
    categories with Jensen-Shannon and chi-squared. The rule that decides is printed under
    the table.
    """
    from modelpilot.monitoring.drift_report import render_html
    from modelpilot.monitoring.process import drift_thresholds

    settings = make_settings(
        registry=registry,
        artifacts=artifacts,
        drift_psi_threshold=psi,
        drift_js_threshold=js,
        drift_p_value=p_value,
    )
    thresholds = drift_thresholds(settings)
    with progress_bar(transient=True) as progress:
        if model is not None:
            if reference is not None or current is not None:
                raise BadRequest("give either two data files or --model, not both")
            if ignore:
                raise BadRequest("--ignore is for two data files; --model compares the features")
            comparison, labels = _from_log(settings, model, last, since_minutes, thresholds)
        else:
            if reference is None or current is None:
                raise BadRequest("give a reference and a current data file, or --model NAME")
            for flag, value in (("--last", last), ("--since-minutes", since_minutes)):
                if value is not None:
                    raise BadRequest(
                        f"{flag} is for --model (it picks logged requests); two data files "
                        "are compared whole: cut the current file to the rows to judge"
                    )
            comparison = _from_files(reference, current, thresholds, ignore or [], progress)
            labels = (str(reference), str(current))
        title = f"Drift report: {labels[1]} against {labels[0]}"
        with _step(progress, f"writing {report.name}"):
            page = render_html(comparison, title, *labels)
    print_table(comparison, thresholds)
    report.write_text(page, encoding="utf-8")
    err.print(f"HTML report: {escape(str(report))}", highlight=False)
    if fail_on_drift and comparison.report.dataset_drift:
        raise typer.Exit(DRIFT_EXIT_CODE)
    if fail_on_drift and not has_verdict(comparison.report):
        raise typer.Exit(NO_VERDICT_EXIT_CODE)


def _from_files(
    reference: Path,
    current: Path,
    thresholds: DriftThresholds,
    ignore: list[str],
    progress: Progress,
) -> Comparison:
    """Both files read alike: the reference's text columns are text in the current file too.

    The reference is read whole, and pandas guesses each column's type from all its values;
    the current file streams in chunks, each guessed on its own, so a chunk of a text column
    whose values all look like numbers (zip codes, "02134") would read as numbers (2134) and
    every one of them count as an unseen category. The reference is then read again with
    the same columns as text, so that both files read them by the same rule (a word pandas
    takes for missing, "NA", is then a category in both)."""
    import pandas as pd

    from modelpilot.monitoring.offline import compare
    from modelpilot.registry.category_keys import holds_booleans
    from modelpilot.registry.profile import ReferenceProfile, is_numeric_feature
    from modelpilot.tabular import count_rows, iter_table, read_table, refuse_nested

    with _step(progress, f"reading {reference.name}"):
        frame = read_table(reference)
    if frame.empty:
        raise InvalidInput(f"the reference data has no rows ({reference})")
    if len(frame) < thresholds.min_rows:
        # As few rows describe no distribution: one row made every numeric feature a
        # constant, which any spread in the current data drifted from ("Dataset drift", and
        # exit 3 for a CI job fed a truncated reference).
        raise InvalidInput(
            f"the reference data has {len(frame)} row{'s' if len(frame) > 1 else ''} "
            f"({reference}), too few to judge drift against: it needs at least "
            f"{thresholds.min_rows}, as the current data does for a verdict "
            "(MODELPILOT_DRIFT_MIN_ROWS); is the file whole?"
        )
    unknown = [name for name in ignore if name not in frame.columns.astype(str)]
    if unknown:
        raise InvalidInput(
            f"--ignore names columns the reference does not have: {unknown}; it has "
            f"{[str(c) for c in frame.columns]}"
        )
    if set(ignore) >= {str(c) for c in frame.columns}:
        raise InvalidInput("--ignore leaves no column to compare")
    # (Dates are no text: read as dates again, they are refused by name when profiled.
    # Nor are booleans, "true" and "TRUE" alike: as text they were two categories.)
    text = [
        str(name)
        for name, column in frame.items()
        if str(name) not in ignore
        and not is_numeric_feature(column)
        and not pd.api.types.is_datetime64_any_dtype(column)
        and not holds_booleans(column)
    ]
    if text:
        with _step(progress, f"reading {reference.name}"):
            frame = read_table(reference, text_columns=text)
    frame = frame.drop(columns=[c for c in frame.columns if str(c) in ignore])
    refuse_nested(frame, hint="leave it out with --ignore")
    with _step(progress, f"profiling {reference.name} ({frame.shape[1]:,} columns)"):
        profile = ReferenceProfile.from_data(frame)
    task = progress.add_task(f"reading {terminal_text(current.name)}", total=count_rows(current))
    testing = f"testing {frame.shape[1]:,} features"
    # The ignored columns leave the current data too: those of a file without names
    # (.npy) are matched by position, every column then a feature.
    chunks = (
        chunk.drop(columns=[c for c in chunk.columns if str(c) in ignore])
        for chunk in iter_table(current, 50_000, text_columns=text)
    )
    comparison = compare(
        profile,
        chunks,
        thresholds,
        on_rows=lambda n: progress.update(task, advance=n),
        reference=frame,
        # The bar of the rows read gives way to one of the tests.
        on_testing=lambda: progress.update(task, description=testing, total=None),
    )
    progress.remove_task(task)
    return comparison


@contextmanager
def _step(progress: Progress, description: str) -> Iterator[None]:
    """A step of the command that says nothing of its progress (reading a file whole,
    profiling it), shown while it runs, with the time it takes: on a wide file each took
    many seconds with nothing on the screen."""
    task = progress.add_task(terminal_text(description), total=None)
    try:
        yield
    finally:
        progress.remove_task(task)


def _from_log(
    settings: Settings,
    model: str,
    last: int | None,
    since_minutes: float | None,
    thresholds: DriftThresholds,
) -> tuple[Comparison, tuple[str, str]]:
    """``model``'s reference profile against its newest ``last`` logged rows of the last
    ``since_minutes``: by default the live monitor's window, its newest
    ``drift_window_rows`` rows of the last ``drift_window_seconds``.

    --last once counted requests: 5,000 requests of 50 rows each are 250,000 rows, and the
    command judged another window than the server's 5,000 rows, and often another verdict.
    (The live window keeps whole monitoring rounds, so it may hold up to a round's rows
    more than these: see ``SlidingWindow``.)"""
    from modelpilot.monitoring.inference_log import InferenceLog
    from modelpilot.monitoring.offline import compare
    from modelpilot.registry.refs import ModelRef
    from modelpilot.registry.store import Registry

    rows = last if last is not None else settings.drift_window_rows
    seconds = since_minutes * 60 if since_minutes is not None else settings.drift_window_seconds
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
        requests, window = _newest_rows(log, version, rows, time.time() - seconds)
        # No request in the window (a quiet model, a version not served yet) is no rows: no
        # verdict, as too few rows are (exit 4 with --fail-on-drift), not an error (exit 1,
        # as for a mistyped name). Reading the rows still refuses a model that is not tabular.
        chunks = [] if window is None else [window]
        counted = 0 if window is None else window.shape[0]
        label = f"{requests:,} logged requests ({counted:,} rows) of the last {_duration(seconds)}"
        return compare(profile, chunks, thresholds), (f"{version} reference profile", label)
    finally:
        if log is not None:
            log.close()
        registry.close()


FIRST_LOOK = 256
"""How many of the newest requests ``_newest_rows`` reads first: more are read only where
these hold fewer rows than it needs."""


def _newest_rows(
    log: InferenceLog, version: ModelVersion, rows: int, since: float
) -> tuple[int, np.ndarray | None]:
    """How many of the newest requests of ``version`` logged since ``since`` hold its newest
    ``rows`` rows, and those rows (None: no request). The log is read by requests, whose
    rows are not known before: a first look reads ``FIRST_LOOK``, a second as many as their
    rows a request say are needed (never more than ``rows`` requests, which hold at least
    ``rows`` rows)."""
    from modelpilot.monitoring.offline import newest_log_rows

    limit = min(rows, FIRST_LOOK)
    while True:
        entries = log.recent(version.model, version.version, limit=limit, since=since)
        if not entries and version.signature.is_tabular:
            return 0, None
        requests, found = newest_log_rows(entries, version.signature, rows)
        if found.shape[0] >= rows or len(entries) < limit or limit >= rows:
            return requests, found
        per_request = found.shape[0] / len(entries)
        limit = min(rows, max(2 * limit, math.ceil(1.25 * rows / per_request)))


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes / 60:g} hours"
    return f"{minutes:g} minute{'' if minutes == 1 else 's'}"


def install(app: typer.Typer) -> None:
    app.command()(drift)
