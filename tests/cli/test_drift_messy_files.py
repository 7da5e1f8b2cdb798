"""``modelpilot drift`` on files as they come: partitioned, separated by semicolons, with a
column named twice or holding lists, very wide, or with names a terminal would act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.progress import Progress, TaskID

from modelpilot.cli.drift_command import _from_files
from modelpilot.cli.drift_table import TABLE_ROWS
from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.monitoring.drift import DriftThresholds
from tests.cli.conftest import Run


def numbers(rows: int, columns: list[str], seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(shift, 1.0, size=(rows, len(columns))), columns=columns)


def drift(run: Run, reference: Path, current: Path, *flags: str) -> object:
    report = reference.parent / "report.html"
    return run("drift", str(reference), str(current), "-o", str(report), *flags, registry=False)


def test_a_partitioned_parquet_directory_is_read_whole(run: Run, tmp_path: Path) -> None:
    """Spark and Dask write a data set as a directory of part files (pandas reads it):
    "no such file: part.parquet"."""
    reference, current = tmp_path / "ref.csv", tmp_path / "part.parquet"
    numbers(400, ["a", "b"], seed=0).to_csv(reference, index=False)
    shifted = numbers(400, ["a", "b"], seed=1).assign(b=lambda f: f["b"] + 3, day=[1, 2] * 200)
    shifted.to_parquet(current, partition_cols=["day"])  # part.parquet/day=1/..., day=2/...
    result = drift(run, reference, current, "--fail-on-drift")
    assert result.exit_code == 3, result.output
    assert "1 of 2 features drifted (b) over 400 rows" in result.stdout
    (tmp_path / "adir").mkdir()
    plain = drift(run, tmp_path / "adir", current)
    assert isinstance(plain.exception, BadRequest)
    assert str(plain.exception).startswith(f"{tmp_path / 'adir'} is a directory: give a file")


def test_a_csv_separated_by_semicolons_is_refused_with_a_hint(run: Run, tmp_path: Path) -> None:
    """Read as one column of text, two such files were "compared" and passed (exit 0)."""
    path = tmp_path / "semi.csv"
    numbers(100, ["x", "y"], seed=0).to_csv(path, index=False, sep=";", decimal=",")
    result = drift(run, path, path, "--fail-on-drift")
    assert isinstance(result.exception, BadRequest), result.output
    assert str(result.exception).startswith(
        "cannot read semi.csv as CSV: its header 'x;y' is one column holding semicolons, so "
        "each row would be one text; ModelPilot reads comma-separated files"
    )


def test_a_column_named_twice_is_refused(run: Run, tmp_path: Path) -> None:
    """pandas renames the second "a" to "a.1": the two were compared as features of their
    own, with nothing said."""
    path = tmp_path / "dup.csv"
    frame = numbers(100, ["a", "b", "c"], seed=0)
    frame.set_axis(["a", "b", "a"], axis=1).to_csv(path, index=False)
    result = drift(run, path, path)
    assert isinstance(result.exception, BadRequest), result.output
    assert str(result.exception) == (
        "column 'a' appears twice in the header of dup.csv; give each column a name of its own"
    )


def test_a_column_of_lists_is_refused_by_name(run: Run, tmp_path: Path) -> None:
    """It was compared as categories of each list's text, every row a category of its own."""
    reference, current = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    frame = numbers(100, ["a"], seed=0).assign(tags=[[1, 2]] * 100)
    frame.to_parquet(reference)
    frame.to_parquet(current)
    result = drift(run, reference, current)
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception) == (
        "column 'tags' holds lists ([1, 2] in data row 1), but a feature is a number or a text: "
        "spread its values into columns of their own, or leave it out with --ignore"
    )
    assert drift(run, reference, current, "--ignore", "tags").exit_code == 0
    # Lists in the current data where the reference had numbers, in a later part of it.
    numbers(100, ["a", "tags"], seed=1).to_parquet(reference)
    with pytest.raises(InvalidInput, match=r"column 'tags' holds lists \(\[1, 2\] in data row 1"):
        _from_files(reference, current, DriftThresholds(), [], Progress(disable=True))


