"""How closely the firmware runner's outputs match LiteRT's on the same int8 windows.

`litert_outputs` runs a model in LiteRT one window at a time, recurrent state reset before
each (as the firmware does), with LiteRT's default (optimised) kernels or its reference
kernels. `agreement` scores raw int8 outputs against it: top-1 agreement, the share of windows
whose every output is bit-identical, and the share within one quantisation step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """Runner outputs against LiteRT's on the same windows."""

    windows: int
    argmax: float  # share of windows with the same top-1 output
    identical: float  # share of windows whose outputs are all bit-identical
    within_one_step: float  # share of windows whose outputs all differ by at most 1
    max_step: int  # largest |difference| of any output, in quantisation steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(ours: np.ndarray, theirs: np.ndarray) -> Agreement:
    """Score raw int8 outputs [N, K] against reference outputs [N, K]."""
    ours = np.asarray(ours, dtype=np.int32).reshape(len(ours), -1)
    theirs = np.asarray(theirs, dtype=np.int32).reshape(len(theirs), -1)
    if ours.shape != theirs.shape:
        raise ValueError(f"output shapes differ: {ours.shape} vs {theirs.shape}")
    steps = np.abs(ours - theirs)
    if len(ours) == 0:
        return Agreement(0, 0.0, 0.0, 0.0, 0)
    return Agreement(
        windows=len(ours),
        argmax=float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1))),
        identical=float(np.mean((steps == 0).all(axis=1))),
        within_one_step=float(np.mean((steps <= 1).all(axis=1))),
        max_step=int(steps.max()),
    )


def head_agreement(bundle_dir: Any, ours: np.ndarray, theirs: np.ndarray) -> float:
    """Share of windows where the bundle's float head decides alike on two raw int8 embeddings.

    What the firmware core does with the backbone's output: dequantise, then the float head.
    """
    from bundle_format.reader import load_bundle
    from edge_runtime.head import Head

    bundle = load_bundle(bundle_dir)
    output = bundle.quantisation("backbone", "output")
    head = Head.from_npz(bundle.verified_head_path)

    def decide(raw: np.ndarray) -> np.ndarray:
        embeddings = output.scale * (np.asarray(raw, dtype=np.float32) - output.zero_point)
        return np.argmax(head.forward(embeddings), axis=1)

    return float(np.mean(decide(ours) == decide(theirs))) if len(ours) else 0.0


def quantise_windows(model_bytes: bytes, normalised_windows: np.ndarray) -> np.ndarray:
    """Normalised float windows [N, T, C] -> the model's int8 input."""
    interpreter = _interpreter(model_bytes, reference=True)  # no delegate needed to read it
    scale, zero_point = interpreter.get_input_details()[0]["quantization"]
    quantised = np.round(np.asarray(normalised_windows, dtype=np.float32) / scale) + zero_point
    return np.clip(quantised, -128, 127).astype(np.int8)


def litert_outputs(model_bytes: bytes, windows: np.ndarray, reference: bool = False) -> np.ndarray:
    """Raw int8 outputs [N, K] of LiteRT for raw int8 windows [N, ...]."""
    interpreter = _interpreter(model_bytes, reference)
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    outputs = []
    for window in np.asarray(windows, dtype=np.int8):
        interpreter.reset_all_variables()  # recurrent state must not leak between windows
        interpreter.set_tensor(source["index"], window.reshape(source["shape"]))
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_tensor(target["index"])).reshape(-1))
    return np.stack(outputs) if outputs else np.zeros((0, 0), dtype=np.int8)


def _interpreter(model_bytes: bytes, reference: bool) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(
        model_content=bytes(model_bytes), experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    return interpreter
