"""+inf and -inf over REST's JSON: written as "Infinity" and "-Infinity", taken so too.

A tester's model answered an FP64 output of +inf: REST wrote it as null, the value REST uses
for missing (as NaN is), while the inference log, and gRPC, held it as +inf. REST now names the
infinities as protobuf's JSON mapping of the protocol's gRPC messages does; NaN stays null.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from modelpilot.errors import InvalidInput
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.protocol.json_codec import decode_request, encode_response, nested_json
from modelpilot.protocol.types import InferenceResponse, Tensor
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.processes import Server, start, stop

INF = math.inf


def answer(request: dict[str, Any], *outputs: Tensor) -> tuple[bytes, int | None]:
    return encode_response(
        InferenceResponse("m", "1", "r1", list(outputs)), decode_request(orjson.dumps(request))
    )


A_REQUEST = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_an_answer_names_the_infinities_and_leaves_nan_null(dtype: type[np.floating]) -> None:
    datatype = {np.float64: "FP64", np.float32: "FP32", np.float16: "FP16"}[dtype]
    values = np.array([[INF, 1.5], [np.nan, -INF]], dtype=dtype)
    body, length = answer(A_REQUEST, Tensor("y", datatype, (2, 2), values))
    assert length is None
    assert orjson.loads(body)["outputs"][0]["data"] == ["Infinity", 1.5, None, "-Infinity"]


def test_the_other_numbers_of_an_answer_keep_their_precision() -> None:
    """float32 values are written as the shortest float32 still, beside a named infinity."""
    values = np.array([1.0000001, 0.1, INF], dtype=np.float32)
    body, _ = answer(A_REQUEST, Tensor("y", "FP32", (3,), values))
    assert b'"data":[1.0000001,0.1,"Infinity"]' in body


def test_binary_outputs_and_finite_answers_are_written_as_before() -> None:
    finite = Tensor("a", "FP64", (2,), np.array([np.nan, 2.0]))
    infinite = Tensor("b", "FP64", (1,), np.array([INF]))
    asked = {**A_REQUEST, "outputs": [{"name": "b", "parameters": {"binary_data": True}}]}
    body, length = answer(asked, finite, infinite)
    assert length is not None
    header = orjson.loads(body[:length])
    assert header["outputs"][0]["data"] == [None, 2.0]
    assert np.frombuffer(body[length:], "<f8").tolist() == [INF]


@pytest.mark.parametrize(
    ("values", "datatype", "written"),
    [
        (np.array([[INF], [2.0]]), "FP64", [["Infinity"], [2.0]]),
        (np.array([[1.5, -INF]], dtype=">f8"), "FP64", [[1.5, "-Infinity"]]),  # not native
        (np.array([-INF, np.nan], dtype=np.float16), "FP16", ["-Infinity", None]),
        (np.full(40, INF, dtype=np.float32), "FP32", ["Infinity"] * 40),  # not looked at listed
    ],
)
def test_predict_writes_them_so_too(values: np.ndarray, datatype: str, written: object) -> None:
    """``/predict`` writes each output's ``nested_json``, in its shape."""
    value = nested_json(Tensor("y", datatype, values.shape, values))
    assert orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)) == written


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "FP16"])
def test_fp_data_may_send_the_infinities_and_nan_as_answers_name_them(datatype: str) -> None:
    data = [[1.5, "Infinity"], ["-Infinity", "NaN"], [None, 2]]
    body = {"inputs": [{"name": "x", "shape": [3, 2], "datatype": datatype, "data": data}]}
    tensor = decode_request(orjson.dumps(body)).inputs[0]
    assert (
        tensor.data.dtype == {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16}[datatype]
    )
    expected = np.array([[1.5, INF], [-INF, np.nan], [np.nan, 2.0]])
    np.testing.assert_array_equal(tensor.data, expected.astype(tensor.data.dtype))


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("FP64", ["inf"], "FP64 data must be numbers, not strings"),  # only the names answers use
        ("FP64", ["Infinity", "1.5"], "FP64 data must be numbers, not strings"),
        ("FP32", ["Infinity", 1e39], "FP32 data cannot hold 1e\\+39"),  # overflow is no infinity
        ("INT64", ["Infinity"], "INT64 data must be numbers, not strings"),
        ("BOOL", ["NaN"], "BOOL data must be true or false, not strings"),
    ],
)
def test_text_that_names_no_such_number_is_still_refused(
    datatype: str, data: list[object], message: str
) -> None:
    body = {"inputs": [{"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}]}
    with pytest.raises(InvalidInput, match=message):
        decode_request(orjson.dumps(body))


DOUBLER = '''
import numpy as np


class Model:
    """Doubles its input; NaN where it is 0."""

    signature = {
        "inputs": [{"name": "d", "datatype": "FP64", "shape": [-1]}],
        "outputs": [{"name": "d2", "datatype": "FP64", "shape": [-1]}],
        "allow_nan": True,
    }

    def predict(self, d):
        with np.errstate(over="ignore"):  # 2 * 1e308 is +inf, as wanted
            return {"d2": np.where(d == 0, np.nan, 2 * d)}
'''

SENT = [1e308, -1e308, 0.0, 1.5]
ANSWERED = [INF, -INF, math.nan, 3.0]


@pytest.fixture
def server(registry: Registry, tmp_path: Path) -> Iterator[Server]:
    path = tmp_path / "doubler.py"
    path.write_text(DOUBLER)
    register_model(registry, "doubler", path, flavor="python")
    running = start(registry)
    yield running
    stop(running)


def same(values: list[Any], expected: list[float]) -> bool:
    """Whether ``values`` (floats, with None for NaN) are ``expected``, NaN for NaN."""
    floats = [math.nan if v is None else float(v) for v in values]
    return bool(np.array_equal(floats, expected, equal_nan=True))


@pytest.mark.slow
def test_rest_grpc_and_the_log_agree_on_an_infinite_answer(
    server: Server, registry: Registry
) -> None:
    body = {"id": "json", "inputs": [{"name": "d", "datatype": "FP64", "shape": [4], "data": SENT}]}
    reply = httpx.post(f"{server.url}/v2/models/doubler/infer", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    data = reply.json()["outputs"][0]["data"]
    assert data == ["Infinity", "-Infinity", None, 3.0]
    # Sent back as it came, it is taken (by a model that takes values that are not finite).
    again = {"id": "again", "inputs": [{**body["inputs"][0], "data": data}]}
    reply = httpx.post(f"{server.url}/v2/models/doubler/infer", json=again, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == ["Infinity", "-Infinity", None, 6.0]

    simple = {"instances": [{"d": d} for d in SENT], "id": "predict"}
    reply = httpx.post(f"{server.url}/predict/doubler", json=simple, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == ["Infinity", "-Infinity", None, 3.0]

    http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http}")
    tensor = httpclient.InferInput("d", [4], "FP64")
    tensor.set_data_from_numpy(np.array(SENT), binary_data=False)
    asked = [httpclient.InferRequestedOutput("d2", binary_data=False)]
    read = http.infer("doubler", [tensor], outputs=asked, request_id="triton-json")
    assert same(read.as_numpy("d2").tolist(), ANSWERED)
    http.close()
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    tensor = grpcclient.InferInput("d", [4], "FP64")
    tensor.set_data_from_numpy(np.array(SENT))
    assert same(grpc.infer("doubler", [tensor]).as_numpy("d2").tolist(), ANSWERED)
    grpc.close()

    stop(server)  # a clean shutdown writes every request to the log
    log = InferenceLog(registry.companion_engine("inference-log"))
    try:
        found = log.find("doubler", ["json", "predict", "triton-json"])
    finally:
        log.close()
    assert sorted(found) == ["json", "predict", "triton-json"]
    for entry in found.values():
        assert entry.outputs["d2"] == [INF, -INF, None, 3.0]  # as REST wrote them: null is NaN
        assert same(entry.outputs["d2"], ANSWERED)
