"""Generate the firmware's model plan from a .tflite: the C the model runner links with.

    python -m convert.firmware_plan MODEL.tflite --out DIR     # writes DIR/iomt_model_plan.c

The plan holds what the graph must be (checked against an image at bind time, so a retrained
model of the same graph binds and any other graph is refused), one statically planned arena
(RAM known at link time), and the op sequence: a bind and an eval call per op into
`firmware_bridge/firmware/model/iomt_ops.h`. No interpreter runs on the device.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from convert.arena_plan import Buffer, plan_arena
from convert.errors import ConvertError
from convert.firmware_ops import LoweredOp, lower_op
from convert.tflite_graph import Graph, read_graph

PLAN_FILE = "iomt_model_plan.c"
NOT_IN_ARENA = -1


@dataclass(frozen=True)
class FirmwarePlan:
    """The generated source and the figures a build or a report wants."""

    source: str
    arena_bytes: int
    ops: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def generate_plan(model_bytes: bytes) -> FirmwarePlan:
    """C source of the plan for `model_bytes`; raises `ConvertError` naming what cannot run."""
    graph = read_graph(model_bytes)
    for tensor in (graph.tensors[graph.input], graph.tensors[graph.output]):
        if tensor.type_name != "INT8":
            raise ConvertError(f"model input/output tensor {tensor.index} is not int8")
    lowered = [lower_op(graph, op) for op in graph.ops]
    offsets, scratch, arena_bytes = _plan_memory(graph, lowered)
    for op in lowered:
        if op.scratch_bytes:
            op.fields[op.scratch_field] = str(scratch[op.op.index])
    source = _render(graph, lowered, offsets, arena_bytes)
    return FirmwarePlan(
        source=source,
        arena_bytes=arena_bytes,
        ops=tuple(op.name for op in graph.ops),
        input_shape=graph.tensors[graph.input].shape,
        output_shape=graph.tensors[graph.output].shape,
    )


def _plan_memory(
    graph: Graph, lowered: list[LoweredOp]
) -> tuple[dict[int, int], dict[int, int], int]:
    """Arena offsets of activations (by tensor) and scratch blocks (by op), and the size."""
    root = {t.index: t.index for t in graph.tensors}
    for op in lowered:
        if op.alias is not None:
            root[op.alias[0]] = root[op.alias[1]]
    end = len(graph.ops)
    first: dict[int, int] = {root[graph.input]: 0}
    last: dict[int, int] = {root[graph.output]: end}
    for graph_op in graph.ops:
        at = graph_op.index
        for t in (*graph_op.inputs, *graph_op.outputs):
            if t < 0 or graph.tensors[t].data is not None:
                continue
            r = root[t]
            variable = graph.tensors[t].is_variable
            first[r] = 0 if variable else min(first.get(r, at), at)
            last[r] = end if variable else max(last.get(r, at), at)
    buffers = [
        Buffer(f"t{r}", _group_bytes(graph, root, r), first[r], last[r]) for r in sorted(first)
    ]
    buffers += [Buffer(f"s{op.op.index}", op.scratch_bytes, op.op.index, op.op.index)
                for op in lowered if op.scratch_bytes]  # fmt: skip
    plan = plan_arena(buffers)
    offsets = {t: plan.offsets[f"t{root[t]}"] for t in root if f"t{root[t]}" in plan.offsets}
    scratch = {int(name[1:]): off for name, off in plan.offsets.items() if name.startswith("s")}
    return offsets, scratch, max(plan.arena_bytes, 16)


def _group_bytes(graph: Graph, root: dict[int, int], group: int) -> int:
    return max(graph.tensors[t].nbytes for t, r in root.items() if r == group)


def _render(graph: Graph, lowered: list[LoweredOp], offsets: dict[int, int], arena: int) -> str:
    tensors: list[str] = []
    op_rows: list[str] = []
    io_rows: list[str] = []
    option_rows: list[str] = []
    constant_rows: list[str] = []
    values: list[str] = []
    for t in graph.tensors:
        dims = list(t.shape) + [0] * (5 - len(t.shape))
        tensors.append(
            f"  {{{t.type_code}, {len(t.shape)}, {int(t.is_variable)}, {min(len(t.scales), 255)}, "
            f"{{{', '.join(map(str, dims))}}}, {len(t.data) if t.data else 0}u, "
            f"{offsets.get(t.index, NOT_IN_ARENA)}}},"
        )
    for op in lowered:
        o = op.op
        op_rows.append(
            f"  {{{o.builtin}, {o.version}, {len(io_rows)}, {len(o.inputs)}, {len(o.outputs)}, "
            f"{len(o.intermediates)}, {o.options_type}, {len(option_rows)}, {len(op.options)}}},"
            f"  /* {o.name} */"
        )
        io_rows += [str(i) for i in (*o.inputs, *o.outputs, *o.intermediates)]
        option_rows += [f"  {{{c.field_number}, {c.width}, {c.value}, {c.fallback}}},"
                        for c in op.options]  # fmt: skip
        for tensor in op.constants:
            data = [int(v) for v in graph.tensors[tensor].values().ravel()]
            constant_rows.append(f"  {{{tensor}, {len(values)}, {len(data)}}},")
            values += [str(v) for v in data]
    return _TEMPLATE.format(
        tensor_count=len(graph.tensors),
        op_count=len(graph.ops),
        constant_count=len(constant_rows),
        tensors="\n".join(tensors),
        ops="\n".join(op_rows),
        op_tensors=_wrap(io_rows or ["0"]),
        options="\n".join(option_rows or ["  {0, 0, 0, 0},"]),
        constants="\n".join(constant_rows or ["  {0, 0, 0},"]),
        constant_values=_wrap(values or ["0"]),
        input=graph.input,
        output=graph.output,
        arena=arena,
        op_structs="\n".join(_op_struct(op) for op in lowered if op.kind),
        binds="\n".join(
            f"  if ((status = iomt_{op.kind}_bind(&{op.name}, bind)) != 0) return status;"
            for op in lowered
            if op.kind
        ),
        evals="\n".join(f"  iomt_{op.kind}_eval(&{op.name});" for op in lowered if op.kind),
    )


def _op_struct(op: LoweredOp) -> str:
    fields = ", ".join(f".{k} = {v}" for k, v in op.fields.items())
    lines = [*op.storage, f"static iomt_{op.kind}_op {op.name} = {{{fields}}};"]
    return f"/* #{op.op.index} {op.op.name} */\n" + "\n".join(lines)


def _wrap(items: list[str], per_line: int = 16) -> str:
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "\n".join(f"  {row}," for row in rows)


_TEMPLATE = """\
/* Generated by `python -m convert.firmware_plan`: the model plan of one graph. Do not edit. */
#include <stdint.h>

