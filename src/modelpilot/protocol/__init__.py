"""Tensor types of the Open Inference Protocol v2 and their codecs."""

from modelpilot.protocol.datatypes import datatype_of, numpy_dtype
from modelpilot.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    Tensor,
)

__all__ = [
    "InferenceRequest",
    "InferenceResponse",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "numpy_dtype",
]
