"""The page's colours and head: text readable at WCAG AA, and no icon fetched on every load."""

from __future__ import annotations

import re
from importlib import resources

import pytest

STATIC = resources.files("modelpilot.dashboard") / "static"
AA = 4.5


def luminance(color: str) -> float:
    """WCAG's relative luminance of ``#rrggbb``."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def rules() -> dict[str, dict[str, str]]:
    """dashboard.css's declarations by selector, ``var()`` resolved from ``:root``."""
    css = re.sub(r"/\*.*?\*/", "", (STATIC / "dashboard.css").read_text(), flags=re.S)
    found: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = dict(
            (name.strip(), value.strip())
            for name, value in (d.split(":", 1) for d in body.split(";") if ":" in d)
        )
        for selector in selectors.split(","):
            found.setdefault(" ".join(selector.split()), {}).update(declarations)
    variables = found[":root"]
    for declarations in found.values():
        for name, value in declarations.items():
            declarations[name] = re.sub(r"var\((--[\w-]+)\)", lambda m: variables[m[1]], value)
    return found


PAGE, CARD = "#f1f5f9", "#ffffff"


@pytest.mark.parametrize(
    ("selector", "background"),
    [
        (".pill.ok", None),
        (".badge-ok", None),
        (".pill.bad", None),
        (".badge-bad", None),
        (".badge-warn", None),
        (".pill.muted", None),
        (".badge-muted", None),
        (".alerts .sev", CARD),  # the warning severity's text
        (".section-title", PAGE),
        (".picker", PAGE),
        (".stat-label", CARD),
        (".hint", CARD),
    ],
)
def test_text_reaches_wcag_aa_contrast(selector: str, background: str | None) -> None:
    rule = rules()[selector]
    against = background or rule["background"]
    ratio = contrast(rule["color"], against)
    assert ratio >= AA, f"{selector}: {rule['color']} on {against} is {ratio:.2f}:1"


def test_the_charts_empty_state_text_reaches_wcag_aa_contrast() -> None:
    charts = (STATIC / "charts.js").read_text()
    palette = dict(re.findall(r"(\w+): '(#[0-9a-f]{6})'", charts))
    drawn = re.search(r"function drawEmpty.*?ctx\.fillStyle = C\.(\w+)", charts, flags=re.S)
    assert drawn, "drawEmpty sets no text colour"
    assert contrast(palette[drawn[1]], CARD) >= AA


def test_the_page_names_no_icon_to_fetch_and_has_a_heading() -> None:
    page = (STATIC / "dashboard.html").read_text()
    # Without an icon in the head, every load asked the server for /favicon.ico (a 404).
    assert '<link rel="icon" href="data:,">' in page
    assert re.search(r"<h1[^>]*>ModelPilot</h1>", page)


def test_regions_that_scroll_can_be_reached_by_keyboard_and_are_named() -> None:
    # The alert list and the drift table scroll (max-height): Chromium puts such a region in
    # the tab order itself, Firefox and Safari do not, and a keyboard could not scroll them.
    page = (STATIC / "dashboard.html").read_text()
    alerts = re.search(r"<ul [^>]*id=\"alerts\"[^>]*>", page)
    table = re.search(r"<div [^>]*class=\"table-wrap\"[^>]*>", page)
    assert alerts and table
    for region in (alerts[0], table[0]):
        assert 'tabindex="0"' in region, region
        assert "aria-label=" in region or "aria-labelledby=" in region, region
    assert re.search(r'<h3 id="alerts-heading">Active alerts</h3>', page)
    scrolls = rules()
    assert "overflow-y" in scrolls[".alerts"] and "overflow" in scrolls[".table-wrap"]
    assert "outline" in scrolls[".alerts:focus-visible"]  # where the focus is shows
