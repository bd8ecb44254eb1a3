"""Read a .tflite flatbuffer: its ops with tensor types, and its input/output quantisation.

The flatbuffer is parsed directly (TensorFlow's generated schema), not through an
interpreter, so the op list is the model's own and never includes runtime delegates.
A full-integer model has only int8 tensors, int32 biases/shapes and the int16 cell state a
TFLM int8 LSTM keeps; any other type (float32 above all) fails the check naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bundle_format.reader import TensorQuantisation
from convert.errors import ConvertError, FloatOpError

INTEGER_TYPES = frozenset({"INT8", "INT16", "INT32"})


@dataclass(frozen=True)
class OpInfo:
    """One operator of the main subgraph and the element types it reads and writes."""

    index: int
    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]

    @property
    def non_integer_types(self) -> tuple[str, ...]:
        """Types outside the full-integer set, in order of appearance."""
        seen = dict.fromkeys(self.input_types + self.output_types)
        return tuple(kind for kind in seen if kind not in INTEGER_TYPES)


def list_ops(model_bytes: bytes) -> list[OpInfo]:
    """Every op of subgraph 0 with the types of its tensors."""
    model, schema = _read_model(model_bytes)
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    subgraph = model.subgraphs[0]
    ops = []
    for index, operator in enumerate(subgraph.operators):
        code = model.operatorCodes[operator.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if builtin == schema.BuiltinOperator.CUSTOM:
            name = f"CUSTOM:{_text(code.customCode)}"
        ops.append(
            OpInfo(
                index=index,
                name=name,
                input_types=_tensor_types(subgraph, operator.inputs, type_names),
                output_types=_tensor_types(subgraph, operator.outputs, type_names),
            )
        )
    return ops


def op_names(model_bytes: bytes) -> list[str]:
    """Sorted distinct op names (what the manifest records and a firmware op resolver needs)."""
    return sorted({op.name for op in list_ops(model_bytes)})


def check_full_integer(model_bytes: bytes, label: str = "model") -> list[str]:
    """Return the op names; raise `FloatOpError` naming the first non-integer op."""
    ops = list_ops(model_bytes)
    for op in ops:
        if op.non_integer_types or op.name.startswith("CUSTOM:"):
            kinds = ", ".join(op.non_integer_types) or "custom op"
            raise FloatOpError(
                f"{label} is not full-integer: op #{op.index} {op.name} uses {kinds}"
            )
    io = io_quantisation(model_bytes)
    for which in ("input", "output"):
        if io[which].dtype != "int8":
            raise FloatOpError(f"{label} {which} is {io[which].dtype}, expected int8")
    return sorted({op.name for op in ops})


def io_quantisation(model_bytes: bytes) -> dict[str, TensorQuantisation]:
    """Quantisation of the single input and single output."""
    model, schema = _read_model(model_bytes)
    subgraph = model.subgraphs[0]
    type_names = _enum_names(schema.TensorType)
    if len(subgraph.inputs) != 1 or len(subgraph.outputs) != 1:
        raise ConvertError("expected a model with exactly one input and one output")
    return {
        "input": _quantisation_of(subgraph.tensors[subgraph.inputs[0]], type_names),
        "output": _quantisation_of(subgraph.tensors[subgraph.outputs[0]], type_names),
    }


def _quantisation_of(tensor: Any, type_names: dict[int, str]) -> TensorQuantisation:
    quant = tensor.quantization
    scales = [] if quant is None or quant.scale is None else list(np.ravel(quant.scale))
    zeros = [] if quant is None or quant.zeroPoint is None else list(np.ravel(quant.zeroPoint))
    return TensorQuantisation(
        dtype=type_names[int(tensor.type)].lower(),
        shape=tuple(int(d) for d in np.ravel(tensor.shape)),
        scale=float(scales[0]) if scales else 0.0,
        zero_point=int(zeros[0]) if zeros else 0,
    )


def _tensor_types(subgraph: Any, indices: Any, type_names: dict[int, str]) -> tuple[str, ...]:
    if indices is None:
        return ()
    return tuple(type_names[int(subgraph.tensors[i].type)] for i in indices if i >= 0)


def _read_model(model_bytes: bytes) -> tuple[Any, Any]:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        return flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes)), schema
    except Exception as exc:  # flatbuffers raise assorted errors on garbage
        raise ConvertError(f"not a TFLite flatbuffer: {exc}") from exc


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_")}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
