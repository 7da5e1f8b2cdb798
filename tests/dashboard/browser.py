"""Headless Chromium for the dashboard's tests: the page as it drew itself, and screenshots."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from tests.services import unavailable

WINDOW = "--window-size=1400,1800"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("Chromium (apt-get install chromium)", "not on PATH")
    raise AssertionError("unreachable")


def browse(url: str, *flags: str, budget_ms: int = 5000) -> str:
    """Load ``url`` in headless Chromium, let the page run ``budget_ms`` of virtual time (its
    fetches and timers), and return what Chromium printed (the DOM with ``--dump-dom``)."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", WINDOW]
    done = subprocess.run(
        [*command, f"--virtual-time-budget={budget_ms}", *flags, url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(url: str, budget_ms: int = 5000) -> str:
    return browse(url, "--dump-dom", budget_ms=budget_ms)


def screenshot(url: str, path: Path, budget_ms: int = 5000) -> None:
    browse(url, f"--screenshot={path}", budget_ms=budget_ms)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000  # a drawn page, not a blank one


class Elements(HTMLParser):
    """Attributes of every element with an id, and of every alert item."""

    def __init__(self, dom: str = "") -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.body: dict[str, str] = {}
        self.alerts: list[str] = []
        self.alert_states: list[str] = []
        """Each alert item's ``data-state``: firing, or pending (waiting out its for)."""
        self.pills: list[tuple[str, str]] = []
        """The drift table's status pills: (class, text)."""
        self._pill: str | None = None
        if dom:
            self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        if "id" in values:
            self.by_id[values["id"]] = values
        if tag == "li" and "data-rule" in values:
            self.alerts.append(values["data-rule"])
            self.alert_states.append(values.get("data-state", ""))
        classes = values.get("class", "").split()
        if tag == "span" and "pill" in classes:
            self._pill = " ".join(c for c in classes if c != "pill")

    def handle_data(self, data: str) -> None:
        if self._pill is not None:
            self.pills.append((self._pill, data))
            self._pill = None

    def classes(self, element: str) -> set[str]:
        return set(self.by_id[element].get("class", "").split())

    def ticks(self, chart: str) -> list[float]:
        """A chart's y-axis labels, as numbers."""
        return [
            tick_value(label) for label in self.by_id[f"chart-{chart}"]["data-ticks"].split("|")
        ]


def tick_value(label: str) -> float:
    """An axis label's number: "0.25", "12 ms", "10.0k", "1.2M", "30%"."""
    found = re.match(r"\s*(-?[0-9.]+(?:e[+-]?[0-9]+)?)\s*([kM]?)(?![A-Za-z])", label)
    assert found, label
    return float(found[1]) * {"": 1.0, "k": 1e3, "M": 1e6}[found[2]]


def text_of(dom: str, element: str) -> str:
    found = re.search(rf'id="{element}"[^>]*>([^<]*)<', dom)
    assert found, f"no element {element!r} with text in the page"
    return found[1]
