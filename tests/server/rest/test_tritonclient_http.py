"""Conformance, judged by a client we did not write: NVIDIA's tritonclient over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as httpclient
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from modelpilot.registry.store import Registry
from modelpilot.runtimes.convert import ATOL, RTOL
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import free_port, make_settings, shop_frame
from tests.server.conftest import LoopThread, serve_http


@pytest.fixture
def triton(
    served_registry: Registry, loop_thread: LoopThread
) -> Iterator[httpclient.InferenceServerClient]:
    port = free_port()
    settings = make_settings(served_registry, http_port=port)
    engine = InferenceEngine(served_registry, settings)
    loop_thread.run(engine.start())
    stop = serve_http(loop_thread, create_app(engine, settings), port)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    yield client
    client.close()
    stop()
    loop_thread.run(engine.stop())


def iris_input(rows: np.ndarray, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def test_health_and_metadata(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("iris", "1")
    assert not triton.is_model_ready("nope")
    assert triton.get_server_metadata()["name"] == "modelpilot"
    meta = triton.get_model_metadata("iris")
    assert meta["inputs"][0]["shape"] == [-1, 4]
    assert {m["name"] for m in triton.get_model_repository_index()} == {"iris", "forest"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_the_model_in_process(
    triton: httpclient.InferenceServerClient,
    binary: bool,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
) -> None:
    rows = iris_frame.to_numpy()[::10]
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")
    ]
    result = triton.infer("iris", [iris_input(rows, binary)], outputs=outputs, request_id="t-1")
    assert result.get_response()["id"] == "t-1"
    np.testing.assert_array_equal(
        result.as_numpy("predict"), iris_model.predict(iris_frame.iloc[::10])
    )
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), iris_model.predict_proba(iris_frame.iloc[::10])
    )


def test_infer_with_the_clients_defaults(
    triton: httpclient.InferenceServerClient,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
) -> None:
    rows = iris_frame.to_numpy()[:3]
    result = triton.infer("iris", [iris_input(rows, True)])
    np.testing.assert_array_equal(
        result.as_numpy("predict"), iris_model.predict(iris_frame.iloc[:3])
    )


def test_unload_and_load(triton: httpclient.InferenceServerClient) -> None:
    triton.unload_model("forest")
    assert not triton.is_model_ready("forest")
    with pytest.raises(InferenceServerException, match="was unloaded"):
        triton.infer("forest", [iris_input(np.zeros((1, 10)), True)])
    triton.load_model("forest")
    assert triton.is_model_ready("forest")
    result = triton.infer("forest", [iris_input(np.zeros((1, 10)), True)])
    assert result.as_numpy("predict").shape == (1,)


def test_errors_reach_the_client(triton: httpclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton.infer("iris", [iris_input(np.zeros((1, 3)), True)])
    assert info.value.status() == "422"
    assert "takes 4" in info.value.message()
    with pytest.raises(InferenceServerException) as missing:
        triton.infer("nope", [iris_input(np.zeros((1, 4)), True)])
    assert missing.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_model_that_takes_text_gets_one_tensor_per_feature(
    triton: httpclient.InferenceServerClient,
    served_registry: Registry,
    shop_files: tuple[Path, Path],
    binary: bool,
) -> None:
    model, reference = shop_files
    register_model(served_registry, "shop", model, reference=reference, target="bought")
    triton.load_model("shop")
    meta = triton.get_model_metadata("shop")
    rows = shop_frame(8, seed=4)
    tensors = []
    for spec in meta["inputs"]:  # what the metadata says to send, as a client reads it
        values = rows[spec["name"]].to_numpy()
        values = values.astype(object) if spec["datatype"] == "BYTES" else values.astype(float)
        tensor = httpclient.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    assert [t.name() for t in tensors] == ["color", "size", "count"]
    result = triton.infer("shop", tensors)
    expected = joblib.load(model).predict_proba(rows)
    served = result.as_numpy("predict_proba")  # by ONNX Runtime, in float32
    np.testing.assert_allclose(served, expected, rtol=RTOL, atol=ATOL)


def test_model_config_says_what_triton_tools_read(triton: httpclient.InferenceServerClient) -> None:
    config = triton.get_model_config("iris")
    assert config["max_batch_size"] == 64  # the batcher's largest batch
    assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP64", "dims": [4]}]
    predict, proba = config["output"]
    assert (predict["data_type"], predict["dims"], predict["reshape"]) == (
        "TYPE_INT64",
        [1],
        {"shape": []},  # one value per row, as Triton writes it
    )
    assert (proba["data_type"], proba["dims"]) == ("TYPE_FP64", [3])
    assert triton.get_model_config("iris", "1") == config
    with pytest.raises(InferenceServerException, match="no model named 'nope'"):
        triton.get_model_config("nope")
