"""Real parts for integration tests: a Mosquitto broker, a tiny real bundle, process helpers.

The tiny bundle is built with TensorFlow here (a small Conv1D model trained for a few epochs on
synthetic 3-class windows, backbone converted to full int8) in the layout of
docs/architecture.md, and signed like `iomt convert` signs bundles.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

WINDOW_LENGTH = 16
NUM_CHANNELS = 3
NUM_CLASSES = 3
EMBEDDING_SIZE = 8
SAMPLE_RATE_HZ = 10.0
LABELS = ["rest", "walk", "run"]
REPO = Path(__file__).resolve().parents[2]


def synthetic_windows(subjects: int, per_subject: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Window dataset arrays: class k raises channel k; each subject adds its own offset."""
    rng = np.random.default_rng(seed)
    X, y, subject = [], [], []
    for s in range(subjects):
        offset = rng.normal(0, 0.3, size=NUM_CHANNELS)
        for i in range(per_subject):
            label = (i + s) % NUM_CLASSES
            window = rng.normal(0, 1.0, size=(WINDOW_LENGTH, NUM_CHANNELS)) + offset
            window[:, label] += 1.5
            X.append(window)
            y.append(label)
            subject.append(s)
    return {
        "X": np.asarray(X, np.float32),
        "y": np.asarray(y, np.int64),
        "subject": np.asarray(subject, np.int64),
        "labels": np.asarray(LABELS),
        "channels": np.asarray(["ax", "ay", "az"]),
        "sample_rate_hz": np.asarray(SAMPLE_RATE_HZ),
    }


@pytest.fixture(scope="session")
def make_windows() -> Callable[..., dict[str, np.ndarray]]:
    """`synthetic_windows` for tests (conftest modules are not importable by name)."""
    return synthetic_windows


def _train_tiny_model(data: dict[str, np.ndarray], whole: bool = False):  # type: ignore[no-untyped-def]
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    tf.random.set_seed(0)
    inputs = tf_keras.Input(shape=(WINDOW_LENGTH, NUM_CHANNELS), batch_size=1)
    hidden = tf_keras.layers.Conv1D(8, 3, activation="relu")(inputs)
    hidden = tf_keras.layers.GlobalAveragePooling1D()(hidden)
    embedding = tf_keras.layers.Dense(EMBEDDING_SIZE, activation="relu", name="embedding")(hidden)
    h = tf_keras.layers.Dense(8, activation="relu", name="head_0")(embedding)
    outputs = tf_keras.layers.Dense(NUM_CLASSES, activation="softmax", name="head_1")(h)
    model = tf_keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data["X"], data["y"], epochs=2, batch_size=1, verbose=0)
    backbone = tf_keras.Model(inputs, embedding)
    samples = data["X"][:32]

    def representative_dataset():  # type: ignore[no-untyped-def]
        for sample in samples:
            yield [sample[None]]

    def int8(keras_model):  # type: ignore[no-untyped-def]
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return bytes(converter.convert())

    head = [w.astype(np.float32) for name in ("head_0", "head_1")
            for w in model.get_layer(name).get_weights()]  # fmt: skip
    return int8(backbone), head, (int8(model) if whole else None)


def _quantisation(interpreter_detail: dict) -> dict:  # type: ignore[type-arg]
    scale, zero_point = interpreter_detail["quantization"]
    return {"dtype": "int8", "shape": [int(d) for d in interpreter_detail["shape"]],
            "scale": float(scale), "zero_point": int(zero_point)}  # fmt: skip


