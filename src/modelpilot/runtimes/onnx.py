"""ONNX models, served by ONNX Runtime on the CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError, ModelFailure
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.base import Batch, Runtime

_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _spec(node: Any, kind: str) -> TensorSpec:
    """The spec of an ONNX graph's ``kind`` (``input`` or ``output``) ``node``; ArtifactError
    for a type the protocol has no datatype for, naming which node and why."""
    datatype = _TYPES.get(node.type)
    if datatype is None:
        raise ArtifactError(_unsupported(node.name, node.type, kind))
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


def _unsupported(name: str, onnx_type: str, kind: str) -> str:
    """Why an ONNX ``kind`` ``name`` of ``onnx_type`` cannot be served, and what to do."""
    if onnx_type.startswith("tensor("):
        # bfloat16, float8, int4, complex...: element types the protocol's datatypes lack.
        element = onnx_type[len("tensor(") : -1]
        supported = ", ".join(t[len("tensor(") : -1] for t in _TYPES)
        return (
            f"ONNX {kind} {name!r} has element type {element}, which the Open Inference "
            f"Protocol has no datatype for; this server takes tensors of {supported}: cast "
            f"the {kind} to one of them in the graph (a Cast node)"
        )
    message = (
        f"ONNX {kind} {name!r} has type {onnx_type}, which is not a tensor; the Open "
        "Inference Protocol carries tensors only"
    )
    if kind == "output":
        # skl2onnx's ZipMap output is a sequence of maps, which no tensor protocol carries.
        message += "; convert scikit-learn classifiers with options={'zipmap': False}"
    return message


class OnnxRuntime(Runtime):
    """An ONNX graph in an ``onnxruntime.InferenceSession`` (thread-safe for ``run``)."""

    flavor = "onnx"

    def __init__(self, session: Any, signature: Signature | None, size: int) -> None:
        self.session = session
        self._size = size
        self._inputs = {node.name: _spec(node, "input") for node in session.get_inputs()}
        self.signature = signature or self.infer_signature()

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        try:
            import onnxruntime as ort
        except ImportError:
            from modelpilot.errors import MissingExtra

            raise MissingExtra("onnxruntime", "onnx") from None
        so = ort.SessionOptions()
        # A graph ORT already optimized (cached by an earlier load) needs no second pass.
        so.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if options.get("optimized")
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        if options.get("save_optimized"):
            so.optimized_model_filepath = str(options["save_optimized"])
        so.intra_op_num_threads = int(options.get("intra_op_threads", 1))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ArtifactError(f"{path.name} is not a valid ONNX model: {exc}") from exc
        return cls(session, signature, path.stat().st_size)

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        inputs = tuple(self._inputs.values())
        outputs = tuple(_spec(node, "output") for node in self.session.get_outputs())
        names = None
        if feature_names and len(inputs) == 1 and len(inputs[0].shape) == 2:
            width = inputs[0].shape[1]
            if width in (-1, len(feature_names)):
                names = tuple(feature_names)
        return Signature(inputs=inputs, outputs=outputs, feature_names=names, allow_nan=False)

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        wanted = list(outputs) or [spec.name for spec in self.signature.outputs]
        feed = {}
        for name, array in batch.items():
            if self._inputs[name].datatype == "BYTES":
                array = np.array(
                    [v.decode() if isinstance(v, bytes) else v for v in array.ravel()], dtype=object
                ).reshape(array.shape)
            feed[name] = array
        try:
            results = self.session.run(wanted, feed)
        except Exception as exc:
            raise ModelFailure(f"ONNX Runtime failed: {exc}") from exc
        return {name: np.asarray(value) for name, value in zip(wanted, results, strict=True)}

    @property
    def memory_bytes(self) -> int:
        return self._size
