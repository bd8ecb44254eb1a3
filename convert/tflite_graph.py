"""A .tflite flatbuffer as plain values: the tensors and ops of its only subgraph.

What the firmware plan generator (`convert.firmware_plan`) reads: tensor types, shapes,
constant data, quantisation, and each op's code, version, tensors and builtin options. Parsed
with TensorFlow's generated schema (`tensorflow.lite.python.schema_py_generated`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convert.errors import ConvertError

TYPE_SIZES = {"INT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4, "INT64": 8, "BOOL": 1}


@dataclass(frozen=True)
class GraphTensor:
    """One tensor: element type, shape, constant data (None for activations), quantisation."""

    index: int
    type_name: str
    type_code: int
    shape: tuple[int, ...]
    data: bytes | None
    is_variable: bool
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()

    @property
    def elements(self) -> int:
        """Number of elements (1 for a scalar)."""
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes the tensor's values take."""
        return self.elements * TYPE_SIZES[self.type_name]

    def values(self) -> np.ndarray:
        """Constant data as a numpy array of the tensor's type and shape."""
        if self.data is None:
            raise ConvertError(f"tensor {self.index} is not a constant")
        dtype = np.dtype(self.type_name.lower())
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape)


@dataclass(frozen=True)
class GraphOp:
    """One operator: builtin name and code, version, tensor indices (-1: absent), options."""

    index: int
    name: str
    builtin: int
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]
    options_type: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    """Subgraph 0 of a model with one input and one output."""

    tensors: tuple[GraphTensor, ...]
    ops: tuple[GraphOp, ...]
    input: int
    output: int


def read_graph(model_bytes: bytes) -> Graph:
    """Parse a .tflite; `ConvertError` for anything but one subgraph, one input, one output."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    except Exception as exc:  # flatbuffers raise assorted errors on garbage
        raise ConvertError(f"not a TFLite flatbuffer: {exc}") from exc
    if len(model.subgraphs) != 1:
        raise ConvertError(f"expected one subgraph, found {len(model.subgraphs)}")
    subgraph = model.subgraphs[0]
    if len(subgraph.inputs) != 1 or len(subgraph.outputs) != 1:
        raise ConvertError("expected a model with exactly one input and one output")
    type_names = _enum_names(schema.TensorType)
    op_names = _enum_names(schema.BuiltinOperator)
    tensors = tuple(
        _tensor(i, t, model.buffers, type_names) for i, t in enumerate(subgraph.tensors)
    )
    ops = tuple(_op(i, o, model.operatorCodes, op_names) for i, o in enumerate(subgraph.operators))
    return Graph(tensors, ops, int(subgraph.inputs[0]), int(subgraph.outputs[0]))


def _tensor(index: int, tensor: Any, buffers: Any, type_names: dict[int, str]) -> GraphTensor:
    buffer = buffers[tensor.buffer]
    data = None if buffer.data is None or len(buffer.data) == 0 else bytes(buffer.data)
    quant = tensor.quantization
    scales = () if quant is None or quant.scale is None else tuple(np.ravel(quant.scale))
    zeros = () if quant is None or quant.zeroPoint is None else tuple(np.ravel(quant.zeroPoint))
    shape = () if tensor.shape is None else tuple(int(d) for d in np.ravel(tensor.shape))
    return GraphTensor(
        index=index,
        type_name=type_names[int(tensor.type)],
        type_code=int(tensor.type),
        shape=shape,
        data=data,
        is_variable=bool(tensor.isVariable),
        scales=tuple(float(s) for s in scales),
        zero_points=tuple(int(z) for z in zeros),
    )


def _op(index: int, operator: Any, codes: Any, op_names: dict[int, str]) -> GraphOp:
    code = codes[operator.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    options = operator.builtinOptions
    return GraphOp(
        index=index,
        name=op_names.get(builtin, f"BUILTIN_{builtin}"),
        builtin=builtin,
        version=int(code.version),
        inputs=_indices(operator.inputs),
        outputs=_indices(operator.outputs),
        intermediates=_indices(operator.intermediates),
        options_type=int(operator.builtinOptionsType),
        options={} if options is None else dict(vars(options)),
    )


def _indices(values: Any) -> tuple[int, ...]:
    return () if values is None else tuple(int(v) for v in np.ravel(values))


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_")}
