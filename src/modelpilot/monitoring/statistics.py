"""Per-version statistics as Triton's statistics extension gives them, from the service metrics.

Triton's clients (``get_inference_statistics``) and its ``perf_analyzer``, which prints the
server's side of each measurement from them, ask for these. They are read off the same
metrics that ``/metrics`` exports, so that with worker processes every worker answers for all
of them, as it does there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Metric

NANOSECONDS = 1_000_000_000


@dataclass(slots=True)
class Duration:
    """How many, and how long in all (Triton's ``StatisticDuration``)."""

    count: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": round(self.seconds * NANOSECONDS)}


@dataclass(slots=True)
class VersionStatistics:
    """One version's activity since the server started."""

    name: str
    version: str
    last_inference: float = 0.0
    """Unix time of its last answer (0 if none)."""
    inference_count: int = 0
    """Rows the model scored in calls that answered (a request of 8 rows is 8 inferences);
    as Triton counts successful inferences, rows of failed calls are left out."""
    execution_count: int = 0
    """Model calls (batches) that answered (Triton: successful executions)."""
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    """Each request's model call (a batch's call counts once for each request in it)."""
    cache_hit: Duration = field(default_factory=Duration)
    """Requests the result cache answered, and its lookups' time."""
    cache_miss: Duration = field(default_factory=Duration)
    """Requests it could not answer, and the time of their lookups and stores."""

    def to_dict(self) -> dict[str, Any]:
        """Triton's ``$model_stat`` JSON object."""
        # The model call is one step: no input or output copy is timed apart from it (they
        # count in the request's own time). Triton's tools expect the three steps of a
        # request to have the same count, so those two carry it with no time.
        untimed = Duration(self.compute_infer.count).to_dict()
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": round(self.last_inference * 1000),
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_dict(),
                "fail": self.fail.to_dict(),
                "queue": self.queue.to_dict(),
                "compute_input": untimed,
                "compute_infer": self.compute_infer.to_dict(),
                "compute_output": untimed,
                "cache_hit": self.cache_hit.to_dict(),
                "cache_miss": self.cache_miss.to_dict(),
            },
            "batch_stats": [],
        }


def version_statistics(
    families: Iterable[Metric], served: Iterable[tuple[str, str]] = ()
) -> list[VersionStatistics]:
    """Every version the service metrics (``families``) know of, plus the ``served`` (model,
    version) pairs (with no activity yet, all zeros), sorted by model and version."""
    found: dict[tuple[str, str], VersionStatistics] = {}

    def of(labels: dict[str, str]) -> VersionStatistics:
        key = (labels["model"], labels["version"])
        if key not in found:
            found[key] = VersionStatistics(*key)
        return found[key]

    latency: dict[tuple[str, str], float] = defaultdict(float)
    failed_seconds: dict[tuple[str, str], float] = defaultdict(float)
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if "model" not in labels or labels.get("version", "unknown") == "unknown":
                continue  # refused before a version was chosen: no version's doing
            if name == "modelpilot_requests_total":
                stats = of(labels)
                if labels["status"] == "ok":
                    stats.success.count += int(value)
                else:
                    stats.fail.count += int(value)
            elif name == "modelpilot_request_duration_seconds_sum":
                latency[(labels["model"], labels["version"])] += value
            elif name == "modelpilot_failed_request_duration_seconds_total":
                failed_seconds[(labels["model"], labels["version"])] += value
            elif name == "modelpilot_last_request_time_seconds":
                stats = of(labels)
                stats.last_inference = max(stats.last_inference, value)
            elif name == "modelpilot_batch_size_rows_sum":
                of(labels).inference_count += int(value)
            elif name == "modelpilot_batch_size_rows_count":
                of(labels).execution_count += int(value)
            elif name.startswith("modelpilot_queue_duration_seconds_"):
                _add(of(labels).queue, name, value)
            elif name.startswith("modelpilot_model_call_duration_seconds_"):
                _add(of(labels).compute_infer, name, value)
            elif name == "modelpilot_result_cache_hits_total":
                of(labels).cache_hit.count += int(value)
            elif name == "modelpilot_result_cache_misses_total":
                of(labels).cache_miss.count += int(value)
            elif name == "modelpilot_result_cache_duration_seconds_total":
                stats = of(labels)
                cached = stats.cache_hit if labels["result"] == "hit" else stats.cache_miss
                cached.seconds += value
    for key, total in latency.items():
        if key not in found:
            continue
        stats = found[key]
        stats.fail.seconds = failed_seconds.get(key, 0.0)
        stats.success.seconds = max(0.0, total - stats.fail.seconds)
    for key in served:
        if key not in found:
            found[key] = VersionStatistics(*key)
    return [found[key] for key in sorted(found, key=_order)]


def _add(duration: Duration, name: str, value: float) -> None:
    if name.endswith("_count"):
        duration.count += int(value)
    elif name.endswith("_sum"):
        duration.seconds += value


def _order(key: tuple[str, str]) -> tuple[str, int, str]:
    model, version = key
    return (model, int(version) if version.isdigit() else -1, version)
