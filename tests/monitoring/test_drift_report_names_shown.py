"""Names and category values that show badly: the empty text, and control characters (a
newline), shown alike in the HTML report, the terminal's table and the dashboard."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.monitoring.drift_report import render_html, shown
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def frames(rows: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a current frame whose features named '' and "new\\nline" drift (the
    latter's values mostly the empty text, which its reference never had); "c" holds the
    empty text in both."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {
            "": rng.normal(size=rows),
            "new\nline": rng.choice(np.array(["a", "b"], dtype=object), rows),
            "c": rng.choice(np.array(["", "a"], dtype=object), rows),
        }
    )
    current = pd.DataFrame(
        {
            "": rng.normal(5, 1, size=rows),
            "new\nline": rng.choice(np.array(["", "a"], dtype=object), rows, p=[0.8, 0.2]),
            "c": rng.choice(np.array(["", "a"], dtype=object), rows),
        }
    )
    return reference, current


def test_the_report_shows_empty_names_and_values_and_escapes_a_newline() -> None:
    """The tester's findings: an empty category was a bar with no label, a feature named ''
    was "drifted ()", a name with a newline read "new line" in the report but "new\\nline" in
    the terminal."""
    reference, current = frames()
    comparison = compare(ReferenceProfile.from_data(reference), [current])
    assert "('', new\nline)" in comparison.report.verdict
    page = render_html(comparison, "t", "ref", "cur")
    assert "new\nline" not in page and page.count("new\\nline") >= 3  # table, title, plot
    assert "<td><i>(empty)</i></td>" in page  # the feature named ''
    assert re.search(r"<text [^>]*font-style='italic'>\(empty\)</text>", page)  # the bar
    assert "<title>(empty): current 4" in page  # its tooltip, about half
    assert shown("") == "(empty)" and shown("a\u202eb") == "a\\u202eb"


def test_the_terminal_shows_them_as_the_report_does(tmp_path: Path) -> None:
    reference, current = frames()
    for name, frame in (("ref.parquet", reference), ("cur.parquet", current)):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / name)
    result = CliRunner().invoke(
        app,
        [
            "drift",
            str(tmp_path / "ref.parquet"),
            str(tmp_path / "cur.parquet"),
            "-o",
            str(tmp_path / "r.html"),
        ],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["(empty)", "drifted"] for line in lines), result.stdout
    assert any(line.split()[:2] == ["new\\nline", "drifted"] for line in lines), result.stdout
    assert "new\\nline: new values, the most common first: '' (empty, 8" in result.stdout
    assert "2 of 3 features drifted ('', new\\nline)" in result.stdout
