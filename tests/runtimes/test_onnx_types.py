"""ONNX graphs with types the protocol cannot carry: refused at load, naming the node, whether
it is an input or an output, and the type."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper, save

from modelpilot.errors import ArtifactError
from modelpilot.runtimes.flavors import load_runtime


def _graph(path: Path, node: str, source: int, target: int) -> Path:
    """``y = node(x)``, with ``x`` and ``y`` of the given element types."""
    x = helper.make_tensor_value_info("x", source, [None, 3])
    y = helper.make_tensor_value_info("y", target, [None, 3])
    attributes = {"to": target} if node == "Cast" else {}
    graph = helper.make_graph([helper.make_node(node, ["x"], ["y"], **attributes)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def test_a_bfloat16_input_is_named_as_an_input_of_an_unsupported_type(tmp_path: Path) -> None:
    path = _graph(tmp_path / "bf16.onnx", "Identity", TensorProto.BFLOAT16, TensorProto.BFLOAT16)
    with pytest.raises(ArtifactError) as refused:
        load_runtime("onnx", path)
    message = str(refused.value)
    assert "ONNX input 'x' has element type bfloat16" in message
    assert "Cast" in message and "float16" in message  # what to do, and what is taken
    assert "zipmap" not in message and "not a tensor" not in message


def test_a_bfloat16_output_is_named_as_an_output(tmp_path: Path) -> None:
    path = _graph(tmp_path / "to_bf16.onnx", "Cast", TensorProto.FLOAT, TensorProto.BFLOAT16)
    with pytest.raises(ArtifactError, match="ONNX output 'y' has element type bfloat16"):
        load_runtime("onnx", path)
