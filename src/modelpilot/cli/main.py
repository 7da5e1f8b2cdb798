"""The ``modelpilot`` command: one Typer app, every verb, errors as one red line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import modelpilot
from modelpilot.cli import (
    demo_command,
    drift_command,
    predict_command,
    registry_commands,
    serve_command,
)
from modelpilot.cli.common import err, terminal_text
from modelpilot.errors import ModelPilotError

app = typer.Typer(
    name="modelpilot",
    help="Serve ML models over the Open Inference Protocol, watch them, update them safely.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: it wraps each paragraph and gives an option's help the width it
    # needs; rich's panels kept the docstrings' line breaks and, at 80 columns, cut defaults
    # short ("drift-report.htm…").
    rich_markup_mode=None,
)
registry_commands.install(app)
serve_command.install(app)
predict_command.install(app)
drift_command.install(app)
demo_command.install(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelpilot {modelpilot.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Serve ML models over the Open Inference Protocol, watch them, update them safely."""


def main() -> None:
    """Entry point: our errors print one line and exit 1, never a traceback.

    Usage errors, ``--help`` and Ctrl-C are left to Typer (its own messages; exit codes 2, 0
    and 130): it catches its own click's exceptions, which, vendored in newer Typer releases,
    are not the ``click`` package's.
    """
    try:
        app()
    except ModelPilotError as exc:
        _error(exc.message)
    except OSError as exc:
        _error(str(exc))


def _error(message: str) -> None:
    """Print ``message`` as the one line the docs promise, and exit 1.

    The message is text, not markup: "pip install 'modelpilot[lightgbm]'" lost its brackets,
    and a path holding "[/x]" made Rich raise. What a terminal would act on (an escape
    sequence in a model's own error, a newline) is printed as its escape (``terminal_text``).
    Never wrapped: where stderr is no terminal Rich wrapped at 80 columns, and a line grepped
    for, or naming a setting, came in two.
    """
    err.print(f"[bold red]error:[/] {terminal_text(message)}", highlight=False, soft_wrap=True)
    sys.exit(1)
