"""Registry verbs: register, models, versions, alias, rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from modelpilot.cli.common import (
    ArtifactsOption,
    RegistryOption,
    err,
    opened_registry,
    out,
    progress_bar,
    terminal_text,
)
from modelpilot.cli.declared import FLAVORS, PRODUCTION
from modelpilot.errors import BadRequest

ModelName = Annotated[str, typer.Argument(metavar="NAME", help="Model name.")]
"""The model a verb works on (``versions``, ``alias``, ``rollback``)."""


def register(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Model name (letters, digits, '_', '-', '.').")
    ],
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="Model file: .joblib/.pkl, .onnx, .json/.ubj, .txt or .py."
        ),
    ],
    flavor: Annotated[
        str | None,
        typer.Option(help=f"One of {', '.join(FLAVORS)}; detected from the file if omitted."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Training data (CSV, Parquet or .npy): profiled for drift; its columns name "
            "the features."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Label column of the reference data: left out of the features; the version "
            "keeps the label distribution and the model's metrics on it, which live accuracy "
            "is judged against (on rows the model trained on they flatter it: a forest scores "
            "1.0 there; give held-out rows, or state the figures with --metadata "
            "accuracy=0.91).",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            metavar="TASK",
            help="classification or regression: what the model's prediction is, which decides "
            "how it is watched (classes and accuracy/F1/AUC, or bins and MAE/RMSE). Needed "
            "only for a model that answers whole numbers and names no classes, which is taken "
            "for a classifier: a regressor of counts or whole prices is --task regression.",
            show_default=False,
        ),
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option("--alias", "-a", metavar="ALIAS", help="Point this alias here (repeatable)."),
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="Free text kept with the version.")
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            "-m",
            metavar="KEY=VALUE",
            help="Kept with the version (repeatable). A stated accuracy, f1 or auc (0 to 1, of "
            "a classifier; auc of one that gives probabilities) or mae or rmse (0 or more, of a "
            "regressor) is what live quality is judged against, over the one measured with "
            "--target; one out of its range or of another task is refused.",
        ),
    ] = None,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Register FILE as the next version of NAME; prints the new version number."""
    from modelpilot.serving.registration import register_model

    meta: dict[str, object] = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadRequest(f"--metadata takes KEY=VALUE, not {item!r}")
        meta[key] = _value(value)
    if description:
        meta["description"] = description
    with opened_registry(registry, artifacts, create=True) as reg, _working(reference):
        version = register_model(
            reg,
            name,
            file,
            flavor=flavor,
            reference=reference,
            aliases=alias or [],
            metadata=meta,
            target=target,
            task=task,
        )
        same = [
            v.version
            for v in reg.list_versions(name)
            if v.artifact_sha256 == version.artifact_sha256 and v.version != version.version
        ]
    aliases = f" ({', '.join(version.aliases)})" if version.aliases else ""
    err.print(
        f"Registered [bold]{name}[/] version [bold]{version.version}[/]{aliases}: "
        f"{version.flavor}, sha256 {version.artifact_sha256[:12]}"
        + (", with a reference profile" if version.has_reference else "")
        + _metrics_note(version.metadata.get("reference_metrics")),
        highlight=False,
    )
    for note in [*_unscored(version.metadata), *_judged_against(version.metadata)]:
        err.print(note, highlight=False)
    for note in _notes(version.metadata.get("monitoring_notes")):
        err.print(f"warning: {terminal_text(note)}", highlight=False)  # (names from data)
    if same:
        listed = ", ".join(map(str, same))
        err.print(
            f"Note: the same file as version{'s' if len(same) > 1 else ''} {listed}; "
            "a new version all the same (its reference, aliases and metadata are its own)",
            highlight=False,
        )
    typer.echo(version.version)


@contextmanager
def _working(reference: Path | None) -> Iterator[None]:
    """Say what registering a reference does while it runs: a wide one (500 columns, 20,000
    rows) took two minutes with nothing printed. A line on stderr where it is no terminal (a
    log), the same with the time it has taken where it is; stdout keeps only the version."""
    if reference is None:
        yield
        return
    doing = f"reading {reference.name}, profiling its features and measuring the model on its rows"
    if not err.is_terminal:
        err.print(f"{terminal_text(doing)}...", highlight=False)
        yield
        return
    with progress_bar(transient=True) as progress:
        task = progress.add_task(terminal_text(doing), total=None)
        try:
            yield
        finally:
            progress.remove_task(task)


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def models(
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered models with their latest version and aliases."""
    with opened_registry(registry, artifacts) as reg:
        infos = reg.list_models()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": i.name,
                        "latest_version": i.latest_version,
                        "versions": i.version_count,
                        "aliases": i.aliases,
                        "created_at": i.created_at.isoformat(),
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return
    if not infos:
        err.print("No models yet. Register one: modelpilot register NAME FILE")
        return
    table = Table("model", "latest", "versions", "aliases", "created", box=box.SIMPLE)
    for i in infos:
        aliases = ", ".join(f"{a}={v}" for a, v in i.aliases.items())
        table.add_row(
            i.name,
            str(i.latest_version),
            str(i.version_count),
            aliases,
            i.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def versions(
    name: ModelName,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the versions of a model: flavor, aliases, signature, artifact hash."""
    with opened_registry(registry, artifacts) as reg:
        items = reg.list_versions(name)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "version": v.version,
                        "flavor": v.flavor,
                        "aliases": list(v.aliases),
                        "sha256": v.artifact_sha256,
                        "size": v.artifact_size,
                        "created_at": v.created_at.isoformat(),
                        "signature": v.signature.to_dict(),
                        "inputs": [spec.to_dict() for spec in v.signature.served_inputs],
                        "metadata": v.metadata,
                        "has_reference": v.has_reference,
                    }
                    for v in items
                ],
                indent=2,
            )
        )
        return
    # Narrow enough for 80 columns; --json has everything.
    table = Table("version", "flavor", "aliases", "input", "sha256", "created", box=box.SIMPLE)
    for v in items:
        inputs = ", ".join(f"{s.datatype}{list(s.shape)}" for s in v.signature.inputs)
        if v.signature.feature_datatypes:  # rows of text beside numbers: say which is which
            kinds = v.signature.feature_datatypes
            inputs = ", ".join(f"{k} x{kinds.count(k)}" for k in dict.fromkeys(kinds))
        table.add_row(
            str(v.version),
            v.flavor,
            ", ".join(v.aliases),
            inputs,
            v.artifact_sha256[:8],
            v.created_at.strftime("%Y-%m-%d"),
        )
    out.print(table)


