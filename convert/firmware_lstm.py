"""UNIDIRECTIONAL_SEQUENCE_LSTM for the firmware: the integer 8x8->16 variant a Keras LSTM
converts to (input gate present, no peephole, projection or layer norm), else `ConvertError`.

Tensor order is TensorFlow Lite's: 0 input; 1-4 input-to-gate weights (input, forget, cell,
output); 5-8 recurrent weights; 9-11 peephole; 12-15 gate biases; 16-17 projection; 18 output
state; 19 cell state; 20-23 layer-norm coefficients. Intermediate 4 carries the hidden scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convert.errors import ConvertError
from convert.tflite_graph import Graph, GraphOp

if TYPE_CHECKING:
    from convert.firmware_ops import LoweredOp

_WEIGHTS = range(1, 9)
_BIASES = range(12, 16)
_ABSENT = (9, 10, 11, 16, 17, 20, 21, 22, 23)
_OUTPUT_STATE, _CELL_STATE = 18, 19


def lower_lstm(graph: Graph, op: GraphOp) -> LoweredOp:
    """The iomt_lstm_op fields, effective-bias storage and gate scratch of one LSTM op."""
    from convert.firmware_ops import LoweredOp, c_float

    _check_variant(graph, op)
    source = graph.tensors[op.inputs[0]]
    time_major = bool(op.options.get("timeMajor", False))
    n_time, n_batch = (source.shape[0], source.shape[1]) if time_major else source.shape[1::-1]
    n_cell = graph.tensors[op.inputs[4]].shape[0]
    n_output = graph.tensors[op.inputs[8]].shape[1]
    name = f"op{op.index}"
    fields = {
        "input": str(op.inputs[0]),
        "weights": "{" + ", ".join(str(op.inputs[i]) for i in _WEIGHTS) + "}",
        "biases": "{" + ", ".join(str(op.inputs[i]) for i in _BIASES) + "}",
        "output_state": str(op.inputs[_OUTPUT_STATE]), "cell_state": str(op.inputs[_CELL_STATE]),
        "output": str(op.outputs[0]), "hidden": str(op.intermediates[4]),
        "n_batch": str(n_batch), "n_time": str(n_time), "n_input": str(source.shape[-1]),
        "n_cell": str(n_cell), "n_output": str(n_output), "time_major": str(int(time_major)),
        "cell_clip": c_float(op.options.get("cellClip", 0.0)),
        "effective_bias": f"{name}_effective_bias",
    }  # fmt: skip
    storage = [f"static int32_t {name}_effective_bias[{8 * n_cell}];"]
    scratch = 13 * n_batch * n_cell  # 4 int16 gates, one int32 and one int8 row
    return LoweredOp(
        op, "lstm", fields, storage, scratch_bytes=scratch, scratch_field="scratch_offset"
    )


def _check_variant(graph: Graph, op: GraphOp) -> None:
    def fail(reason: str) -> None:
        raise ConvertError(f"op #{op.index} UNIDIRECTIONAL_SEQUENCE_LSTM {reason}")

    if len(op.inputs) not in (20, 24) or len(op.intermediates) != 5:
        fail(f"has {len(op.inputs)} inputs and {len(op.intermediates)} intermediates")
    if graph.tensors[op.inputs[0]].type_name != "INT8":
        fail("is not integer (hybrid or float)")
    if any(op.inputs[i] >= 0 for i in _ABSENT if i < len(op.inputs)):
        fail("uses peephole, projection or layer norm")
    if any(op.inputs[i] < 0 for i in (*_WEIGHTS, *_BIASES)):
        fail("uses CIFG (no input gate)")
    for i in _WEIGHTS:
        if len(graph.tensors[op.inputs[i]].scales) != 1:
            fail("has per-channel weights")
    if len(graph.tensors[op.inputs[0]].shape) != 3:
        fail("input is not [batch, time, features]")
