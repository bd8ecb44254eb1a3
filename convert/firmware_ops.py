"""How each TFLite op becomes a call in the generated firmware plan.

`lower_op` turns one `GraphOp` into a `LoweredOp`: the C struct it fills (`iomt_ops.h`), its
generated storage (per-channel multipliers, effective biases), the scratch it needs in the
arena, the scalar options and int32 constants the firmware checks an image against, and
tensor aliases (RESHAPE moves no data). An op or variant the firmware cannot run raises
`ConvertError` naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convert.errors import ConvertError
from convert.tflite_graph import Graph, GraphOp

# Options checked at bind time: (attribute, field number in schema.fbs, byte width, default).
_OPTION_FIELDS: dict[str, tuple[tuple[str, int, int, float], ...]] = {
    "CONV_2D": (
        ("padding", 0, 1, 0), ("strideW", 1, 4, 0), ("strideH", 2, 4, 0),
        ("fusedActivationFunction", 3, 1, 0), ("dilationWFactor", 4, 4, 1),
        ("dilationHFactor", 5, 4, 1), ("quantizedBiasType", 6, 1, 0),
    ),
    "FULLY_CONNECTED": (
        ("fusedActivationFunction", 0, 1, 0), ("weightsFormat", 1, 1, 0),
        ("keepNumDims", 2, 1, 0), ("asymmetricQuantizeInputs", 3, 1, 0),
        ("quantizedBiasType", 4, 1, 0),
    ),
    "AVERAGE_POOL_2D": (
        ("padding", 0, 1, 0), ("strideW", 1, 4, 0), ("strideH", 2, 4, 0),
        ("filterWidth", 3, 4, 0), ("filterHeight", 4, 4, 0),
        ("fusedActivationFunction", 5, 1, 0),
    ),
    "MEAN": (("keepDims", 0, 1, 0),),
    "CONCATENATION": (("axis", 0, 4, 0), ("fusedActivationFunction", 1, 1, 0)),
    "SOFTMAX": (("beta", 0, 4, 0.0),),
    "STRIDED_SLICE": (
        ("beginMask", 0, 4, 0), ("endMask", 1, 4, 0), ("ellipsisMask", 2, 4, 0),
        ("newAxisMask", 3, 4, 0), ("shrinkAxisMask", 4, 4, 0), ("offset", 5, 1, 0),
    ),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (
        ("fusedActivationFunction", 0, 1, 0), ("cellClip", 1, 4, 0.0), ("projClip", 2, 4, 0.0),
        ("timeMajor", 3, 1, 0), ("asymmetricQuantizeInputs", 4, 1, 0),
        ("diagonalRecurrentTensors", 5, 1, 0),
    ),
}  # fmt: skip
_FLOAT_OPTIONS = {"beta", "cellClip", "projClip"}
_SAME, _VALID = 0, 1


@dataclass(frozen=True)
class OptionCheck:
    """One scalar option of an op's builtin options table, as the C reader sees it."""

    field_number: int
    width: int
    value: int
    fallback: int


@dataclass
class LoweredOp:
    """What the generated C needs for one op; `kind` None means no code (an alias)."""

    op: GraphOp
    kind: str | None
    fields: dict[str, str] = field(default_factory=dict)
    storage: list[str] = field(default_factory=list)  # C declarations the fields point into
    scratch_bytes: int = 0  # one arena block, live during this op; its offset fills `scratch`
    scratch_field: str = ""
    options: list[OptionCheck] = field(default_factory=list)
    constants: list[int] = field(default_factory=list)  # int32 tensors whose values must match
    alias: tuple[int, int] | None = None  # (output, input) sharing one buffer

    @property
    def name(self) -> str:
        return f"op{self.op.index}"


def lower_op(graph: Graph, op: GraphOp) -> LoweredOp:
    """The C call for `op`; raises `ConvertError` when the firmware cannot run it."""
    lowering = _LOWERINGS.get(op.name)
    if lowering is None:
        raise ConvertError(f"op #{op.index} {op.name} is not supported by the firmware runner")
    lowered = lowering(graph, op)
    lowered.options = option_checks(op)
    return lowered