def _version_argument(text: str) -> int:
    """VERSION written in plain digits: click's ``int`` reads "1_0" as version 10."""
    from modelpilot.registry.refs import version_number

    number = version_number(text)
    if number is None:
        raise typer.BadParameter(f"{text!r} is no version number (1, 2, 3...)")
    return number


def alias(
    name: ModelName,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. production.")],
    version: Annotated[
        int,
        typer.Argument(
            metavar="VERSION", help="Version number to point at.", parser=_version_argument
        ),
    ],
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Point ALIAS of a model at VERSION (running servers follow within seconds)."""
    with opened_registry(registry, artifacts) as reg:
        previous = reg.set_alias(name, alias_name, version)
    before = "" if previous is None else f" (was {previous})"
    if previous == version:
        before = " (it pointed there already)"
    out.print(f"{name}@{alias_name} -> version {version}{before}", highlight=False)


def rollback(
    name: ModelName,
    alias_name: Annotated[
        str, typer.Option("--alias", "-a", help="The alias to move back.")
    ] = PRODUCTION,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Move an alias back to the version it pointed at before.

    Each rollback steps one move further back in the alias's history (as an undo does); a move
    rolled back is not redone by rolling back again: point the alias there with `alias`. Once
    its history is used up, it refuses: it never moves an alias to a version it did not point at.
    """
    with opened_registry(registry, artifacts) as reg:
        before, after = reg.rollback(name, alias_name)
    out.print(f"{name}@{alias_name}: version {before} -> {after}", highlight=False)


def install(app: typer.Typer) -> None:
    app.command()(register)
    app.command()(models)
    app.command()(versions)
    app.command()(alias)
    app.command()(rollback)


def _notes(notes: object) -> list[str]:
    """What registration found monitoring cannot watch (``monitoring_notes``), said when
    the version is made rather than found missing on the dashboard later."""
    return [str(note) for note in notes] if isinstance(notes, list) else []


METRIC_NAMES = {"f1": "f1 (macro)"}
"""How ``register`` names a metric: F1 is the mean of every class's, binary models' too,
which a reader of a bare "f1" takes for scikit-learn's F1 of the positive class."""


def _metrics_note(metrics: object) -> str:
    if not isinstance(metrics, dict) or not metrics:
        return ""
    named = (f"{METRIC_NAMES.get(k, k)} {_figure(k, v)}" for k, v in metrics.items())
    return " (" + ", ".join(named) + " on it)"


SCORES = ("accuracy", "f1", "auc")
"""Figures between 0 and 1, read to three decimals; errors (MAE, RMSE) are on the target's
scale, whatever it is."""


def _figure(key: str, value: float) -> str:
    """A measured figure as a reader needs it: an MAE of 3.7e-07 printed "0.000" read as a
    perfect fit, and one of 373227.682 had three meaningless decimals."""
    if key in SCORES:
        return f"{value:.3f}"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _unscored(metadata: dict[str, object]) -> list[str]:
    """A line saying how many labelled reference rows the errors leave out, if any: the
    figures printed are then not over every row."""
    unscored = metadata.get("reference_unscored")
    if not isinstance(unscored, int) or not unscored:
        return []
    rows = "row" if unscored == 1 else "rows"
    return [
        f"{unscored} labelled reference {rows} left out of the errors: the model's prediction "
        "was no finite number (NaN or infinite), as live labels of such predictions are "
        "(counted there as unscored)"
    ]


def _judged_against(metadata: dict[str, object]) -> list[str]:
    """A line for each measured figure that a stated one overrides: the measured one is
    printed first, and without this a reader took it for what live quality is judged by."""
    from modelpilot.registry.quality import stated_metrics

    measured = metadata.get("reference_metrics")
    if not isinstance(measured, dict):
        return []
    return [
        f"Live {key} will be judged against the stated {value:g}, not the "
        f"{_figure(key, measured[key])} measured on the reference"
        for key, value in stated_metrics(metadata).items()
        if key in measured
    ]
