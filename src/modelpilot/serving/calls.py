"""One model call: how a version's requests are batched, the call itself, its timeout, and
its failures in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
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
from modelpilot.repeated_errors import REPEAT_SECONDS, RepeatedErrors
from modelpilot.runtimes.base import Runtime, batch_rows
from modelpilot.serving.batcher import BatchingPolicy

logger = logging.getLogger(__name__)


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


class ModelFailures:
    """A version's failures in the server log: each kind whole the first time, with the
    traceback down to the model's own line that raised, then at most once every ``seconds``
    with how often it came back.

    The 500 a client gets says what failed, not where, and not which version: a tester's 50
    failing requests left no line in the log, even at debug level. A model that fails every
    request costs a lock and a dict lookup per failed call here, not a log line. A kind is
    the exception's type and the line that raised it, or the output that came back wrong:
    the message may differ with every input. A call counted may be a batch of several
    requests, run again one by one to find which of them the model fails on.
    """

    def __init__(self, version: ModelVersion, seconds: float = REPEAT_SECONDS) -> None:
        self.version = version
        self._errors = RepeatedErrors(logger, seconds)
        self._rejections = RepeatedErrors(logger, seconds, logging.WARNING)

    def flush(self) -> None:
        """Log the failures that came again since they were last logged (at shutdown)."""
        self._errors.flush()
        self._rejections.flush()

    def rejected(self, kind: Hashable, rejection: InvalidInput, rows: int) -> None:
        """Log, as a warning with its traceback, that the model raised ValueError or
        TypeError on a call of ``rows`` rows (answered 422: the input's fault, as
        scikit-learn's checks mean it, or a bug of the model's, which only the traceback
        tells), unless its ``kind`` was logged in the last ``seconds``."""
        self._rejections.error(
            kind,
            "%s rejected the input of a call of %d row(s) (answered 422; if the input was "
            "right, the model raised it): %s",
            self.version,
            rows,
            rejection.message,
            exc_info=True,
        )

    def failed(self, kind: Hashable, failure: ModelFailure, rows: int, traceback: bool) -> None:
        """Log ``failure`` of a call on ``rows`` rows, unless its ``kind`` was logged in the
        last ``seconds``; ``traceback``: with the one of the exception being handled."""
        self._errors.error(
            kind,
            "%s failed on a call of %d row(s): %s",
            self.version,
            rows,
            failure.message,
            exc_info=traceback,
        )


def checked_predict(
    runtime: Runtime,
    batch: dict[str, np.ndarray],
    names: list[str],
    failures: ModelFailures | None = None,
) -> dict[str, np.ndarray]:
    """``runtime``'s outputs ``names`` for ``batch``, one row per input row, or the protocol
    error to answer: the model's complaints about its input are the client's (InvalidInput),
    anything else it raises, or a missing or misshapen output, is the model's (ModelFailure),
    which ``failures`` logs."""
    try:
        arrays = runtime.predict(batch, names)
    except ModelPilotError:
        raise
    except (ValueError, TypeError) as exc:
        # scikit-learn and friends raise these for input they reject after our checks. A
        # model's own bug may raise them too: the client's 422 cannot tell, so the log says
        # where it was raised (a model whose lookup failed on some inputs left no line).
        rejected = InvalidInput(f"the model rejected the input: {clipped(str(exc))}")
        if failures is not None:
            failures.rejected(_raised_at(exc), rejected, batch_rows(batch))
        raise rejected from exc
    except Exception as exc:
        failure = ModelFailure(
            f"the model failed while predicting: {type(exc).__name__}: {clipped(str(exc))}"
        )
        if failures is not None:
            failures.failed(_raised_at(exc), failure, batch_rows(batch), traceback=True)
        raise failure from exc
    rows = batch_rows(batch)
    for name in names:
        if name not in arrays:
            failure = ModelFailure(f"the model did not produce output {name!r}")
        elif np.ndim(arrays[name]) == 0 or np.shape(arrays[name])[0] != rows:
            failure = ModelFailure(
                f"the model returned {np.shape(arrays[name])} for output {name!r}; "
                f"expected one row per input row ({rows})"
            )
        else:
            continue
        if failures is not None:
            failures.failed(("output", name), failure, rows, traceback=False)
        raise failure
    return arrays


def _raised_at(exc: BaseException) -> tuple[type, str, int]:
    """``exc``'s kind: its type and the file and line that raised it."""
    frame = exc.__traceback__
    if frame is None:
        return type(exc), "", 0
    while frame.tb_next is not None:
        frame = frame.tb_next
    return type(exc), frame.tb_frame.f_code.co_filename, frame.tb_lineno
