"""Every error a request can be counted with is in docs/metrics.md: its class among the kinds
of ``modelpilot_errors_total``, its status among those of ``modelpilot_requests_total``."""

from __future__ import annotations

import re
from pathlib import Path

import modelpilot.monitoring.tap
import modelpilot.server.grpc.calls
import modelpilot.server.rest.limits
from modelpilot.errors import BadSettings, Conflict, ModelPilotError, NotFound

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

NEVER_A_REQUESTS = {
    ModelPilotError: "the base; raised as itself only by the supervisor, at start-up",
    BadSettings: "a setting's value, refused at start-up",
    Conflict: "registry writes (rollback, demo), never a prediction",
    NotFound: "raised as itself by the management API and the dashboard, not a prediction",
    modelpilot.monitoring.tap.TapFailed: "the monitoring process's, never a prediction's",
    modelpilot.monitoring.tap.TapBusy: "the monitoring process's (busy), never a prediction's",
}


def row(family: str) -> str:
    (line,) = [line for line in PAGE.read_text().splitlines() if line.startswith(f"| `{family}`")]
    return line


def counted() -> list[type[ModelPilotError]]:
    """Every error class defined so far (the modules that define them are imported above)."""
    found, todo = [], [ModelPilotError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls not in NEVER_A_REQUESTS:
            found.append(cls)
    return found


def test_every_error_class_is_a_documented_kind_with_a_documented_status() -> None:
    """The page left out 431 and ``HeadersTooLarge``, which /metrics exports for a request
    whose headers are too large: a reader took it for an unexpected exception, a 500."""
    # Their errors are among those walked (HeadersTooLarge; UnreadableMessage and such).
    assert modelpilot.server.rest.limits and modelpilot.server.grpc.calls
    kinds = set(re.findall(r"`(\w+)`", row("modelpilot_errors_total").split("meaning")[-1]))
    statuses = set(re.findall(r"`(\d{3})`", row("modelpilot_requests_total")))
    missing_kinds = sorted(c.__name__ for c in counted() if c.__name__ not in kinds)
    missing_statuses = sorted(
        f"{c.http_status} ({c.__name__})" for c in counted() if str(c.http_status) not in statuses
    )
    assert (missing_kinds, missing_statuses) == ([], [])


def test_the_requests_left_uncounted_are_said_to_be() -> None:
    """A REST request answered 408 (its body too slow) is in no series; the page said not."""
    assert "`408`" in row("modelpilot_requests_total")
