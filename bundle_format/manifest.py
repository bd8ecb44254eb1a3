"""The bundle manifest: what a device needs to know about the models, and every file's hash.

Pure: values in, a JSON-ready dict out. The layout (schema version 1) is documented in
docs/bundle.md and read back by `bundle_format.reader`; add fields freely, but renaming or
removing one needs a new schema version.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bundle_format.reader import SCHEMA_VERSION, TensorQuantisation


@dataclass(frozen=True)
class ModelDescription:
    """One .tflite of the bundle: its file, input/output quantisation and op list."""

    file: str
    input: TensorQuantisation
    output: TensorQuantisation
    ops: tuple[str, ...]

    def to_manifest(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "input": self.input.to_manifest(),
            "output": self.output.to_manifest(),
            "ops": list(self.ops),
        }


@dataclass(frozen=True)
class ManifestFields:
    """Everything the manifest says apart from the per-file sizes and hashes."""

    task: str
    model_version: str
    created_at: str
    labels: Sequence[str]
    channels: Sequence[str]
    sample_rate_hz: float
    window_length: int
    stride: int
    mean: Sequence[float]
    std: Sequence[float]
    architecture: Mapping[str, Any]
    models: Mapping[str, ModelDescription]
    head: Mapping[str, Any]
    embedding_size: int
    sparsity: Mapping[str, float]
    float32_tflite_bytes: int
    float32_tflite_gzip_bytes: int
    mcu: Mapping[str, Any] | None = None
    source: Mapping[str, Any] = field(default_factory=dict)


def build_manifest(fields: ManifestFields, files: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest dict for `fields` and the bundle's other files (name -> content)."""
    ops = sorted({op for model in fields.models.values() for op in model.ops})
    return {
        "schema_version": SCHEMA_VERSION,
        "task": fields.task,
        "model_version": fields.model_version,
        "created_at": fields.created_at,
        "labels": list(fields.labels),
        "channels": list(fields.channels),
        "sample_rate_hz": float(fields.sample_rate_hz),
        "window_length": int(fields.window_length),
        "stride": int(fields.stride),
        "normalisation": {
            "mean": [float(v) for v in fields.mean],
            "std": [float(v) for v in fields.std],
        },
        "architecture": dict(fields.architecture),
        "models": {name: model.to_manifest() for name, model in fields.models.items()},
        "head": dict(fields.head),
        "embedding_size": int(fields.embedding_size),
        "ops": ops,
        "sparsity": dict(fields.sparsity),
        "sizes": {name: len(content) for name, content in sorted(files.items())},
        "gzip_sizes": {name: gzip_size(content) for name, content in sorted(files.items())},
        "float32_tflite_bytes": int(fields.float32_tflite_bytes),
        "float32_tflite_gzip_bytes": int(fields.float32_tflite_gzip_bytes),
        "mcu": dict(fields.mcu) if fields.mcu else None,
        "source": dict(fields.source),
        "files": file_entries(files),
    }


def file_entries(files: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """`{name: {"bytes": n, "sha256": hex}}` for every file."""
    return {
        name: {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for name, content in sorted(files.items())
    }


def manifest_to_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The exact bytes written to `manifest.json` and signed."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def gzip_size(content: bytes) -> int:
    """Bytes after gzip -9 (mtime fixed so the figure is reproducible)."""
    return len(gzip.compress(content, compresslevel=9, mtime=0))


def model_version(run_name: str, model_bytes: bytes) -> str:
    """`RUN-<first 8 hex of the int8 model's sha256>`: changes exactly when the model does."""
    return f"{run_name}-{hashlib.sha256(model_bytes).hexdigest()[:8]}"
