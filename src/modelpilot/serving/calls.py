"""One model call: how a version's requests are batched, the call itself, and its timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from modelpilot.config import Settings
from modelpilot.errors import (
    BadRequest,
    InferenceTimeout,
    InvalidInput,
    ModelFailure,
    ModelPilotError,
    clipped,
    quoted,
)
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime, batch_rows
from modelpilot.serving.batcher import BatchingPolicy


def expire(
    future: asyncio.Future[Any], version: ModelVersion, seconds: float, asked: bool = False
) -> None:
    """Fail ``future`` (a request's answer) as timed out, unless it is answered already;
    ``asked``: the timeout was the request's own (its ``timeout`` parameter)."""
    if not future.done():
        advice = (
            "the request's timeout parameter"
            if asked
            else "send fewer rows per request or raise MODELPILOT_REQUEST_TIMEOUT_SECONDS"
        )
        future.set_exception(
            InferenceTimeout(f"{version} did not answer within {seconds:g} s ({advice})")
        )


def request_timeout(parameters: dict[str, Any], limit: float) -> tuple[float, bool]:
    """Seconds a request may take: Triton's ``timeout`` request parameter (microseconds),
    within the server's ``limit``; and whether the request's own timeout is the one."""
    value = parameters.get("timeout")
    if value is None:
        return limit, False
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise BadRequest(
            f'the "timeout" parameter is microseconds, a number above 0, not {quoted(value)}'
        )
    seconds = value / 1_000_000
    return (seconds, True) if seconds < limit else (limit, False)


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
        raise InvalidInput(f"the model rejected the input: {clipped(str(exc))}") from exc
    except Exception as exc:
        raise ModelFailure(
            f"the model failed while predicting: {type(exc).__name__}: {clipped(str(exc))}"
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
