"""What each ``modelpilot_*`` metric family means beyond its HELP text, for docs/metrics.md
(``metrics_reference.py`` writes the page from the families a server exports and these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    group: str
    meaning: str
    """What the HELP text leaves out: the unit, the values of the labels, when it moves."""
    labels: tuple[str, ...] | None = None
    """The family's labels, for one that has no series in the generating run (they come from
    the series otherwise, and must agree with these if both are given)."""
    absent: str = ""
    """Where the family appears, for one that some machines do not export (a GPU's, the
    disks'): ``type``, ``help``, ``labels`` and ``per_worker`` then say what it is, the same
    on every machine (checked against the family where it is exported)."""
    type: str = ""
    help: str = ""
    per_worker: bool = False


MONITORED = ("model", "monitoring", "alerts")
"""The groups whose families exist only with monitoring on, as their introductions say."""

GROUPS = (
    (
        "service",
        "Service",
        "Requests, latency, batching, errors and the models in memory. `model` is the model's "
        "name (`(unknown)` for a name no model has, and for a gRPC call whose message could not "
        "be read), `version` the version that answered or failed (`unknown` before one was "
        "chosen), `transport` `rest` or `grpc`. A version's `ok`, `500`, `503` and `504` "
        "request series, its latency and its timeouts start at 0 once it is loaded, so that "
        "`rate()` sees its first failures.",
    ),
    (
        "system",
        "System",
        "The serving process and the machine it runs on, read at scrape time. Add "
        "`modelpilot_monitor_process_*` (below) to the process figures for the server's.",
    ),
    (
        "model",
        "Model",
        "Drift, predictions and quality of each served version with a reference profile, as of "
        "the last monitoring round (`MODELPILOT_MONITOR_INTERVAL_SECONDS`, 2 s). `feature` is "
        "an input's name. A version's series appear with its first report, after its first "
        "requests (or the restore from the inference log at start). Only with monitoring on "
        "(`MODELPILOT_MONITORING`, the default), as are the two groups below.",
    ),
    (
        "monitoring",
        "Monitoring itself",
        "What monitoring costs and what it missed. Each is one process's (with `--workers`, "
        "one series a worker: `sum()` adds them up).",
    ),
    (
        "alerts",
        "Alerts",
        'The server\'s own alerts (README, "Alerts"; `/api/alerts` lists the same) and their '
        "webhook. `rule` is `data_drift`, `concept_drift`, `error_rate`, `latency`, "
        "`rollout_stalled` or `monitoring_losing`; `severity` `warning` (data_drift, latency, "
        "monitoring_losing) or `critical`; `model` and `version` are empty for the "
        "service-wide `error_rate`, `latency` and `monitoring_losing` (`error_rate` is judged "
        "of each model version too, under its `model` and `version`).",
    ),
)

_LATENCY = "Seconds; buckets from 0.1 ms to 30 s."
_NO_DISK = "Absent where the machine shows no physical disk (some containers)."

NOTES: dict[str, Note] = {
    # Service
    "modelpilot_requests_total": Note(
        "service",
        "`status`: `ok`, else the HTTP status (for gRPC, its code's HTTP equivalent): `400` "
        "and `422` bad input, `404` unknown model or version, `413` too large, `431` request "
        "line and headers too large (REST), `499` the client gave up, `500` the model or "
        "server failed (and, over gRPC, a message that could not be read: answered INTERNAL), "
        "`501` a gRPC message in an encoding the server does not read (UNIMPLEMENTED), `503` "
        "overloaded or not ready, `504` past its deadline. A REST request whose head or body "
        "did not all come (its client hung up, or was too slow: answered `408`, past "
        "`MODELPILOT_HEADER_TIMEOUT_SECONDS` or `MODELPILOT_BODY_TIMEOUT_SECONDS`) is not "
        "counted: it never reached a model. The error-rate rule counts `5..` alone.",
    ),
    "modelpilot_request_duration_seconds": Note(
        "service", _LATENCY + " Failed requests included (their time apart: below)."
    ),
    "modelpilot_queue_duration_seconds": Note(
        "service",
        _LATENCY + " Requests that timed out in the queue count too: in an overload, "
        "theirs are the waits that show it.",
    ),
    "modelpilot_batch_size_rows": Note(
        "service",
        "Rows; buckets 1 to 1024 by powers of two. `_sum` counts every row scored, `_count` "
        "the model calls that answered (the statistics extension's `inference_count` and "
        "`execution_count`). A row of a request whose client gave up while its call ran "
        "counts (the model scored it). When one request breaks a batch, the failed call is "
        "not counted and each request then run alone that is answered is a call of its own.",
    ),
    "modelpilot_model_call_duration_seconds": Note("service", _LATENCY),
    "modelpilot_failed_request_duration_seconds_total": Note(
        "service",
        "Seconds. With `--workers`, the family appears with the server's first failure.",
    ),
    "modelpilot_last_request_time_seconds": Note(
        "service", "Unix time in seconds; with `--workers`, the latest of the workers'."
    ),
    "modelpilot_errors_total": Note(
        "service",
        "`kind` is the error's class: `BadRequest`, `InvalidInput`, `ModelNotFound`, "
        "`VersionNotFound`, `AliasNotFound`, `PayloadTooLarge`, `HeadersTooLarge` (431), "
        "`Overloaded`, `ModelNotReady`, `Unavailable`, `InferenceTimeout`, `ModelFailure`, "
        "`ArtifactError`, `MissingExtra` (a flavor's package not installed), `RegistryError`, "
        "`RegistryUnavailable`, `UnreadableMessage` (gRPC, 500) and `UnknownEncoding` (gRPC, "
        "501), or the class of an unexpected exception (counted as a 500). 499s are not "
        "errors. With `--workers`, the family appears with the first error.",
    ),
    "modelpilot_timeouts_total": Note(
        "service",
        "Past `MODELPILOT_REQUEST_TIMEOUT_SECONDS` or the client's deadline; answered 504.",
    ),
    "modelpilot_result_cache_hits_total": Note("service", ""),
    "modelpilot_result_cache_misses_total": Note("service", ""),
    "modelpilot_result_cache_duration_seconds_total": Note(
        "service", "Seconds; `result` is `hit` or `miss`."
    ),
    "modelpilot_result_cache_errors_total": Note(
        "service",
        "A cache that fails misses: the server warns once, serves without it and asks it "
        "again every 5 s. A damaged entry is a miss for its key alone.",
    ),
    "modelpilot_start_time_seconds": Note("service", "Unix time in seconds."),
    "modelpilot_uptime_seconds": Note("service", ""),
    "modelpilot_inflight_requests": Note(
        "service", "One series for each served model, at 0 when idle."
    ),
    "modelpilot_model_loaded": Note("service", "A version unloaded loses its series."),
    "modelpilot_rollout_stalled": Note(
        "service",
        "No series while every rollout is done; the `rollout_stalled` alert fires on the same.",
        labels=("model", "version"),
    ),
    "modelpilot_model_pool_memory_bytes": Note(
        "service", "Bytes, against `MODELPILOT_MODEL_MEMORY_BUDGET_BYTES`."
    ),
    # System
    "modelpilot_process_cpu_seconds_total": Note("system", "Seconds (user and system)."),
    "modelpilot_process_resident_memory_bytes": Note("system", "Bytes."),
    "modelpilot_process_open_fds": Note("system", ""),
    "modelpilot_system_cpu_utilization_ratio": Note("system", "0 to 1, all CPUs together."),
    "modelpilot_system_cpus": Note("system", ""),
    "modelpilot_system_memory_total_bytes": Note("system", "Bytes."),
    "modelpilot_system_memory_available_bytes": Note(
        "system", "Bytes (the kernel's available memory, caches that can be dropped included)."
    ),
    "modelpilot_system_disk_read_bytes_total": Note(
        "system",
        "Bytes, the kernel's running total since boot: a restarted worker reads it afresh.",
        absent=_NO_DISK,
        type="counter",
        help="Bytes read from the machine's physical disks (not from virtual block devices: "
        "device-mapper, RAID, loop, zram; their bytes are the disks' again).",
        labels=(),
        per_worker=True,
    ),
    "modelpilot_system_disk_written_bytes_total": Note(
        "system",
        "Bytes, as `modelpilot_system_disk_read_bytes_total`.",
        absent=_NO_DISK,
        type="counter",
        help="Bytes written to the machine's physical disks (not to virtual block devices: "
        "device-mapper, RAID, loop, zram; their bytes are the disks' again).",
        labels=(),
        per_worker=True,
    ),
    "modelpilot_system_network_received_bytes_total": Note(
        "system",
        "Bytes, the kernel's running total since boot (of the container's interfaces "
        "in a container).",
    ),
    "modelpilot_system_network_sent_bytes_total": Note(
        "system", "Bytes, as `modelpilot_system_network_received_bytes_total`."
    ),
    "modelpilot_gpu_utilization_ratio": Note(
        "system",
        "0 to 1; `gpu` is the device's index.",
        absent="Only where NVML (`pynvml`) finds a GPU.",
        type="gauge",
        help="GPU busy share (0-1).",
        labels=("gpu",),
        per_worker=True,
    ),
    "modelpilot_gpu_memory_used_bytes": Note(
        "system",
        "Bytes; `gpu` is the device's index.",
        absent="Only where NVML (`pynvml`) finds a GPU.",
        type="gauge",
        help="GPU memory in use.",
        labels=("gpu",),
        per_worker=True,
    ),
    # Model
    "modelpilot_feature_drift_score": Note(
        "model",
        "`method` is `psi`, `js_distance`, `kl_divergence` or `wasserstein` (numeric features "
        "only); each a number without unit, 0 for no difference.",
    ),
    "modelpilot_feature_drifted": Note(
        "model",
        "0 or 1: the server's verdict (its PSI or Jensen-Shannon distance reached its line, on "
        "any window, and where the data can tell its tests found the shift past chance too: a "
        "category's on every window, a number's under `MODELPILOT_DRIFT_LARGE_SAMPLE_ROWS` rows "
        'or against a reference of fewer values; docs/drift.md, "The verdict").',
    ),
    "modelpilot_feature_drift_p_value": Note("model", "0 to 1."),
    "modelpilot_feature_missing_share": Note("model", "0 to 1; `data` is `window` or `reference`."),
    "modelpilot_feature_missing_p_value": Note("model", "0 to 1."),
    "modelpilot_dataset_drift": Note(
        "model",
        "0 or 1: 1 once at least `MODELPILOT_DRIFT_DATASET_SHARE` (half) of the features "
        "drifted. The server's `data_drift` alert fires on one drifted feature, not on this.",
    ),
    "modelpilot_drifted_features_share": Note("model", "0 to 1; the `data_drift` alert's value."),
    "modelpilot_drift_window_rows": Note(
        "model",
        "Rows, no older than `MODELPILOT_DRIFT_WINDOW_SECONDS`: at least "
        "`MODELPILOT_DRIFT_WINDOW_ROWS` where traffic sent as many, in whole monitoring "
        "rounds, so up to one round's rows more (at most twice the setting less one); with "
        "`--workers`, merged over the workers.",
    ),
    "modelpilot_prediction_class_total": Note(
        "model",
        "A classifier's; `class` is the class as the model names it. A classifier that names "
        "no classes (a `.py` model answering text or whole numbers) has its classes counted as "
        "they come: besides those its reference predicted, the first 100 seen have a series "
        'each, and the rest are counted together as `class="(other)"`. Counted since the '
        "server started; with `--workers`, merged by class over the workers and carried on over "
        "worker restarts, but a worker killed with SIGKILL loses the counts since its last "
        "snapshot (up to a monitoring round).",
    ),
    "modelpilot_prediction_mean": Note("model", "In the prediction's unit."),
    "modelpilot_prediction_variance": Note("model", "In the prediction's unit, squared."),
    "modelpilot_prediction_drift_score": Note(
        "model", "0 to 1 (a regressor's on the reference predictions' bins)."
    ),
    "modelpilot_model_performance": Note(
        "model",
        "`metric` is `accuracy`, `f1` or `auc` (classifiers; 0 to 1), `mae` or `rmse` "
        "(regressors; in the target's unit; of several targets, MAE and RMSE of every target's "
        "errors pooled, scikit-learn's `uniform_average` MAE and the root of its "
        "MSE). From `MODELPILOT_PERFORMANCE_MIN_LABELS` labels on it is judged "
        "(`modelpilot_concept_drift`).",
    ),
    "modelpilot_reference_performance": Note(
        "model", "`metric` as in `modelpilot_model_performance`."
    ),
    "modelpilot_labels_total": Note(
        "model",
        "Counted since the server started; a label posted again (to any worker) counts once "
        "while the inference log holds the first.",
    ),
    "modelpilot_concept_drift": Note(
        "model",
        "0 or 1; the `concept_drift` alert fires on the same verdict, and holds it as the gauge "
        "does: labels that came late and left the window empty are no drift that ended.",
    ),
    # Monitoring itself
    "modelpilot_monitor_process_cpu_seconds_total": Note("monitoring", "Seconds."),
    "modelpilot_monitor_process_resident_memory_bytes": Note("monitoring", "Bytes."),
    "modelpilot_monitor_process_restarts_total": Note(
        "monitoring",
        "Replacements. A monitoring process that keeps dying is replaced after a wait that "
        "doubles, 1 s to 30 s, and one that ran a minute at once: this rising steadily is a "
        "replacement loop.",
    ),
    "modelpilot_monitor_dropped_total": Note(
        "monitoring", "Requests; the `monitoring_losing` alert fires on losses that go on."
    ),
    "modelpilot_monitor_unlogged_total": Note(
        "monitoring", "Requests; the `monitoring_losing` alert fires on losses that go on."
    ),
    "modelpilot_monitor_unsampled_total": Note("monitoring", "Requests."),
    "modelpilot_monitor_handover_seconds_total": Note(
        "monitoring",
        "Seconds of CPU, paid each round (every quarter second) however few calls it holds: "
        "about 0.5-0.7 µs a request in the benchmark (docs/monitoring-cost.md), at thousands of "
        "requests a second; at a few a second, hundreds of µs a request (some 0.1% of a core).",
    ),
    "modelpilot_monitor_failures_total": Note(
        "monitoring",
        "Each is logged with its cause; it rises while the registry's database is down.",
    ),
    # Alerts
    "modelpilot_alert_active": Note(
        "alerts", "A resolved alert loses its series (it is not set to 0)."
    ),
    "modelpilot_alert_pending": Note(
        "alerts",
        "No series when none waits (the drift rules' default wait is 0; monitoring_losing "
        "waits 5 minutes by default).",
        labels=("model", "rule", "severity", "version"),
    ),
    "modelpilot_alerts_fired_total": Note(
        "alerts",
        "Counted by the process that decides on alerts (worker 0 with `--workers`, whose "
        "successor carries the counts on); from 0 after a restart of the server.",
    ),
    "modelpilot_alert_webhook_failures_total": Note(
        "alerts", "Attempts (`MODELPILOT_ALERT_WEBHOOK_URL`)."
    ),
    "modelpilot_alert_webhook_dropped_total": Note("alerts", "Notifications."),
}
