"""A served version described as Triton's model configuration, for the tools that read it.

Triton's clients ask for a model's configuration before they send it anything: its
``perf_analyzer`` reads the largest batch and each input's type and dimensions from it, and
refuses to run without it. ModelPilot has no configuration files; this is what one would say
of a version served here, in the JSON form of Triton's ``ModelConfig`` message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelpilot.registry.signature import TensorSpec

TRITON_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}


def model_config(
    name: str,
    backend: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    max_batch_size: int,
    max_queue_delay_seconds: float,
) -> dict[str, Any]:
    """The configuration Triton would give a model of these tensors.

    Where every tensor's first dimension is the batch (-1), the model batches: the batch
    dimension leaves the tensors' ``dims`` (a tensor of one value per row gets ``[1]``, with
    a reshape to no dimensions, as Triton writes it) and ``max_batch_size`` says how many rows
    a model call takes at most. Otherwise ``max_batch_size`` is 0 and ``dims`` are whole.
    """
    batched = all(spec.shape and spec.shape[0] == -1 for spec in (*inputs, *outputs))
    config: dict[str, Any] = {
        "name": name,
        "platform": "",
        "backend": backend,
        "max_batch_size": max_batch_size if batched else 0,
        "input": [_tensor(spec, batched) for spec in inputs],
        "output": [_tensor(spec, batched) for spec in outputs],
    }
    if batched:
        delay = round(max_queue_delay_seconds * 1_000_000)
        config["dynamic_batching"] = {"max_queue_delay_microseconds": delay}
    return config


def _tensor(spec: TensorSpec, batched: bool) -> dict[str, Any]:
    dims = list(spec.shape[1:] if batched else spec.shape)
    entry: dict[str, Any] = {
        "name": spec.name,
        "data_type": TRITON_TYPES[spec.datatype],
        "dims": dims or [1],
    }
    if not dims:
        entry["reshape"] = {"shape": []}
    return entry