#include "iomt_ops.h"
#include "iomt_plan.h"

static const iomt_plan_tensor k_tensors[{tensor_count}] = {{
{tensors}
}};

static const iomt_plan_op k_ops[{op_count}] = {{
{ops}
}};

static const int16_t k_op_tensors[] = {{
{op_tensors}
}};

static const iomt_plan_option k_options[] = {{
{options}
}};

static const iomt_plan_constant k_constants[] = {{
{constants}
}};

static const int32_t k_constant_values[] = {{
{constant_values}
}};

const iomt_plan iomt_model_plan = {{
    {tensor_count}, {op_count}, {constant_count}, k_tensors, k_ops, k_op_tensors, k_options,
    k_constants, k_constant_values, {input}, {output}, {arena}u}};

uint8_t iomt_model_arena[{arena}] __attribute__((aligned(16)));

{op_structs}

int iomt_model_bind_ops(const iomt_bind *bind) {{
  int status;
{binds}
  return 0;
}}

void iomt_model_eval_ops(uint8_t *arena) {{
  (void)arena;
{evals}
}}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert.firmware_plan", description=__doc__)
    parser.add_argument("model", type=Path, help="an int8 .tflite (model or backbone)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the plan source")
    args = parser.parse_args(argv)
    try:
        plan = generate_plan(args.model.read_bytes())
    except OSError as exc:
        print(f"error: cannot read {args.model}: {exc.strerror}", file=sys.stderr)
        return 2
    except ConvertError as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / PLAN_FILE).write_text(plan.source)
    print(f"{args.out / PLAN_FILE}: {len(plan.ops)} ops, arena {plan.arena_bytes} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
