"""Do the converted models decide like the float model? Accuracy and top-1 agreement.

Four variants on the same test-subject windows: the float Keras model, the whole int8 model in
LiteRT, the same bytes in tflite-micro, and the int8 backbone followed by the float numpy head.
TFLM runs one window at a time in Python, so a cap (`max_windows`) picks a deterministic
subset of the test windows; every variant is scored on that same subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.tflm_checks import TflmRunner
from edge_runtime.head import Head
from edge_runtime.interpreter import Int8Model

VARIANTS = ("float", "int8_litert", "tflm", "backbone_head")
DEFAULT_PARITY_WINDOWS = 2000


@dataclass(frozen=True)
class VariantScore:
    """Accuracy on the labels and top-1 agreement with the float model."""

    accuracy: float
    agreement: float


@dataclass(frozen=True)
class ParityReport:
    """Scores of every variant plus the two cross-checks between converted variants."""

    scores: dict[str, VariantScore]
    windows: int
    total_windows: int
    backbone_head_vs_int8: float  # agreement of backbone + head with the whole int8 model
    tflm_max_step_difference: int  # largest |TFLM - LiteRT| output, in output quantisation steps
    tflm_within_one_step: float  # share of TFLM output values within one step of LiteRT's
    embedding_error_steps: float | None = None  # mean |int8 - float| embedding, in steps

    def failures(self, min_agreement: float) -> list[str]:
        """One phrase per variant whose agreement with float is below `min_agreement`."""
        return [
            f"{name} agreement {score.agreement:.4f} < {min_agreement}"
            for name, score in self.scores.items()
            if name != "float" and score.agreement < min_agreement
        ]

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            name: {"accuracy": score.accuracy, "agreement": score.agreement}
            for name, score in self.scores.items()
        }
        document["backbone_head"]["agreement_with_int8"] = self.backbone_head_vs_int8
        document["tflm"]["max_step_difference_vs_litert"] = self.tflm_max_step_difference
        document["tflm"]["within_one_step_of_litert"] = self.tflm_within_one_step
        document["backbone_head"]["embedding_error_steps"] = self.embedding_error_steps
        document["windows"] = self.windows
        document["total_windows"] = self.total_windows
        return document


def sample_indices(total: int, max_windows: int, seed: int = 0) -> np.ndarray:
    """Sorted deterministic subset of `range(total)` of at most `max_windows` (0: all)."""
    if max_windows <= 0 or total <= max_windows:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=max_windows, replace=False))


def variant_outputs(
    model_bytes: bytes, backbone_bytes: bytes, head: Head, windows: np.ndarray, arena_bytes: int
) -> dict[str, np.ndarray]:
    """Dequantised class scores [N, K] of the three converted variants for normalised windows."""
    whole = Int8Model.from_bytes(model_bytes, source="model.int8.tflite")
    backbone = Int8Model.from_bytes(backbone_bytes, source="backbone.int8.tflite")
    tflm = TflmRunner(model_bytes, arena_bytes)
    quantised = whole.input_quantisation.quantise(windows)
    tflm_raw = tflm.run_batch(quantised)
    return {
        "int8_litert": whole.run_batch(windows),
        "tflm": whole.output_quantisation.dequantise(tflm_raw),
        "backbone_head": head.forward(backbone.run_batch(windows)),
    }


def parity_report(
    labels: np.ndarray,
    float_scores: np.ndarray,
    outputs: dict[str, np.ndarray],
    step: float,
    total_windows: int | None = None,
) -> ParityReport:
    """Pure scoring of already computed outputs; `step` is the model's output scale."""
    reference = np.argmax(float_scores, axis=1)
    classes = {"float": reference} | {k: np.argmax(v, axis=1) for k, v in outputs.items()}
    scores = {
        name: VariantScore(_mean(classes[name] == labels), _mean(classes[name] == reference))
        for name in VARIANTS
    }
    steps = np.rint(np.abs(outputs["tflm"] - outputs["int8_litert"]) / step) if step > 0 else None
    return ParityReport(
        scores=scores,
        windows=len(labels),
        total_windows=len(labels) if total_windows is None else total_windows,
        backbone_head_vs_int8=_mean(classes["backbone_head"] == classes["int8_litert"]),
        tflm_max_step_difference=int(steps.max()) if steps is not None and steps.size else 0,
        tflm_within_one_step=_mean(steps <= 1) if steps is not None else 1.0,
    )


def embedding_error_steps(
    backbone_bytes: bytes, float_embeddings: np.ndarray, windows: np.ndarray
) -> float:
    """Mean |int8 backbone - float backbone| over the embedding, in output quantisation steps.

    A healthy int8 backbone is within a step or two; whole units off means a broken LSTM
    quantisation (see `convert.quantize.convert_int8`).
    """
    backbone = Int8Model.from_bytes(backbone_bytes, source="backbone.int8.tflite")
    error = np.abs(backbone.run_batch(windows) - float_embeddings).mean()
    return float(error / backbone.output_quantisation.scale)


def predict_bundle_variants(
    bundle_dir: Path | str, normalised_windows: np.ndarray
) -> dict[str, Any]:
    """Top-1 classes of the bundle's int8 (LiteRT), TFLM and backbone + head variants.

    The bundle is verified first (`bundle_format.reader.load_bundle`); the TFLM arena is the
    one recorded in its manifest, or measured here when the manifest has none.
    """
    from bundle_format.reader import BACKBONE_FILE, MODEL_FILE, load_bundle
    from convert.tflm_checks import measure_arena

    bundle = load_bundle(bundle_dir)
    model_bytes = bundle.read_bytes(MODEL_FILE)
    windows = np.asarray(normalised_windows, dtype=np.float32)
    measured = bundle.manifest.get("source", {}).get("tflm_arena", {}).get("arena_bytes")
    arena = bundle.arena_bytes or measured
    if arena is None:
        probe = Int8Model.from_bytes(model_bytes).input_quantisation.quantise(windows[:1])
        arena = measure_arena(model_bytes, probe[0]).recommended_bytes
    outputs = variant_outputs(
        model_bytes,
        bundle.read_bytes(BACKBONE_FILE),
        Head.from_npz(bundle.verified_head_path),
        windows,
        arena,
    )
    return {name: np.argmax(scores, axis=1) for name, scores in outputs.items()}


def format_parity_table(report: ParityReport) -> list[str]:
    """Lines of the printed parity table."""
    lines = [f"{'variant':<16}{'accuracy':>10}{'agreement':>11}"]
    for name, score in report.scores.items():
        lines.append(f"{name:<16}{score.accuracy:>10.4f}{score.agreement:>11.4f}")
    lines.append(
        f"on {report.windows} of {report.total_windows} test windows; backbone+head vs int8 "
        f"{report.backbone_head_vs_int8:.4f}; TFLM vs LiteRT: {report.tflm_within_one_step:.3f} "
        f"of outputs within one step, max {report.tflm_max_step_difference}"
    )
    return lines


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0
