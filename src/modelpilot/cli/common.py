"""What every verb shares: registry options, settings from flags, consoles, error exits."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from modelpilot.errors import BadSettings

if TYPE_CHECKING:  # imported where used: every verb, and --help, would wait for them
    from pydantic import ValidationError

    from modelpilot.config import Settings
    from modelpilot.registry.store import Registry

# Results go to stdout (so that scripts can capture them); messages and tables to stderr
# only where stdout must stay clean.
out = Console()
err = Console(stderr=True)

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        "-r",
        help="Registry: a directory (SQLite + files) or a postgresql:// URL. "
        "Default: $MODELPILOT_REGISTRY, else ./modelpilot-registry.",
        show_default=False,
    ),
]
ArtifactsOption = Annotated[
    Path | None,
    typer.Option(
        "--artifacts",
        help="Artifact directory (needed with a PostgreSQL registry). "
        "Default: $MODELPILOT_ARTIFACTS, else inside the registry directory.",
        show_default=False,
    ),
]


def make_settings(*, warn_typos: bool = True, **flags: Any) -> Settings:
    """Settings from the environment, with the flags that were given on top.

    ``warn_typos``: say on stderr which ``MODELPILOT_*`` variables name no setting, and what
    they likely meant (pydantic ignores them): ``drift`` run with
    ``MODELPILOT_DRIFT_PSI_THRESHHOLD=0.5`` judged at the default 0.2 without a word. ``serve``
    says it in its log instead."""
    import os

    from pydantic import ValidationError

    from modelpilot.config import Settings, unknown_settings

    given = {key: value for key, value in flags.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise BadSettings(_settings_problems(exc, given)) from None
    if warn_typos:
        for name in unknown_settings(os.environ):
            err.print(
                f"warning: {escape(name)} is no setting of ModelPilot's; ignored "
                "(see docs/settings.md)",
                highlight=False,
            )
    return settings


def _settings_problems(exc: ValidationError, flags: Mapping[str, Any]) -> str:
    """Each wrong setting by the name the user set it under, and what is wrong with it."""
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # of several settings together: the message names them
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        source = f"--{field.replace('_', '-')}" if field in flags else f"MODELPILOT_{field.upper()}"
        problems.append(f"{source}={_shown(error.get('input'))}: {error['msg']}")
    return "bad setting: " + "; ".join(problems)


def _shown(value: Any) -> str:
    """A setting's value as the user gave it: quoted, with its escapes, where it holds what
    would not show (a tab inside a URL, a newline at its end), else as it is."""
    text = str(value)
    return text if text.isprintable() and text == text.strip() else repr(text)


def open_registry(
    registry: str | None, artifacts: Path | None, *, create: bool = False
) -> Registry:
    """The registry the flags and settings name. Only a verb that registers models may
    ``create`` it: the others, given a location where there is none (a typo), say so rather
    than leave an empty registry there and report nothing registered."""
    from modelpilot.registry.store import Registry

    settings = make_settings(registry=registry, artifacts=artifacts)
    return Registry.open(settings.registry, settings.artifacts, create=create)


@contextmanager
def opened_registry(
    registry: str | None, artifacts: Path | None, *, create: bool = False
) -> Iterator[Registry]:
    """The registry for the length of a command, closed however the command ends."""
    reg = open_registry(registry, artifacts, create=create)
    try:
        yield reg
    finally:
        reg.close()


def progress_bar(transient: bool = False) -> Progress:
    """The progress bar of long verbs (predict, drift), on stderr so stdout stays clean. A
    task of no known total (a step that says nothing of its progress, as profiling a wide
    reference) pulses and shows the time it has taken, rather than "0/?" and "-:--:--"."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _Counted(),
        _Remaining(),
        console=err,
        transient=transient,
    )


class _Counted(MofNCompleteColumn):
    def render(self, task: Task) -> Text:
        return super().render(task) if task.total is not None else Text("")


class _Remaining(TimeRemainingColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return TimeElapsedColumn().render(task)
        return super().render(task)


_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
"""What a terminal acts on rather than shows: control characters (C0, DEL, C1: ESC starts
the sequences that clear the screen, recolour, set the window's title or a link), the
line and paragraph separators, and the marks that set the direction of the text after them
(an override, U+202E, printed the rest of the line backwards)."""


def terminal_text(text: object) -> str:
    """``text`` safe to print: what a terminal would act on (see ``_UNSHOWABLE``) written as
    its escape (``\\x1b``, ``\\u202e``), as git and kubectl print names from data, and rich's
    markup escaped ("[/]" in a name was taken for a tag). For names and values of files
    (features, categories), printed in tables and verdicts."""
    shown = _UNSHOWABLE.sub(
        lambda found: found.group().encode("unicode_escape").decode(), str(text)
    )
    return escape(shown)