def test_a_wide_table_leads_with_the_drifted_features(run: Run, tmp_path: Path) -> None:
    """5,000 features printed a table of 5,000 lines, which took a minute; the drifted ones
    were somewhere in it."""
    columns = [f"f{i}" for i in range(TABLE_ROWS + 30)]
    reference, current = tmp_path / "ref.csv", tmp_path / "cur.csv"
    numbers(300, columns, seed=0).to_csv(reference, index=False)
    later = numbers(300, columns, seed=1)
    later[columns[-2:]] += 3  # the last two, which a table cut in profile order would leave out
    later.to_csv(current, index=False)
    result = drift(run, reference, current)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [line.split()[0] for line in lines if line[1:].split(" ")[0] in columns]
    assert len(rows) == TABLE_ROWS
    assert rows[:3] == [columns[-2], columns[-1], "f0"]  # drifted first, then the others
    said = " ".join(result.stdout.split())
    left = "30 more features left out of the table, none of them drifted: the HTML report has"
    assert left in said
    assert (tmp_path / "report.html").read_text().count("<h3>") == len(columns)


def test_each_slow_step_shows_on_the_progress_bar(tmp_path: Path) -> None:
    """Only the current file's rows had a bar: reading and profiling a wide reference, and
    the features' tests, ran for a minute with nothing on the screen."""
    reference, current = tmp_path / "ref.csv", tmp_path / "cur.csv"
    numbers(200, ["a", "b", "c"], seed=0).to_csv(reference, index=False)
    numbers(200, ["a", "b", "c"], seed=1).to_csv(current, index=False)
    progress = _Recorded(console=Console(force_terminal=True, width=120), auto_refresh=False)
    with progress:
        _from_files(reference, current, DriftThresholds(), [], progress)
    assert progress.steps == [
        "reading ref.csv",
        "profiling ref.csv (3 columns)",
        "reading cur.csv",
        "testing 3 features",
    ]


class _Recorded(Progress):
    """A progress bar that keeps every description it was given."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.steps: list[str] = []

    def add_task(self, description: str, *args: Any, **options: Any) -> TaskID:
        self.steps.append(description)
        return super().add_task(description, *args, **options)

    def update(self, task_id: TaskID, *args: Any, **options: Any) -> None:
        if isinstance(options.get("description"), str):
            self.steps.append(options["description"])
        super().update(task_id, *args, **options)


def test_names_and_values_a_terminal_would_act_on_are_printed_escaped(
    run: Run, tmp_path: Path
) -> None:
    """Feature names and values went to the terminal raw: ESC [2J cleared the screen, an OSC
    sequence set the window's title, U+202E printed the rest of the line backwards, and "[/]"
    ended in Rich's MarkupError traceback."""
    names = ["a\x1b[2J\x1b[31mRED", "b\x1b]0;title\x07", "\u202eevil", "x[/]"]
    reference, current = tmp_path / "ref.csv", tmp_path / "cur.csv"
    numbers(300, names, seed=0).assign(city="Paris").to_csv(reference, index=False)
    later = numbers(300, names, seed=1)
    later[names[0]] += 3
    later.assign(city=["Lyon\x1b[41m"] * 200 + ["Nice"] * 100).to_csv(current, index=False)
    result = drift(run, reference, current)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    for shown in ("a\\x1b[2J\\x1b[31mRED", "b\\x1b]0;title\\x07", "\\u202eevil", "x[/]"):
        assert f"\n {shown} " in result.stdout, result.stdout
    said = " ".join(result.stdout.split())
    assert "2 of 5 features drifted (a\\x1b[2J\\x1b[31mRED, city)" in said
    assert "city: new values, the most common first: 'Lyon\\x1b[41m' (66.7%)" in said


def test_the_new_values_of_a_categorical_feature_are_named(run: Run, tmp_path: Path) -> None:
    """ "100.0% of rows hold values the reference never had", and not which: the user had to
    go back to the data to find the value that broke it."""
    reference, current = tmp_path / "ref.csv", tmp_path / "cur.csv"
    cities = ["Paris", "Lyon"] * 150
    numbers(300, ["x"], seed=0).assign(city=cities).to_csv(reference, index=False)
    new = ["Nice"] * 120 + ["Brest"] * 60 + ["Metz"] * 30 + [f"town{i}" for i in range(15)]
    later = cities[: 300 - len(new)] + new
    numbers(300, ["x"], seed=1).assign(city=later).to_csv(current, index=False)
    result = drift(run, reference, current)
    said = " ".join(result.stdout.split())
    expected = (
        "city: new values, the most common first: 'Nice' (40.0%), 'Brest' (20.0%), "
        "'Metz' (10.0%) and 15 more"
    )
    assert expected in said, result.stdout
    page = (tmp_path / "report.html").read_text()
    assert "new values, the most common first: &#x27;Nice&#x27; (40.0%)" in page
