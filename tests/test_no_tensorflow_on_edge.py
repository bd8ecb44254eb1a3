"""Edge packages must work on a device that has no TensorFlow.

A subprocess installs an import hook that refuses TensorFlow, Keras, tfmot and `training`,
then imports every module of the edge packages, runs `iomt --help`, and (with a tiny int8
model built beforehand by TensorFlow in another process) runs int8 inference and a head
fine-tuning round.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EDGE_PACKAGES = ("edge_runtime", "fleet_protocol", "bundle_format", "firmware_bridge", "hardware")
TENSORFLOW = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras", "training")
# What only the aggregator host or the workstation installs: an edge device has none of it.
BLOCKED = (*TENSORFLOW, "aggregator", "convert", "dp_accounting", "scipy")

_BLOCKER_TEMPLATE = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    BLOCKED = %r

    class RefuseTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not available on an edge device")
            return None

    sys.meta_path.insert(0, RefuseTensorFlow())

    def import_everything(packages):
        imported = []
        for package_name in packages:
            package = importlib.import_module(package_name)
            imported.append(package_name)
            for info in pkgutil.walk_packages(package.__path__, package_name + "."):
                importlib.import_module(info.name)
                imported.append(info.name)
        return imported

    def assert_no_tensorflow_loaded():
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, f"blocked modules were loaded: {loaded}"
    """
)
_BLOCKER = _BLOCKER_TEMPLATE % (BLOCKED,)

_IMPORT_ALL_AND_HELP = _BLOCKER + textwrap.dedent(
    f"""
    imported = import_everything({EDGE_PACKAGES!r})
    import iomt.cli
    try:
        code = iomt.cli.main(["--help"])
    except SystemExit as exit_:
        code = exit_.code
    assert code in (0, None), f"iomt --help exited with {{code}}"
    assert_no_tensorflow_loaded()
    print("imported", len(imported), "modules")
    """
)

_INFER_AND_FINE_TUNE = _BLOCKER + textwrap.dedent(
    """
    import numpy as np
    from edge_runtime.fine_tune import FineTuneConfig, fine_tune
    from edge_runtime.head import Head
    from edge_runtime.interpreter import BACKEND_NAME, Int8Model
    from edge_runtime.model_install import current_head, install_head
    from edge_runtime.sample_store import SampleStore
    from edge_runtime.streaming import WindowAssembler, WindowSpec

    model_path, work = sys.argv[1], sys.argv[2]
    assert BACKEND_NAME != "tensorflow.lite", BACKEND_NAME
    model = Int8Model.from_path(model_path)
    spec = WindowSpec(16, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 50.0)
    assembler = WindowAssembler(spec)
    rng = np.random.default_rng(0)
    windows = assembler.push(rng.normal(size=(16 + 8 * 29, 3)), timestamp=0.0)
    store = SampleStore(f"{work}/device.sqlite")
    for window in windows:
        store.add_window(window.start_ts, window.end_ts, window.values, model.run(window.values))
    store.label_range(0.0, 2.5, label=0)
    store.label_range(2.5, 10.0, label=1)
    X, y = store.labelled_embeddings()
    start = [rng.normal(scale=0.3, size=(8, 4)), np.zeros(4), rng.normal(scale=0.3, size=(4, 2)),
             np.zeros(2)]
    result = fine_tune(start, ["relu", "softmax"], X, y, FineTuneConfig(epochs=3, batch_size=8))
    install_head(f"{work}/heads", 1, result.weights)
    installed = current_head(f"{work}/heads")
    probabilities = installed.head.predict_proba(X)
    assert probabilities.shape == (len(X), 2) and np.all(np.isfinite(probabilities))
    assert_no_tensorflow_loaded()
    print("windows", len(windows), "examples", result.num_examples, "backend", BACKEND_NAME)
    """
)


def _run_blocked(script: str, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_blocker_really_blocks_tensorflow() -> None:
    script = _BLOCKER + "\ntry:\n    import tensorflow\nexcept ImportError:\n    print('blocked')\n"
    assert "blocked" in _run_blocked(script)


def test_edge_packages_and_cli_help_import_without_tensorflow() -> None:
    assert "imported" in _run_blocked(_IMPORT_ALL_AND_HELP)


def test_aggregator_host_imports_without_tensorflow() -> None:
    script = _BLOCKER_TEMPLATE % (TENSORFLOW,) + "\nprint(len(import_everything(['aggregator'])))"
    assert int(_run_blocked(script)) > 20


_BUILD_MODEL = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("edge_conftest", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    open(sys.argv[2], "wb").write(module.build_int8_lstm())
    """
)


@pytest.fixture(scope="session")
def tiny_int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by TensorFlow in its own process, so this test process stays clean."""
    path = tmp_path_factory.mktemp("no_tf") / "tiny.int8.tflite"
    builder = REPO / "tests" / "edge_runtime" / "conftest.py"
    subprocess.run(
        [sys.executable, "-c", _BUILD_MODEL, str(builder), str(path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path


@pytest.mark.tf
def test_int8_inference_and_fine_tune_round_without_tensorflow(
    tiny_int8_model: Path, tmp_path: Path
) -> None:
    output = _run_blocked(_INFER_AND_FINE_TUNE, str(tiny_int8_model), str(tmp_path))
    assert "windows 30 examples 30" in output
