"""The REST wire format of the protocol: JSON bodies and the binary tensor data extension.

With the extension, a body is a JSON header of ``Inference-Header-Content-Length`` bytes
followed by raw tensor bytes; each tensor whose ``parameters.binary_data_size`` is set takes
that many bytes from the tail, in order. Outputs go binary when the request asks for it
(``binary_data`` on an output, or ``binary_data_output`` on the request), as the Triton client
does by default.

JSON has no number for +inf and -inf. They are written as the strings ``"Infinity"`` and
``"-Infinity"``, as protobuf's JSON mapping writes the protocol's gRPC messages (NumPy, the
Triton client's ``as_numpy`` and JavaScript's ``Number`` read them back), and FP data may send
them so, with ``"NaN"``; NaN is written as null, the protocol's missing value, as the
inference log gives it back. Written as null too (orjson's way, and KServe's and MLServer's),
an answer of +inf read as missing, where the log and gRPC held it as +inf; Triton writes bare
``Infinity`` and ``NaN``, which strict JSON parsers (browsers', Go's, orjson) refuse whole.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from modelpilot.errors import BadRequest, InvalidInput, clipped, quoted
from modelpilot.protocol.datatypes import DATATYPES, NUMERIC_DATATYPES
from modelpilot.protocol.json_numbers import mentions_truths, numbers, uneven
from modelpilot.protocol.raw import decode_raw, element_count, encode_raw
from modelpilot.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    Tensor,
    checked_request_id,
)

# Datatypes whose arrays orjson serializes natively (it has no float16).
_NUMPY_OK = (NUMERIC_DATATYPES - {"FP16"}) | {"BOOL"}

INFINITIES = {math.inf: "Infinity", -math.inf: "-Infinity"}
"""How +inf and -inf are written (see the module's docstring)."""


def parse_json(body: bytes | memoryview, what: str = "request body") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not body:
            raise BadRequest(f"the {what} is empty; send JSON") from None
        # orjson reads a bare word as a literal it could not finish: "not json" gave
        # "invalid literal, expected 'null'".
        problem = "unexpected text" if exc.msg.startswith("invalid literal") else exc.msg
        raise BadRequest(
            f"the {what} is not valid JSON: {problem} at line {exc.lineno}, column {exc.colno}"
        ) from None


def decode_request(body: bytes, header_length: int | None = None) -> InferenceRequest:
    """An ``InferenceRequest`` from a v2 JSON body, with an optional binary tail."""
    view = memoryview(body)
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {quoted(header_length)} but the body has "
                f"only {len(body)} bytes"
            )
        header, binary = view[:header_length], view[header_length:]
    else:
        header, binary = view, None
    payload = parse_json(header, "inference request header" if binary is not None else "body")
    if not isinstance(payload, dict):
        raise BadRequest('the body must be a JSON object: {"inputs": [...]}')
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('"inputs" must be a non-empty list of tensors')
    # Whether the data may hold true or false, which NumPy reads as 1 and 0 beside numbers:
    # looked for in the text, and in the data only where the text has them.
    truths = mentions_truths(body, len(body) if header_length is None else header_length)
    offset = 0
    tensors = []
    for item in inputs:
        tensor, used = _decode_input(item, binary, offset, truths)
        offset += used
        tensors.append(tensor)
    if binary is not None and offset != len(binary):
        raise BadRequest(
            f"the binary section has {len(binary)} bytes but the inputs' binary_data_size "
            f"add up to {offset}"
        )
    wanted = payload.get("outputs") or []
    if not isinstance(wanted, list):
        raise BadRequest('"outputs" must be a list of objects with a "name"')
    outputs = []
    for item in wanted:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest('each of "outputs" must be an object with a "name"')
        name = item["name"]
        output_parameters = _parameters(item, "output", name)
        _flag(output_parameters, "binary_data", "output", name)
        outputs.append(RequestedOutput(name, output_parameters))
    parameters = _parameters(payload, "the request")
    _flag(parameters, "binary_data_output", "the request")
    return InferenceRequest(
        inputs=tensors,
        id=checked_request_id(payload.get("id")),
        parameters=parameters,
        outputs=outputs,
    )


