"""Feature names the page would not show as written: a name with a newline showed as "new
line" (the page folds white space) where the terminal and the HTML report write
"new\\nline", and an empty name as a blank cell."""

from __future__ import annotations

import html
import re

import pytest

from tests.dashboard.pages import PageServer, busy, feature, iris, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here


def test_names_are_shown_as_the_report_and_the_terminal_show_them(
    page_server: PageServer,
) -> None:
    features = [feature("new\nline", "psi", 0.5, 0.2), feature("", "psi", 0.5, 0.2)]
    dom, page = page_server.draw(payload(busy(), iris(features=features)))
    cells = [html.unescape(c) for c in re.findall(r'<td class="name"[^>]*>([^<]*)</td>', dom)]
    assert cells == ["new\\nline", "(empty)"], cells
    described = page.by_id["chart-drift"]["aria-label"]
    assert "2 features drifted: new\\nline, (empty)" in described, described
