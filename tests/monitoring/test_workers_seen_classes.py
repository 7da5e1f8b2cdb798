"""``serve --workers 2`` of a ``.py`` classifier that names no classes: its predictions are
counted by class, over both workers, in /metrics and /api/monitoring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.test_workers import fresh, sample, scrapes_while_replaced, settled
from tests.processes import Server, start, stop

pytestmark = pytest.mark.slow

ANIMALS = (
    "import numpy as np\n"
    "class Model:\n"
    '    task = "classification"\n'
    "    def predict(self, x):\n"
    '        names = np.array(["cat", "dog", "bird"])\n'
    "        return names[np.asarray(x, dtype=float)[:, 0].astype(int) % 3]\n"
)

REQUESTS = 60


@pytest.fixture
def server(registry: Registry, tmp_path: Path) -> Iterator[Server]:
    path = tmp_path / "animals.py"
    path.write_text(ANIMALS)
    register_model(registry, "animals", path, flavor="python")
    env = {"MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.3"}
    running = start(registry, "--workers", "2", env=env)
    yield running
    assert stop(running) == 0


def test_text_labels_are_counted_by_class_over_both_workers(server: Server) -> None:
    """Every prediction was "(unknown)" in /api/monitoring, and /metrics had no
    modelpilot_prediction_class_total series for the model at all. A worker killed and
    replaced leaves its classes to its successor, by name."""
    expected = {"cat": 0, "dog": 0, "bird": 0}
    for i in range(REQUESTS):
        reply = fresh("POST", f"{server.url}/predict/animals", json={"data": [[i % 3 + i % 2 * 3]]})
        assert reply.status_code == 200, reply.text
        expected[reply.json()["predictions"][0]] += 1
    assert all(expected.values())

    def by_class(text: str) -> dict[str, float]:
        return {
            name: sum(sample(text, "modelpilot_prediction_class_total", model="animals", **label))
            for name, label in ((n, {"class": n}) for n in expected)
        }

    text = settled(server.url, lambda t: by_class(t) == expected)
    assert 'class="(unknown)"' not in text and 'class="(other)"' not in text
    for _ in range(4):  # whichever worker answers
        report = fresh("GET", f"{server.url}/api/monitoring/animals").json()
        assert report["requests"] == REQUESTS
        assert report["predictions"]["classes"] == expected

    _, seen = scrapes_while_replaced(server, by_class)
    # Not one scrape in between lost the dead worker's classes, nor counted them twice.
    assert all(counted == expected for counted in seen)
