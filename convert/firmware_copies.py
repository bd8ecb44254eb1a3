"""TRANSPOSE, STRIDED_SLICE and REVERSE_V2 as one affine copy: out[i] = in[base + sum i_d*step_d].

The op is applied to an array of element indices with numpy; the result must be affine in
the output index (it always is for these ops with unit-free constant arguments), and its base
and steps are what the firmware's `iomt_copy_eval` walks. Pure data movement: the firmware
output is the same bytes by construction, and `copy_mapping` checks the affinity it relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convert.errors import ConvertError
from convert.tflite_graph import Graph, GraphOp


@dataclass(frozen=True)
class CopyMapping:
    """Output shape, and the input element index as base + sum(index_d * steps_d)."""

    dims: tuple[int, ...]
    base: int
    steps: tuple[int, ...]


def copy_mapping(graph: Graph, op: GraphOp) -> CopyMapping:
    """The affine copy equivalent to `op`; raises `ConvertError` for unsupported arguments."""
    source = graph.tensors[op.inputs[0]]
    indices = np.arange(source.elements).reshape(source.shape)
    moved = _apply(graph, op, indices)
    expected = graph.tensors[op.outputs[0]].shape
    if moved.size != int(np.prod(expected)):
        raise ConvertError(f"op #{op.index} {op.name}: output size {moved.size} != {expected}")
    return affine_mapping(moved.reshape(expected) if expected else moved.reshape(()), op)


def affine_mapping(moved: np.ndarray, op: GraphOp) -> CopyMapping:
    """Base and steps of an index array; raises when the array is not affine."""
    dims = tuple(int(d) for d in moved.shape) or (1,)
    flat = moved.reshape(dims)
    base = int(flat.flat[0])
    steps = []
    for axis, size in enumerate(dims):
        unit = [0] * len(dims)
        unit[axis] = 1 if size > 1 else 0
        steps.append(int(flat[tuple(unit)]) - base if size > 1 else 0)
    grid = np.indices(dims).reshape(len(dims), -1)
    rebuilt = base + np.tensordot(np.asarray(steps), grid, axes=1)
    if not np.array_equal(rebuilt, flat.reshape(-1)):
        raise ConvertError(f"op #{op.index} {op.name} is not an affine copy")
    return CopyMapping(dims, base, tuple(steps))


def _apply(graph: Graph, op: GraphOp, indices: np.ndarray) -> np.ndarray:
    constants = [np.ravel(graph.tensors[i].values()).astype(int) for i in op.inputs[1:]]
    if op.name == "TRANSPOSE":
        return np.transpose(indices, constants[0])
    if op.name == "REVERSE_V2":
        return np.flip(indices, axis=tuple(int(a) for a in constants[0]))
    if op.name == "STRIDED_SLICE":
        return _strided_slice(indices, op, *constants)
    raise ConvertError(f"op #{op.index} {op.name} is not a copy")


def _strided_slice(
    indices: np.ndarray, op: GraphOp, begin: np.ndarray, end: np.ndarray, strides: np.ndarray
) -> np.ndarray:
    o = op.options
    if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0) or o.get("offset", False):
        raise ConvertError(f"op #{op.index} STRIDED_SLICE with ellipsis/new-axis/offset")
    if np.any(strides <= 0):
        raise ConvertError(f"op #{op.index} STRIDED_SLICE with a non-positive stride")
    selection: list[slice | int] = []
    for axis, size in enumerate(indices.shape):
        bit = 1 << axis
        start = 0 if o.get("beginMask", 0) & bit else int(begin[axis])
        start = start + size if start < 0 else start
        if o.get("shrinkAxisMask", 0) & bit:
            selection.append(start)
            continue
        stop = size if o.get("endMask", 0) & bit else int(end[axis])
        stop = stop + size if stop < 0 else stop
        selection.append(
            slice(max(0, min(start, size)), max(0, min(stop, size)), int(strides[axis]))
        )
    return indices[tuple(selection)]