def option_checks(op: GraphOp) -> list[OptionCheck]:
    """The op's options as (field, width, value, default) rows for the bind-time check."""
    checks = []
    for attribute, number, width, default in _OPTION_FIELDS.get(op.name, ()):
        value = op.options.get(attribute, default)
        if attribute in _FLOAT_OPTIONS:
            checks.append(OptionCheck(number, width, _float_bits(value), _float_bits(default)))
        else:
            checks.append(OptionCheck(number, width, int(value), int(default)))
    return checks


def _float_bits(value: float) -> int:
    return int(struct.unpack("<i", struct.pack("<f", float(value)))[0])


def c_float(value: float) -> str:
    """A float32 literal that reads back to the same float32."""
    return f"{np.float32(value)!r}".replace("np.float32(", "").rstrip(")") + "f"


def _padding(padding: int, stride: int, dilation: int, size: int, kernel: int, out: int) -> int:
    if padding == _VALID:
        return 0
    effective = (kernel - 1) * dilation + 1
    return max(0, (out - 1) * stride + effective - size) // 2


def _lower_conv(graph: Graph, op: GraphOp) -> LoweredOp:
    source, weights, bias = op.inputs
    inp, flt, out = (
        graph.tensors[source].shape,
        graph.tensors[weights].shape,
        graph.tensors[op.outputs[0]].shape,
    )
    o = op.options
    channels = flt[0]
    name = f"op{op.index}"
    dil_w, dil_h = o["dilationWFactor"], o["dilationHFactor"]
    fields = {
        "input": str(source), "filter": str(weights), "bias": str(bias),
        "output": str(op.outputs[0]), "activation": str(o["fusedActivationFunction"]),
        "stride_w": str(o["strideW"]), "stride_h": str(o["strideH"]),
        "dilation_w": str(o["dilationWFactor"]), "dilation_h": str(o["dilationHFactor"]),
        "pad_w": str(_padding(o["padding"], o["strideW"], dil_w, inp[2], flt[2], out[2])),
        "pad_h": str(_padding(o["padding"], o["strideH"], dil_h, inp[1], flt[1], out[1])),
        "multiplier": f"{name}_multiplier", "shift": f"{name}_shift",
    }  # fmt: skip
    storage = [
        f"static int32_t {name}_multiplier[{channels}];",
        f"static int32_t {name}_shift[{channels}];",
    ]
    return LoweredOp(op, "conv", fields, storage)


def _lower_fc(graph: Graph, op: GraphOp) -> LoweredOp:
    source, weights = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    units = graph.tensors[weights].shape[0]
    name = f"op{op.index}"
    fields = {
        "input": str(source), "filter": str(weights), "bias": str(bias),
        "output": str(op.outputs[0]), "activation": str(op.options["fusedActivationFunction"]),
        "multiplier": f"{name}_multiplier", "shift": f"{name}_shift",
    }  # fmt: skip
    storage = [f"static int32_t {name}_multiplier[{units}];", f"static int {name}_shift[{units}];"]
    return LoweredOp(op, "fc", fields, storage)


def _lower_avgpool(graph: Graph, op: GraphOp) -> LoweredOp:
    inp, out = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
    o = op.options
    fields = {
        "input": str(op.inputs[0]), "output": str(op.outputs[0]),
        "activation": str(o["fusedActivationFunction"]),
        "stride_w": str(o["strideW"]), "stride_h": str(o["strideH"]),
        "filter_w": str(o["filterWidth"]), "filter_h": str(o["filterHeight"]),
        "pad_w": str(_padding(o["padding"], o["strideW"], 1, inp[2], o["filterWidth"], out[2])),
        "pad_h": str(_padding(o["padding"], o["strideH"], 1, inp[1], o["filterHeight"], out[1])),
    }  # fmt: skip
    return LoweredOp(op, "avgpool", fields)


