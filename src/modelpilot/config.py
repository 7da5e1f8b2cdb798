"""Settings: one typed object read from ``MODELPILOT_*`` environment variables at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REGISTRY = "./modelpilot-registry"


class Settings(BaseSettings):
    """Everything a ModelPilot process can be told; built once and handed down."""

    model_config = SettingsConfigDict(env_prefix="MODELPILOT_", extra="ignore")

    registry: str = DEFAULT_REGISTRY
    """Registry location: a directory (SQLite + artifact files) or a ``postgresql://`` URL."""

    artifacts: Path | None = None
    """Artifact directory; required when the registry is a database URL, else inside it."""

    redis_url: str | None = None
    """Redis URL for the shared model cache and update notifications (optional)."""

    host: str = "0.0.0.0"
    """Interface the HTTP and gRPC servers bind to."""

    http_port: int = 8000
    """Port of the REST server (Open Inference Protocol v2, ``/predict``, ``/metrics``)."""

    grpc_port: int = 8001
    """Port of the gRPC server (``inference.GRPCInferenceService``); 0 disables it."""

    workers: int = 1
    """Number of server processes sharing the ports."""

    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body accepted over REST; larger ones get 413."""

    grpc_max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest gRPC message sent or received."""

    model_memory_budget_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=0)
    """Memory the model pool may use for versions that are not pinned; LRU beyond it."""

    alias_refresh_seconds: float = Field(default=2.0, ge=0.0)
    """How long a resolved alias (``NAME@production``) is trusted before it is looked up again."""

    request_timeout_seconds: float = Field(default=30.0, gt=0.0)
    """Deadline for one inference; past it the caller gets 504 / DEADLINE_EXCEEDED."""

    inference_threads: int = Field(default=4, ge=1)
    """Threads that run model code off the event loop."""

    onnx: bool = True
    """Serve scikit-learn models through ONNX Runtime when the converted model agrees."""

    result_cache: Literal["off", "memory", "disk", "redis"] = "off"
    """Cache answers to repeated identical inputs: off, memory, disk or redis."""

    result_cache_ttl_seconds: float = Field(default=300.0, gt=0.0)
    """How long a cached answer is served."""

    result_cache_max_entries: int = Field(default=10_000, ge=1)
    """Most answers the memory cache keeps (least recently used go first)."""

    result_cache_dir: Path | None = None
    """Directory of the disk cache (shared by the workers of one machine)."""

    max_batch_size: int = Field(default=64, ge=1)
    """Most rows one model call takes when requests are batched (per model: metadata key)."""

    max_batch_latency_ms: float = Field(default=0.0, ge=0.0)
    """How long a batch may wait for more rows while the model is busy (never when idle)."""

    batch_concurrency: int = Field(default=1, ge=1)
    """Batches of one model version that may run at the same time."""

    max_queue_rows: int = Field(default=10_000, ge=1)
    """Rows allowed to wait for one model version before requests get 503 + Retry-After."""

    shutdown_grace_seconds: float = Field(default=20.0, ge=0.0)
    """On SIGTERM, how long in-flight requests get to finish before the process exits."""

    log_level: str = "info"
    """Log level of the server processes."""
