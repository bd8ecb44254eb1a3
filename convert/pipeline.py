"""`runs/NAME` -> the contents of a bundle: models, head, parity, arena, C array, manifest.

Reads the run and its dataset, converts, measures and scores; returns bytes and reports. It
writes nothing: the command signs and writes the result (`bundle_format.writer`), after it
has printed the parity table and checked `ConvertedBundle.problems`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bundle_format import manifest as manifest_module
from bundle_format.reader import (
    BACKBONE_FILE,
    C_HEADER_FILE,
    C_SOURCE_FILE,
    HEAD_FILE,
    MODEL_FILE,
    PARITY_FILE,
)
from convert.c_array_export import export_c_array
from convert.errors import ConvertError
from convert.model_facts import infer_stride
from convert.op_check import check_full_integer, io_quantisation
from convert.parity import (
    DEFAULT_PARITY_WINDOWS,
    ParityReport,
    embedding_error_steps,
    parity_report,
    sample_indices,
    variant_outputs,
)
from convert.quantize import (
    CALIBRATION_CLIP_SD,
    DEFAULT_CALIBRATION_WINDOWS,
    calibration_windows,
    convert_float32,
    convert_int8,
)
from convert.split import backbone_model, embedding_size, head_from_model
from convert.tflm_checks import ArenaMeasurement, measure_arena
from edge_runtime.interpreter import Quantisation

Announce = Callable[[str], None]
STEPS = 7


@dataclass(frozen=True)
class ConvertRequest:
    """What to convert and how strictly to check it."""

    run_path: Path
    board: str | None = None
    data_path: Path | None = None
    task: str | None = None
    min_agreement: float = 0.98
    parity_windows: int = DEFAULT_PARITY_WINDOWS
    calibration_windows: int = DEFAULT_CALIBRATION_WINDOWS
    seed: int = 0
    created_at: str | None = None


@dataclass(frozen=True)
class ConvertedBundle:
    """Bundle files (without manifest and signature), the manifest, and what was measured."""

    files: dict[str, bytes]
    manifest: dict[str, Any]
    parity: ParityReport
    arena: ArenaMeasurement
    fit: Any = None  # hardware.board_profiles.FitReport when a board was named
    float32_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def problems(self, min_agreement: float) -> list[str]:
        """Reasons the bundle must not be written: low agreement, does not fit the board."""
        reasons = self.parity.failures(min_agreement)
        if self.fit is not None and not self.fit.fits:
            reasons.append(self.fit.describe())
        return reasons


@dataclass(frozen=True)
class _Converted:
    model: bytes
    backbone: bytes
    float32: bytes
    model_ops: list[str]
    backbone_ops: list[str]


def convert_run(
    request: ConvertRequest, announce: Announce = lambda _: None, step: Announce = lambda _: None
) -> ConvertedBundle:
    """Convert, split, measure and score one run; see the module docstring."""
    from training.datasets.window_dataset import load_window_dataset
    from training.run_artifacts import load_run

    board = _board(request.board)
    trained = load_run(request.run_path)
    data_path = _data_path(request, trained)
    dataset = load_window_dataset(data_path)
    _check_channels(dataset, trained)
    step("calibration windows (training subjects)")
    train_windows = trained.normalise(dataset.for_subjects(trained.split.train_subjects).X)
    calibration = calibration_windows(train_windows, request.calibration_windows, request.seed)
    announce(
        f"representative data: {len(calibration)} windows of training subjects "
        f"{list(trained.split.train_subjects)}, clipped to +-{CALIBRATION_CLIP_SD:g} sd"
    )
    keras_model = trained.build_model(batch_size=1)
    converted = _convert_models(keras_model, calibration, step)
    head = head_from_model(keras_model)
    parity, arena = _score(request, trained, dataset, converted, head, step)
    fit = _fit(board, len(converted.model), arena)
    files = _bundle_files(converted, head, parity, board)
    fields = _manifest_fields(request, trained, dataset, data_path, converted, keras_model, arena)
    fields_with_board = _with_board(fields, board, arena, fit)
    step("manifest")
    manifest = manifest_module.build_manifest(fields_with_board, files)
    return ConvertedBundle(files, manifest, parity, arena, fit, len(converted.float32))


def _score(
    request: ConvertRequest,
    trained: Any,
    dataset: Any,
    converted: _Converted,
    head: Any,
    step: Announce,
) -> tuple[ParityReport, ArenaMeasurement]:
    """Measure the TFLM arena, then score every variant on (a sample of) the test windows."""
    test = dataset.for_subjects(trained.split.test_subjects)
    if test.num_windows == 0:
        raise ConvertError(f"no windows of test subjects {list(trained.split.test_subjects)}")
    chosen = sample_indices(test.num_windows, request.parity_windows, request.seed)
    windows, labels = trained.normalise(test.X[chosen]), test.y[chosen]
    step("TFLM arena")
    quantisation = io_quantisation(converted.model)
    model_input = Quantisation(
        quantisation["input"].scale, quantisation["input"].zero_point, np.int8
    )
    arena = measure_arena(converted.model, model_input.quantise(windows[0]))
    step(f"parity on {len(chosen)} of {test.num_windows} test windows")
    float_model = trained.build_model(batch_size=None)
    outputs = variant_outputs(
        converted.model, converted.backbone, head, windows, arena.recommended_bytes
    )
    parity = parity_report(
        labels,
        float_model.predict(windows, batch_size=256, verbose=0),
        outputs,
        quantisation["output"].scale,
        test.num_windows,
    )
    float_embeddings = backbone_model(float_model).predict(windows, batch_size=256, verbose=0)
    error = embedding_error_steps(converted.backbone, float_embeddings, windows)
    return replace(parity, embedding_error_steps=error), arena


def _convert_models(keras_model: Any, calibration: np.ndarray, step: Announce) -> _Converted:
    step("int8 model")
    model = convert_int8(keras_model, calibration)
    model_ops = check_full_integer(model, MODEL_FILE)
    step("int8 backbone")
    backbone = convert_int8(backbone_model(keras_model), calibration)
    backbone_ops = check_full_integer(backbone, BACKBONE_FILE)
    step("float32 reference")
    float32 = convert_float32(keras_model)
    return _Converted(model, backbone, float32, model_ops, backbone_ops)


def _bundle_files(
    converted: _Converted, head: Any, parity: ParityReport, board: Any
) -> dict[str, bytes]:
    files = {
        MODEL_FILE: converted.model,
        BACKBONE_FILE: converted.backbone,
        HEAD_FILE: head.to_npz_bytes(),
        PARITY_FILE: (json.dumps(parity.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
    }
    if board is not None and board.is_mcu:
        header, source = export_c_array(converted.model, "g_model")
        files[C_HEADER_FILE], files[C_SOURCE_FILE] = header.encode(), source.encode()
    return files


def _manifest_fields(
    request: ConvertRequest,
    trained: Any,
    dataset: Any,
    data_path: Path,
    converted: _Converted,
    keras_model: Any,
    arena: ArenaMeasurement,
) -> manifest_module.ManifestFields:
    model_io, backbone_io = io_quantisation(converted.model), io_quantisation(converted.backbone)
    head = head_from_model(keras_model)
    return manifest_module.ManifestFields(
        task=request.task or data_path.stem,
        model_version=manifest_module.model_version(trained.path.name, converted.model),
        created_at=request.created_at or _now(),
        labels=trained.labels,
        channels=trained.channels,
        sample_rate_hz=trained.sample_rate_hz,
        window_length=trained.window_length,
        stride=infer_stride(
            dataset.start_s, dataset.recording, dataset.sample_rate_hz, trained.window_length
        ),
        mean=trained.mean.tolist(),
        std=trained.std.tolist(),
        architecture={"arch": trained.config.get("arch"), "size": trained.config.get("size")},
        models={
            "model": manifest_module.ModelDescription(
                MODEL_FILE, model_io["input"], model_io["output"], tuple(converted.model_ops)
            ),
            "backbone": manifest_module.ModelDescription(
                BACKBONE_FILE,
                backbone_io["input"],
                backbone_io["output"],
                tuple(converted.backbone_ops),
            ),
        },
        head={
            "file": HEAD_FILE,
            "activations": list(head.activations),
            "shapes": [list(w.shape) for w in head.weights],
        },
        embedding_size=embedding_size(keras_model),
        sparsity={
            "target": float(trained.config.get("sparsity", 0.0)),
            "measured": _measured_sparsity(keras_model),
        },
        float32_tflite_bytes=len(converted.float32),
        float32_tflite_gzip_bytes=manifest_module.gzip_size(converted.float32),
        mcu=None,
        source={
            "run": trained.path.name,
            "data_sha256": trained.dataset.get("data_sha256"),
            "tflm_arena": arena.to_manifest(),
        },
    )


def _with_board(
    fields: manifest_module.ManifestFields, board: Any, arena: ArenaMeasurement, fit: Any
) -> manifest_module.ManifestFields:
    if board is None:
        return fields
    target = {"board": board.name, "is_mcu": board.is_mcu, "fit": fit.describe()}
    if board.is_mcu:
        return replace(fields, mcu={**target, **arena.to_manifest()})
    return replace(fields, source={**fields.source, "board": target})


def _board(name: str | None) -> Any:
    if name is None:
        return None
    from hardware.board_profiles import get_board

    return get_board(name)


def _fit(board: Any, model_bytes: int, arena: ArenaMeasurement) -> Any:
    if board is None:
        return None
    from hardware.board_profiles import check_fit

    return check_fit(board, model_bytes, arena.recommended_bytes)


def _data_path(request: ConvertRequest, trained: Any) -> Path:
    path = request.data_path or Path(str(trained.dataset.get("data_path", "")))
    if not path.is_file():
        raise ConvertError(f"dataset {path} of run {trained.path} not found; pass --data PATH")
    return path


def _check_channels(dataset: Any, trained: Any) -> None:
    if tuple(dataset.channels) != tuple(trained.channels):
        raise ConvertError(
            f"dataset channels {list(dataset.channels)} differ from the run's "
            f"{list(trained.channels)}"
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _measured_sparsity(keras_model: Any) -> float:
    """The trainer's own measurement (`training.pruning`), so manifest and metrics.json agree."""
    from training.pruning import measure_sparsity

    return measure_sparsity(keras_model)