def _lower_mean(graph: Graph, op: GraphOp) -> LoweredOp:
    axes = [int(a) for a in np.ravel(graph.tensors[op.inputs[1]].values())]
    if not 0 < len(axes) <= 4:
        raise ConvertError(f"op #{op.index} MEAN over {len(axes)} axes is not supported")
    fields = {
        "input": str(op.inputs[0]), "output": str(op.outputs[0]),
        "keep_dims": str(int(op.options.get("keepDims", False))), "axis_count": str(len(axes)),
        "axis": "{" + ", ".join(str(a) for a in axes) + "}",
    }  # fmt: skip
    scratch = 4 * graph.tensors[op.outputs[0]].elements
    return LoweredOp(op, "mean", fields, scratch_bytes=scratch, scratch_field="temp_sum_offset",
                     constants=[op.inputs[1]])  # fmt: skip


def _lower_requantize(graph: Graph, op: GraphOp) -> LoweredOp:
    kinds = {graph.tensors[op.inputs[0]].type_name, graph.tensors[op.outputs[0]].type_name}
    if kinds != {"INT8"}:
        raise ConvertError(f"op #{op.index} QUANTIZE is supported int8 to int8 only")
    return LoweredOp(op, "requantize", {"input": str(op.inputs[0]), "output": str(op.outputs[0])})


def _lower_concat(graph: Graph, op: GraphOp) -> LoweredOp:
    if len(op.inputs) > 4:
        raise ConvertError(f"op #{op.index} CONCATENATION of {len(op.inputs)} inputs")
    rank = len(graph.tensors[op.outputs[0]].shape)
    axis = op.options["axis"] + (rank if op.options["axis"] < 0 else 0)
    fields = {
        "inputs": "{" + ", ".join(str(i) for i in op.inputs) + "}", "output": str(op.outputs[0]),
        "input_count": str(len(op.inputs)), "axis": str(axis),
    }  # fmt: skip
    return LoweredOp(op, "concat", fields)


def _lower_softmax(graph: Graph, op: GraphOp) -> LoweredOp:
    fields = {"input": str(op.inputs[0]), "output": str(op.outputs[0]),
              "beta": c_float(op.options.get("beta", 0.0))}  # fmt: skip
    return LoweredOp(op, "softmax", fields)


def _lower_reshape(graph: Graph, op: GraphOp) -> LoweredOp:
    return LoweredOp(op, None, alias=(op.outputs[0], op.inputs[0]))


def _lower_copy(graph: Graph, op: GraphOp) -> LoweredOp:
    from convert.firmware_copies import copy_mapping

    mapping = copy_mapping(graph, op)
    steps = list(mapping.steps) + [0] * (5 - len(mapping.steps))
    dims = list(mapping.dims) + [1] * (5 - len(mapping.dims))
    fields = {
        "input": str(op.inputs[0]), "output": str(op.outputs[0]), "rank": str(len(mapping.dims)),
        "dims": "{" + ", ".join(map(str, dims)) + "}", "base": str(mapping.base),
        "step": "{" + ", ".join(map(str, steps)) + "}",
    }  # fmt: skip
    return LoweredOp(op, "copy", fields, constants=list(op.inputs[1:]))


def _lower_lstm(graph: Graph, op: GraphOp) -> LoweredOp:
    from convert.firmware_lstm import lower_lstm

    return lower_lstm(graph, op)


_LOWERINGS: dict[str, Any] = {
    "CONV_2D": _lower_conv,
    "FULLY_CONNECTED": _lower_fc,
    "AVERAGE_POOL_2D": _lower_avgpool,
    "MEAN": _lower_mean,
    "QUANTIZE": _lower_requantize,
    "CONCATENATION": _lower_concat,
    "SOFTMAX": _lower_softmax,
    "RESHAPE": _lower_reshape,
    "TRANSPOSE": _lower_copy,
    "STRIDED_SLICE": _lower_copy,
    "REVERSE_V2": _lower_copy,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lower_lstm,
}
