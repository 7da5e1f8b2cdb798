"""Core inference types that every transport decodes into and encodes from.

They are plain slotted dataclasses holding NumPy arrays: no validation round-trips on the hot
path. Transports build them; the engine checks them against the model's signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class Tensor:
    """A named tensor: ``data`` already has ``shape`` and the dtype of ``datatype``.

    BYTES tensors are object arrays whose elements are ``bytes``.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    """An output the caller asked for, with its parameters (for example ``binary_data``)."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferenceRequest:
    """One inference call: inputs, the outputs wanted (empty means all), request id."""

    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] = field(default_factory=list)


@dataclass(slots=True)
class InferenceResponse:
    """The answer: which version answered, the request id, and the output tensors."""

    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]
    parameters: dict[str, Any] = field(default_factory=dict)