def _parameters(item: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    """The ``parameters`` object of a request, or of its input or output ``name`` ({} when
    absent)."""
    parameters = item.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest(f'"parameters" of {_owner(kind, name)} must be an object')
    return parameters


def _flag(parameters: dict[str, Any], key: str, kind: str, name: str | None = None) -> None:
    """BadRequest unless ``parameters[key]``, if given, is a JSON boolean (the text "false"
    would otherwise read as true)."""
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(
            f'"{key}" of {_owner(kind, name)} must be true or false, not {quoted(value)}'
        )


def _owner(kind: str, name: str | None) -> str:
    """Whose parameters are wrong, for the message: made only then (``quoted`` costs a
    request as much as the rest of its parameters' checks)."""
    return kind if name is None else f"{kind} {quoted(name)}"


def _decode_input(
    item: Any, binary: memoryview | None, offset: int, truths: bool = True
) -> tuple[Tensor, int]:
    if not isinstance(item, dict):
        raise BadRequest("each input must be an object with name, shape, datatype and data")
    name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadRequest('every input needs a "name"')
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f'input {quoted(name)}: "shape" must be a list of non-negative integers')
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInput(
            f"input {quoted(name)}: unknown datatype {quoted(datatype)}; use one of "
            f"{sorted(DATATYPES)}"
        )
    parameters = _parameters(item, "input", name)
    size = parameters.get("binary_data_size")
    if size is not None:
        if binary is None:
            raise BadRequest(
                f"input {quoted(name)} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if type(size) is not int or size < 0:  # not a bool either: true read as 1
            raise BadRequest(
                f'input {quoted(name)}: "binary_data_size" must be a whole number of bytes, '
                f"0 or more, not {_as_sent(size)}"
            )
        if offset + size > len(binary):
            raise BadRequest(
                f"input {quoted(name)}: binary_data_size {quoted(size)} runs past the end of "
                f"the binary section ({len(binary) - offset} bytes left)"
            )
        array = decode_raw(name, datatype, shape, binary[offset : offset + size])
        return Tensor(name, datatype, tuple(shape), array, parameters), size
    data = item.get("data")
    if not isinstance(data, list):
        # As the protocol has it: a list, flat or nested, even of the one value of shape [].
        raise InvalidInput(
            f'input {quoted(name)} has no "data"'
            if data is None
            else f'input {quoted(name)}: "data" must be a list of its values (flat or nested), '
            f"not {_json_kind(data)}; a tensor of shape [] holds one value: [value]"
        )
    array = _from_json(name, datatype, shape, data, truths)
    return Tensor(name, datatype, tuple(shape), array, parameters), 0


def _from_json(
    name: str, datatype: str, shape: list[int], data: Any, truths: bool = True
) -> np.ndarray:
    count = element_count(name, shape)
    try:
        if datatype == "BYTES":
            try:
                flat = np.asarray(data, dtype=object).reshape(-1)
            except ValueError:
                raise uneven(name, shape, data) from None
            array = np.empty(flat.size, dtype=object)
            array[:] = [
                v.encode() if isinstance(v, str) else _bytes(name, v, shape, data) for v in flat
            ]
        else:
            array = numbers(name, datatype, shape, data, truths)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"input {quoted(name)}: data does not fit datatype {datatype}: {clipped(str(exc))}"
        ) from None
    if array.size != count:
        raise InvalidInput(
            f"input {quoted(name)} has {array.size} values but shape {shape} needs {count}"
        )
    return array.reshape(shape)


