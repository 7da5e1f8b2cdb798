"""One model call: how a version's requests are batched, the call itself, and its timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from modelpilot.config import Settings
from modelpilot.errors import InferenceTimeout, InvalidInput, ModelFailure, ModelPilotError
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime, batch_rows
from modelpilot.serving.batcher import BatchingPolicy


def expire(future: asyncio.Future[Any], version: ModelVersion, seconds: float) -> None:
    """Fail ``future`` (a request's answer) as timed out, unless it is answered already."""
    if not future.done():
        future.set_exception(
            InferenceTimeout(
                f"{version} did not answer within {seconds:g} s; send fewer rows per request "
                "or raise MODELPILOT_REQUEST_TIMEOUT_SECONDS"
            )
        )


def batching_policy(settings: Settings, version: ModelVersion) -> BatchingPolicy:
    """The server's batching settings, overridden by the version's own metadata if it has any."""
    meta = version.metadata

    def pick(key: str, default: float) -> float:
        value = meta.get(key, default)
        return float(value) if isinstance(value, int | float) and value >= 0 else default

    return BatchingPolicy(
        max_batch_size=max(1, int(pick("max_batch_size", settings.max_batch_size))),
        max_latency=pick("max_batch_latency_ms", settings.max_batch_latency_ms) / 1000,
        concurrency=max(1, int(pick("batch_concurrency", settings.batch_concurrency))),
        max_queue_rows=settings.max_queue_rows,
        inline_below=pick("inline_predict_below_us", settings.inline_predict_below_us) / 1e6,
    )


def checked_predict(
    runtime: Runtime, batch: dict[str, np.ndarray], names: list[str]
) -> dict[str, np.ndarray]:
    """``runtime``'s outputs ``names`` for ``batch``, one row per input row, or the protocol
    error to answer: the model's complaints about its input are the client's (InvalidInput),
    anything else it raises, or a missing or misshapen output, is the model's (ModelFailure)."""
    try:
        arrays = runtime.predict(batch, names)
    except ModelPilotError:
        raise
    except (ValueError, TypeError) as exc:
        # scikit-learn and friends raise these for input they reject after our checks.
        raise InvalidInput(f"the model rejected the input: {exc}") from exc
    except Exception as exc:
        raise ModelFailure(
            f"the model failed while predicting: {type(exc).__name__}: {exc}"
        ) from exc
    rows = batch_rows(batch)
    for name in names:
        if name not in arrays:
            raise ModelFailure(f"the model did not produce output {name!r}")
        if np.ndim(arrays[name]) == 0 or np.shape(arrays[name])[0] != rows:
            raise ModelFailure(
                f"the model returned {np.shape(arrays[name])} for output {name!r}; "
                f"expected one row per input row ({rows})"
            )
    return arrays
