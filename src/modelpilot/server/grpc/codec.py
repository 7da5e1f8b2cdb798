"""gRPC messages to core types and back: raw contents, typed contents, parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelpilot.errors import BadRequest, InvalidInput, quoted
from modelpilot.protocol.datatypes import DATATYPES, narrowed, numpy_dtype
from modelpilot.protocol.raw import decode_raw, element_count, encode_raw
from modelpilot.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    Tensor,
    answerable_request_id,
)
from modelpilot.server.grpc.generated import inference_pb2 as pb

# The typed ``contents`` field that carries each datatype when raw contents are not used.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters_to_dict(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        if which is not None:
            result[key] = getattr(param, which)
    return result


def dict_to_parameters(values: Mapping[str, Any], target: Any) -> None:
    for key, value in values.items():
        param = target[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            param.int64_param = value
        elif isinstance(value, float):
            param.double_param = value
        else:
            param.string_param = str(value)


def decode_request(message: pb.ModelInferRequest) -> InferenceRequest:
    """A core request from ``ModelInferRequest``; raw contents decode without a copy."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise BadRequest(
            f"the request has {len(message.inputs)} inputs but {len(raw)} raw_input_contents; "
            "send one raw entry per input, in order"
        )
    tensors = []
    for i, item in enumerate(message.inputs):
        name, datatype, shape = item.name, item.datatype, list(item.shape)
        if not name:
            # As over REST: a nameless input would go to a lone input under any name, and
            # say nothing of itself in an error.
            raise BadRequest(f"input {i} has no name; every input needs a name")
        if datatype not in DATATYPES:
            raise InvalidInput(
                f"input {quoted(name)}: unknown datatype {quoted(datatype)}; use one of "
                f"{sorted(DATATYPES)}"
            )
        if raw:
            if item.HasField("contents"):
                raise InvalidInput(
                    f"input {quoted(name)} has typed contents as well as raw_input_contents; send "
                    "each input's data one way (raw for all inputs, or contents for all)"
                )
            array = decode_raw(name, datatype, shape, raw[i])
        else:
            array = _from_contents(name, datatype, shape, item.contents)
        tensors.append(
            Tensor(name, datatype, tuple(shape), array, parameters_to_dict(item.parameters))
        )
    outputs = []
    for output in message.outputs:
        output_parameters = parameters_to_dict(output.parameters)
        _flag(output_parameters, "binary_data", output.name)
        outputs.append(RequestedOutput(output.name, output_parameters))
    parameters = parameters_to_dict(message.parameters)
    _flag(parameters, "binary_data_output")
    return InferenceRequest(
        inputs=tensors,
        id=answerable_request_id(message.id),
        parameters=parameters,
        outputs=outputs,
    )


def _flag(parameters: dict[str, Any], key: str, output: str | None = None) -> None:
    """BadRequest unless ``parameters[key]`` (of the request, or of its ``output``), if
    given, is a ``bool_param``, as REST takes only true or false for it (an int64 5 would
    otherwise read as true)."""
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        owner = "the request" if output is None else f"output {quoted(output)}"
        raise BadRequest(
            f'"{key}" of {owner} must be a bool_param (true or false), not {quoted(value)}'
        )


def _from_contents(
    name: str, datatype: str, shape: list[int], contents: pb.InferTensorContents
) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidInput(
            f"input {quoted(name)}: {datatype} has no typed contents field; send raw_input_contents"
        )
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        # Only one field is read: what the others hold would be dropped without a word.
        raise InvalidInput(
            f"input {quoted(name)} of datatype {datatype} has values in {', '.join(others)}; "
            f"send them in {field} alone"
        )
    values = getattr(contents, field)
    count = element_count(name, shape)
    if len(values) != count:
        raise InvalidInput(
            f"input {quoted(name)} has {len(values)} values in {field} but shape {shape} "
            f"needs {count}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
    elif numpy_dtype(datatype).kind in "iu":
        # The contents field is wider than INT8/16 and UINT8/16: check before narrowing.
        array = narrowed(name, np.asarray(values), datatype)
    else:
        array = np.asarray(values, dtype=numpy_dtype(datatype))
    return array.reshape(shape)


def encode_response(response: InferenceResponse) -> pb.ModelInferResponse:
    """``ModelInferResponse`` with every output in ``raw_output_contents``."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id,
    )
    for tensor in response.outputs:
        message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        message.raw_output_contents.append(encode_raw(tensor.datatype, tensor.data))
    if response.parameters:
        dict_to_parameters(response.parameters, message.parameters)
    return message
