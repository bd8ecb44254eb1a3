"""The plan generator's pure parts: arena planning and the affine copies of data-movement ops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convert.arena_plan import Buffer, plan_arena
from convert.errors import ConvertError
from convert.firmware_copies import copy_mapping
from convert.tflite_graph import Graph, GraphOp, GraphTensor


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_arena_reuses_bytes_of_buffers_whose_lifetimes_do_not_meet() -> None:
    # Prepare: a -> b -> c, each live for two ops; a and c never meet
    buffers = [Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2), Buffer("c", 100, 2, 3)]

    # Execute
    plan = plan_arena(buffers)

    # Assert
    assert plan.offsets["a"] == plan.offsets["c"]
    assert plan.offsets["b"] != plan.offsets["a"]
    assert plan.arena_bytes == 224  # two 100 B blocks, the second aligned to 16


def test_arena_never_overlaps_live_buffers_on_random_lifetimes() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        buffers = []
        for index in range(12):
            first = int(rng.integers(0, 10))
            size = int(rng.integers(1, 300))
            buffers.append(Buffer(f"b{index}", size, first, first + int(rng.integers(0, 4))))
        plan = plan_arena(buffers)
        for x, y in itertools.combinations(buffers, 2):
            if x.first <= y.last and y.first <= x.last:
                span_x = (plan.offsets[x.name], plan.offsets[x.name] + x.size)
                span_y = (plan.offsets[y.name], plan.offsets[y.name] + y.size)
                assert not _overlaps(span_x, span_y), (x, y)
        assert all(plan.offsets[b.name] + b.size <= plan.arena_bytes for b in buffers)
        assert all(plan.offsets[b.name] % 16 == 0 for b in buffers)


def _graph(shape: tuple[int, ...], out_shape: tuple[int, ...], name: str, consts, options=None):  # type: ignore[no-untyped-def]
    tensors = [GraphTensor(0, "INT8", 9, shape, None, False)]
    for values in consts:
        array = np.asarray(values, dtype=np.int32)
        tensors.append(GraphTensor(len(tensors), "INT32", 2, array.shape, array.tobytes(), False))
    tensors.append(GraphTensor(len(tensors), "INT8", 9, out_shape, None, False))
    inputs = tuple(range(len(tensors) - 1))
    op = GraphOp(0, name, 0, 1, inputs, (len(tensors) - 1,), (), 0, options or {})
    return Graph(tuple(tensors), (op,), 0, len(tensors) - 1), op


def _gather(shape: tuple[int, ...], mapping) -> np.ndarray:  # type: ignore[no-untyped-def]
    source = np.arange(int(np.prod(shape)))
    grid = np.indices(mapping.dims).reshape(len(mapping.dims), -1)
    return source[mapping.base + np.tensordot(np.asarray(mapping.steps), grid, axes=1)]


def test_transpose_copy_matches_numpy() -> None:
    graph, op = _graph((1, 4, 3), (1, 3, 4), "TRANSPOSE", [[0, 2, 1]])
    expected = np.transpose(np.arange(12).reshape(1, 4, 3), (0, 2, 1)).ravel()
    assert np.array_equal(_gather((1, 4, 3), copy_mapping(graph, op)), expected)


def test_reverse_copy_matches_numpy() -> None:
    graph, op = _graph((1, 5, 2), (1, 5, 2), "REVERSE_V2", [[1]])
    expected = np.flip(np.arange(10).reshape(1, 5, 2), axis=1).ravel()
    assert np.array_equal(_gather((1, 5, 2), copy_mapping(graph, op)), expected)


def test_strided_slice_last_step_matches_numpy() -> None:
    # What a Keras LSTM's final state becomes: begin [0, -1, 0], masks 5, shrink axis 1
    options = {"beginMask": 5, "endMask": 5, "shrinkAxisMask": 2}
    graph, op = _graph(
        (1, 6, 8), (1, 8), "STRIDED_SLICE", [[0, -1, 0], [0, 0, 0], [1, 1, 1]], options
    )
    expected = np.arange(48).reshape(1, 6, 8)[:, -1, :].ravel()
    assert np.array_equal(_gather((1, 6, 8), copy_mapping(graph, op)), expected)


def test_strided_slice_with_new_axis_is_refused() -> None:
    graph, op = _graph(
        (1, 6, 8), (1, 1, 6, 8), "STRIDED_SLICE", [[0, 0, 0], [0, 0, 0], [1, 1, 1]],
        {"newAxisMask": 1},
    )  # fmt: skip
    with pytest.raises(ConvertError, match="new-axis"):
        copy_mapping(graph, op)
