"""Each model version's error rate is judged apart, on evidence, and shown on its page (tester
"multimodel" F1, F2): a model failing every request at 2.4% of a server's traffic raised no
alert, had no report (/api/monitoring/broken: 404 "answered no requests") and read "no traffic
yet"; and 3 failures of 43 requests at the window's tail, against a steady 2.4%, fired the
server's error rate."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from modelpilot.monitoring.alert_rules import service_conditions
from modelpilot.monitoring.alerts import AlertRules, Condition
from modelpilot.monitoring.history import ServiceHistory, ServicePoint
from modelpilot.monitoring.version_errors import excess_chance, version_error_conditions

RULES = AlertRules(keep_firing_seconds=0.0)


def minute(**requests: tuple[int, int]) -> list[ServicePoint]:
    """One closed interval of requests by version label (``name_v``): (requests, 5xx)."""
    history = ServiceHistory()
    for key, (count, failed) in requests.items():
        model, _, version = key.rpartition("_")
        for i in range(count):
            status = "500" if i < failed else "ok"
            history.request_finished(model, version, "rest", status, 0.001, None)
    return [history.close_interval(now=60.0)]


def verdicts(
    window: list[ServicePoint], active: Sequence[tuple[str, str]] = ()
) -> dict[str, Condition]:
    return {c.model: c for c in version_error_conditions(window, RULES, active)}


def test_a_model_failing_every_request_among_busy_ones_fires_its_own_error_rate() -> None:
    """The tester's server: 105 of 4,300 requests failed (2.4%), every one of them broken's."""
    window = minute(iris_1=(2_000, 0), fraud_3=(2_195, 0), broken_1=(105, 105))
    server = {c.rule: c for c in service_conditions(window, RULES)}["error_rate"]
    assert server.judged and not server.holds
    every = verdicts(window)
    assert set(every) == {"iris:1", "fraud:3", "broken:1"}
    broken = every["broken:1"]
    assert broken.rule == "error_rate" and broken.holds and broken.severity == "critical"
    assert broken.value == 1.0
    assert broken.message.startswith(
        "broken:1 failed 105 of 105 requests on the server (5xx) in the last 60 s, 100.0%"
    )
    assert not every["iris:1"].holds and every["iris:1"].judged


def test_one_failure_of_an_idle_model_is_no_evidence_and_few_requests_are_not_judged() -> None:
    quiet = verdicts(minute(iris_1=(500, 0), rare_1=(6, 1)))["rare:1"]
    assert quiet.judged and not quiet.holds  # 1 of 6: 26% of the time at 5%
    few = verdicts(minute(iris_1=(500, 0), rare_1=(4, 4)))["rare:1"]
    assert not few.judged and "fewer than the 5 a version is judged from" in few.message
    assert verdicts(minute(iris_1=(500, 0), rare_1=(5, 2)))["rare:1"].holds


def test_a_server_of_one_version_is_judged_once_by_the_servers_rule() -> None:
    window = minute(iris_1=(100, 100))
    assert verdicts(window) == {}
    assert {c.rule: c for c in service_conditions(window, RULES)}["error_rate"].holds
    # A version's alert that fires is judged, whatever else the window holds.
    assert verdicts(window, [("error_rate", "iris:1")])["iris:1"].holds


def test_the_error_rate_holds_on_evidence_not_on_the_share_alone() -> None:
    """3 of 43 requests (7%) are as many as 5% fails more than one time in three."""
    tail = {c.rule: c for c in service_conditions(minute(a_1=(43, 3)), RULES)}["error_rate"]
    assert tail.judged and not tail.holds and tail.value == pytest.approx(3 / 43)
    assert "; p = 0.36 that a 5.0% rate fails as many (holds under p 0.05)" in tail.message
    burst = {c.rule: c for c in service_conditions(minute(a_1=(100, 10)), RULES)}["error_rate"]
    assert burst.holds
    assert excess_chance(0, 10, 0.05) == 1.0
    assert excess_chance(2, 2, 0.05) == pytest.approx(0.0025)
    assert excess_chance(3, 43, 0.05) == pytest.approx(0.3648, abs=1e-4)