def build_tiny_bundle(out: Path, data: dict[str, np.ndarray], whole: bool = False) -> Path:
    """Write a signed bundle directory (backbone, head, manifest) for the synthetic task; with
    `whole`, also the whole int8 model the Python emulated MCU runs (`model.int8.tflite`)."""
    from bundle_format import signing
    from edge_runtime.head import Head
    from edge_runtime.interpreter import Int8Model

    # normalisation: the windows are already roughly unit-scale, keep it simple and explicit
    mean, std = [0.0] * NUM_CHANNELS, [1.0] * NUM_CHANNELS
    backbone_bytes, head, whole_bytes = _train_tiny_model(data, whole)
    out.mkdir(parents=True)
    (out / "backbone.int8.tflite").write_bytes(backbone_bytes)
    names = ("backbone.int8.tflite", "head.npz")
    if whole_bytes is not None:
        (out / "model.int8.tflite").write_bytes(whole_bytes)
        names += ("model.int8.tflite",)
    Head.from_weights(head, ("relu", "softmax")).to_npz(out / "head.npz")
    model = Int8Model.from_path(out / "backbone.int8.tflite")
    details = model.interpreter.get_input_details()[0], model.interpreter.get_output_details()[0]
    files = {name: {"bytes": (out / name).stat().st_size,
                    "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()}
             for name in names}  # fmt: skip
    manifest = {
        "schema_version": 1, "task": "tiny", "labels": LABELS, "channels": ["ax", "ay", "az"],
        "sample_rate_hz": SAMPLE_RATE_HZ, "window_length": WINDOW_LENGTH,
        "stride": WINDOW_LENGTH // 2, "normalisation": {"mean": mean, "std": std},
        "models": {"backbone": {"input": _quantisation(details[0]),
                                "output": _quantisation(details[1])}},
        "files": files, "model_version": "tiny-1", "embedding_size": EMBEDDING_SIZE,
    }  # fmt: skip
    content = (json.dumps(manifest, indent=2) + "\n").encode()
    key = signing.generate_private_key()
    (out / "manifest.json").write_bytes(content)
    (out / "manifest.sig").write_bytes(signing.sign_bytes(key, content))
    (out / "signer.pub").write_bytes(signing.public_key_bytes(key))
    return out


@dataclass(frozen=True)
class TinyTask:
    """The synthetic dataset file, the hold-out file and the bundle built from them."""

    data_path: Path
    holdout_path: Path
    bundle_path: Path
    data: dict[str, np.ndarray] = field(compare=False)


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> TinyTask:
    root = tmp_path_factory.mktemp("tiny")
    data = synthetic_windows(subjects=3, per_subject=40, seed=1)
    holdout = synthetic_windows(subjects=1, per_subject=30, seed=2)
    np.savez(root / "data.npz", **data)
    np.savez(root / "holdout.npz", **holdout)
    bundle = build_tiny_bundle(root / "bundle", data)
    return TinyTask(root / "data.npz", root / "holdout.npz", bundle, data)


@pytest.fixture(scope="session")
def tiny_whole_task(tmp_path_factory: pytest.TempPathFactory) -> TinyTask:
    """The tiny task with `model.int8.tflite` in its bundle too (the Python emulated MCU)."""
    root = tmp_path_factory.mktemp("tiny-whole")
    data = synthetic_windows(subjects=3, per_subject=40, seed=1)
    np.savez(root / "data.npz", **data)
    bundle = build_tiny_bundle(root / "bundle", data, whole=True)
    return TinyTask(root / "data.npz", root / "data.npz", bundle, data)


@pytest.fixture(scope="session")
def tiny_firmware_image(tiny_task: TinyTask, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The QEMU firmware built for the tiny bundle (runner generated from its backbone);
    skipped, saying what is missing, without the firmware toolchain (`make firmware`)."""
    import shutil

    from firmware_bridge.firmware_build import BuildRequest, build_image, config_from_manifest

    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "make") if not shutil.which(t)]
    if missing:
        pytest.skip(f"firmware toolchain missing ({', '.join(missing)}): run `make firmware`")
    manifest = json.loads((tiny_task.bundle_path / "manifest.json").read_text())
    backbone = tiny_task.bundle_path / "backbone.int8.tflite"
    out = tmp_path_factory.mktemp("tiny-firmware")
    return build_image(BuildRequest(config_from_manifest(manifest), out, backbone=backbone))


@dataclass
class Process:
    """An `iomt` command in its own OS process; its stdout lines arrive on a queue."""

    name: str
    popen: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout_s: float = 60.0) -> str:
        """The first stdout line containing `text` (raises on timeout or exit)."""
        for line in self.seen:
            if text in line:
                return line
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                message = f"{self.name}: no line with {text!r} in {timeout_s} s"
                raise AssertionError(message) from None
            if line == "":
                raise AssertionError(f"{self.name} exited before printing {text!r}")
            self.seen.append(line)
            if text in line:
                return line

    def finish(self, timeout_s: float = 60.0) -> int:
        return self.popen.wait(timeout=timeout_s)

    def output(self) -> list[str]:
        """Every stdout line so far (after `finish`, all of them)."""
        while True:
            try:
                line = self.lines.get(timeout=5.0 if self.popen.poll() is not None else 0.0)
            except queue.Empty:
                return self.seen
            if line == "":
                return self.seen
            self.seen.append(line)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def start_iomt(
    name: str, args: list[str], log_dir: Path, command: list[str] | None = None
) -> Process:
    """Start `python -m iomt.cli ARGS` with stderr to a log file.

    `command` replaces `python -m iomt.cli` (e.g. another venv's `iomt`, which then runs in
    `log_dir` without PYTHONPATH, so it imports only what that venv installed).
    """
    stderr = (log_dir / f"{name}.stderr").open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if command is not None:
        env.pop("PYTHONPATH", None)
    popen = subprocess.Popen(
        [*(command or [sys.executable, "-m", "iomt.cli"]), *args],
        cwd=REPO if command is None else log_dir, stdout=subprocess.PIPE,
        stderr=stderr, text=True, env=env,
    )  # fmt: skip
    process = Process(name, popen)

    def pump() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            process.lines.put(line.rstrip("\n"))
        process.lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return process


class Processes:
    """Starts `iomt` processes for a test and kills any still running at its end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, args: list[str], command: list[str] | None = None) -> Process:
        process = start_iomt(name, args, self.log_dir, command)
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()


@pytest.fixture(scope="session")
def process_group_class() -> type[Processes]:
    """`Processes` for module-scoped fixtures (conftest modules are not importable by name)."""
    return Processes


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    manager = Processes(tmp_path)
    yield manager
    manager.kill_all()