def _json_kind(value: Any) -> str:
    """What a JSON value is, as a message names it."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an object"


def _as_sent(value: Any) -> str:
    """A JSON value as a message names it: numbers as they are, text quoted (to tell "32"
    from 32), true and false as JSON spells them, lists and objects by kind."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {quoted(value)}"
    if isinstance(value, int | float):
        return quoted(value)
    return "a list" if isinstance(value, list) else "an object"


def _bytes(name: str, value: Any, shape: list[int], data: list[Any]) -> bytes | None:
    """A JSON value of BYTES ``data`` that is no string: null is a missing value (None), which
    the model's signature takes or refuses by feature and row (serving.inputs). A list is
    what NumPy left of ragged lists, or of lists nested past its dimensions, as objects."""
    if isinstance(value, bytes) or value is None:
        return value
    if isinstance(value, list):
        raise uneven(name, shape, data)
    raise InvalidInput(
        f"input {quoted(name)}: BYTES data must be strings or null, got {type(value).__name__}"
    )


def encode_response(
    response: InferenceResponse, request: InferenceRequest
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when outputs went binary."""
    binary_all = bool(request.parameters.get("binary_data_output", False))
    binary_names = {o.name for o in request.outputs if o.parameters.get("binary_data", binary_all)}
    if binary_all and not request.outputs:
        binary_names = {t.name for t in response.outputs}
    outputs = []
    chunks: list[bytes] = []
    for tensor in response.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if tensor.name in binary_names:
            raw = encode_raw(tensor.datatype, tensor.data)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _to_json(tensor)
        outputs.append(entry)
    header: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "outputs": outputs,
    }
    if response.parameters:
        header["parameters"] = response.parameters
    body = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return body, None
    return body + b"".join(chunks), len(body)


def _holds_infinity(flat: np.ndarray) -> bool:
    """Whether the float array ``flat`` holds +inf or -inf. Each float output of an answer is
    asked: a small one as a list, where NumPy's own check cost a three-value answer a third
    of its encoding."""
    if flat.size <= 16:
        listed = flat.tolist()
        return math.inf in listed or -math.inf in listed
    return bool(np.isinf(flat).any())


def _infinities_named(values: np.ndarray) -> Any:
    """``values`` (floats) as nested lists, +inf and -inf as ``INFINITIES`` names them; the
    other numbers stay NumPy scalars, which orjson writes as their dtype has them (a float32
    as the shortest float32)."""
    flat = values.reshape(-1)
    named = np.empty(flat.size, dtype=object)
    named[:] = list(flat)
    named[np.isposinf(flat)] = INFINITIES[math.inf]
    named[np.isneginf(flat)] = INFINITIES[-math.inf]
    return named.reshape(values.shape).tolist()


def nested_json(tensor: Tensor) -> Any:
    """``tensor``'s values in its shape, for ``orjson.dumps(..., option=OPT_SERIALIZE_NUMPY)``:
    numbers stay a NumPy array, which orjson writes itself (a float32 as the shortest float32,
    ``1.0000001``, not as the float64 ``tolist`` makes of it, ``1.0000001192092896``); +inf and
    -inf as ``INFINITIES`` names them (orjson would write null)."""
    data = tensor.data
    if data.dtype.kind == "O":  # BYTES: bytes objects, as text
        return [_decoded(v) for v in data.tolist()]
    if data.dtype.kind == "f" and _holds_infinity(data.reshape(-1)):
        return _infinities_named(data)
    if tensor.datatype in _NUMPY_OK and data.dtype.isnative:
        return np.ascontiguousarray(data)
    return data.tolist()


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _to_json(tensor: Tensor) -> Any:
    flat = tensor.data.reshape(-1)
    if tensor.datatype == "BYTES":
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in flat]
    if flat.dtype.kind == "f" and _holds_infinity(flat):
        return _infinities_named(flat)
    if tensor.datatype in _NUMPY_OK:
        # orjson writes contiguous native arrays itself, far faster than tolist().
        return np.ascontiguousarray(flat)
    return flat.tolist()
