"""A small signed bundle with placeholder model files, for runs that need only its head.

The aggregator reads a bundle's head (version 0) and never runs its backbone unless asked
for a hold-out evaluation, so benches of the network side need no trained model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bundle_format.reader import BACKBONE_FILE, HEAD_FILE, MODEL_FILE
from bundle_format.signing import generate_private_key
from bundle_format.writer import write_bundle
from edge_runtime.head import Head

HEAD_SHAPES = ((136, 32), (32,), (32, 7), (7,))  # the LSTM-FCN head (4,615 parameters)


def write_synthetic_bundle(root: Path, seed: int = 0) -> Path:
    """Write and sign the bundle at `root` with a fresh key; returns `root`."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.0, 0.1, size=shape).astype(np.float32) for shape in HEAD_SHAPES]
    head = Head.from_weights(weights, ["relu", "softmax"])
    files = {MODEL_FILE: b"placeholder", BACKBONE_FILE: b"placeholder",
             HEAD_FILE: head.to_npz_bytes()}  # fmt: skip
    quant = {"dtype": "int8", "shape": [1, 100, 6], "scale": 0.05, "zero_point": 0}
    manifest = {
        "schema_version": 1, "labels": [f"c{i}" for i in range(7)],
        "channels": ["ax", "ay", "az", "gx", "gy", "gz"], "sample_rate_hz": 50.0,
        "window_length": 100, "embedding_size": 136,
        "normalisation": {"mean": [0.0] * 6, "std": [1.0] * 6},
        "models": {"model": {"input": quant, "output": quant}}, "model_version": "synthetic-1",
        "files": {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                  for n, d in files.items()},
    }  # fmt: skip
    return write_bundle(root, files, manifest, generate_private_key())
