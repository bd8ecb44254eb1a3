"""The firmware's model runner against LiteRT, on real bundles: host build and Cortex-M4 image.

Bundles are made the way `iomt simulate` makes them (two epochs; the runner is under test, not
the model): the watch LSTM-FCN at `--size mcu` and `--size pi`, and the stress BiLSTM. Every
test window of each runs through the runner; agreement is scored against LiteRT's default
kernels and its reference kernels (the ones the firmware compiles).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from convert.firmware_agreement import (
    agreement,
    head_agreement,
    litert_outputs,
    quantise_windows,
)
from convert.firmware_runner import (
    MODEL_DIR,
    build_host_runner,
    build_qemu_image,
    missing_tools,
    run_host,
    run_qemu,
)

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(missing_tools()), reason=f"firmware build tools missing: {missing_tools()}"
    ),
]
NRF52840_FLASH, NRF52840_RAM = 1024 * 1024, 256 * 1024
MAX_INSTRUCTIONS_MCU = 8_000_000  # issue 17: 10% of the 1.28 s between windows at 64 MHz
QEMU_WINDOWS = 24
REFERENCE_WINDOWS = 150


@pytest.fixture(scope="session")
def firmware_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundles' cache: IOMT_FIRMWARE_TEST_CACHE keeps them across sessions when set."""
    kept = os.environ.get("IOMT_FIRMWARE_TEST_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("firmware-cache")


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("firmware-builds")


@pytest.fixture(scope="session")
def har_mcu(firmware_cache: Path):  # type: ignore[no-untyped-def]
    from firmware_bundles import prepare_case

    return prepare_case(firmware_cache, "har", "mcu")


@pytest.fixture(scope="session")
def har_pi(firmware_cache: Path):  # type: ignore[no-untyped-def]
    from firmware_bundles import prepare_case

    return prepare_case(firmware_cache, "har", "pi")


@pytest.fixture(scope="session")
def stress_pi(firmware_cache: Path):  # type: ignore[no-untyped-def]
    from firmware_bundles import prepare_case

    return prepare_case(firmware_cache, "stress", "pi")


def test_fast_convolution_is_the_reference_convolution(build_root: Path) -> None:
    subprocess.run(
        ["make", "-s", "-C", str(MODEL_DIR), "conv-check", "MODEL=none", f"BUILD={build_root}"],
        check=True,
    )
    result = subprocess.run(
        [str(build_root / "iomt_conv_check"), "3000", "11"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "3000 cases identical"


@pytest.mark.parametrize("case_name", ["har_mcu", "har_pi", "stress_pi"])
@pytest.mark.parametrize("which", ["backbone", "model"])
def test_host_runner_agrees_with_litert_on_every_test_window(
    case_name: str, which: str, build_root: Path, request: pytest.FixtureRequest
) -> None:
    # Prepare
    case = request.getfixturevalue(case_name)
    model = case.bundle / f"{which}.int8.tflite"
    model_bytes = model.read_bytes()
    windows = quantise_windows(model_bytes, case.windows)
    binary = build_host_runner(model, build_root / f"{case_name}-{which}")

    # Execute
    ours = run_host(binary, model, windows)

    # Assert: LiteRT's default kernels on every window, its (slow) reference kernels on a
    # spread of them
    sample = np.linspace(0, len(windows) - 1, min(REFERENCE_WINDOWS, len(windows))).astype(int)
    default_raw = litert_outputs(model_bytes, windows)
    default = agreement(ours, default_raw)
    reference = agreement(ours[sample], litert_outputs(model_bytes, windows[sample], True))
    print(f"{case.name} {which}: vs LiteRT {default}; vs LiteRT reference kernels {reference}")
    assert default.windows == len(case.windows) > 100
    if which == "backbone":  # what the firmware runs: TFLite's reference arithmetic, bit for bit
        assert reference.identical >= 0.99
        # and the decisions of the bundle's float head on it, as the firmware core takes them
        assert head_agreement(case.bundle, ours, default_raw) >= 0.99
    else:
        # The whole model's FULLY_CONNECTED layers round once in LiteRT 2.2x's reference kernel
        # and twice in TFLite 2.14's (fetched): a step apart on some outputs, same decisions.
        assert default.argmax >= 0.99 and reference.argmax >= 0.99


def _retrained(model_bytes: bytes) -> bytes:
    """Same graph, other weights and scales: what uploading a retrained model sends."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]
    for op in graph.operators:
        weights = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
        if weights is None or model.buffers[weights.buffer].data is None:
            continue
        data = model.buffers[weights.buffer].data
        if weights.type == 9 and len(data) > 16:  # int8 weights: negate, rescale
            flipped = np.clip(-data.view(np.int8).astype(np.int16), -127, 127).astype(np.int8)
            model.buffers[weights.buffer].data = flipped.view(np.uint8)
            weights.quantization.scale = np.asarray(weights.quantization.scale) * 1.25
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_a_retrained_model_of_the_same_graph_binds_and_agrees(
    har_mcu, build_root: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Prepare: the runner generated for the bundle's backbone, an upload of other weights
    original = har_mcu.bundle / "backbone.int8.tflite"
    binary = build_host_runner(original, build_root / "har_mcu-backbone")
    retrained = tmp_path / "retrained.tflite"
    retrained.write_bytes(_retrained(original.read_bytes()))
    windows = quantise_windows(retrained.read_bytes(), har_mcu.windows)

    # Execute
    ours = run_host(binary, retrained, windows)

    # Assert
    theirs = litert_outputs(retrained.read_bytes(), windows, reference=True)
    assert not np.array_equal(ours, run_host(binary, original, windows))
    assert agreement(ours, theirs).identical >= 0.99


@pytest.mark.skipif(
    bool(missing_tools(arm=True)), reason=f"ARM toolchain/QEMU missing: {missing_tools(arm=True)}"
)
def test_cortex_m4_image_matches_the_host_build_within_budget(har_mcu, build_root: Path) -> None:  # type: ignore[no-untyped-def]
    # Prepare
    model = har_mcu.bundle / "backbone.int8.tflite"
    windows = quantise_windows(model.read_bytes(), har_mcu.windows)[:QEMU_WINDOWS]
    host = run_host(build_host_runner(model, build_root / "har_mcu-backbone"), model, windows)

    # Execute
    image = build_qemu_image(model, build_root / "har_mcu-backbone")
    run = run_qemu(image, windows, host.shape[1])

    # Assert
    assert np.array_equal(run.outputs, host)
    measured, actual = run.calibration  # the timer counts 40 instructions a tick
    assert abs(measured - actual) <= 2 * 40
    assert run.instructions.max() <= MAX_INSTRUCTIONS_MCU
    assert image.flash_bytes <= NRF52840_FLASH and image.ram_bytes <= NRF52840_RAM
