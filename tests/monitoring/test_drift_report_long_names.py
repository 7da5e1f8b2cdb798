"""The HTML drift report laid out in headless Chromium: long feature names wrap, and every
column and card stays in sight."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.drift_report import render_html
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from tests.dashboard.browser import dump_dom

pytestmark = pytest.mark.slow

LONG = "L" * 300 + "<b>bold</b>"
"""A one-hot or feature-store column's name, of a length common in generated data."""

PROBE = """<pre id='probe'></pre><script>
const wide = document.querySelector('.wide').getBoundingClientRect();
const cells = [...document.querySelectorAll('.wide tr:nth-child(2) td')];
const plots = [...document.querySelectorAll('.plot')];
document.getElementById('probe').textContent = JSON.stringify({
  page: document.documentElement.scrollWidth,
  window: document.documentElement.clientWidth,
  table_right: wide.right,
  name: cells[0].textContent,
  cells_right: cells.map((c) => c.getBoundingClientRect().right),
  titles_over: plots.filter((p) => p.querySelector('h3').scrollWidth > p.clientWidth).length,
});
</script></body>"""


def laid_out(page: str, path: Path) -> dict[str, Any]:
    """What Chromium laid ``page`` out as, at the test browser's 1,400 px."""
    path.write_text(page.replace("</body>", PROBE))
    found = re.search(r'<pre id="probe">([^<]*)</pre>', dump_dom(path.as_uri(), budget_ms=1000))
    assert found and found[1], "the probe did not run"
    measured: dict[str, Any] = json.loads(html.unescape(found[1]))
    return measured


def test_a_long_feature_name_wraps_and_leaves_every_column_in_sight(tmp_path: Path) -> None:
    # Unbroken in a cell that did not wrap, the name pushed the verdict and every other column
    # past the window's edge, for every feature, and its plot's title out of its card: the
    # page was 3,200 px wide.
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({LONG: rng.normal(size=1000), "plain": rng.normal(size=1000)})
    current = reference.sample(300, random_state=1).assign(plain=lambda f: f["plain"] + 2)
    comparison = compare(ReferenceProfile.from_data(reference), [current])
    page = render_html(comparison, "Drift", "reference.csv", "current.csv")
    laid = laid_out(page, tmp_path / "report.html")
    assert laid["name"] == LONG  # whole, wrapped over lines
    assert laid["page"] == laid["window"]
    assert len(laid["cells_right"]) == 14
    assert max(laid["cells_right"]) <= laid["table_right"]
    assert laid["titles_over"] == 0
