"""Runs the bundle's int8 backbone on a set of windows, as a device would; prints one JSON line.

Copied into each emulated userland and run there by the venv's own Python (it imports only
what the `edge` extra installs), and run the same way in the x86 edge-only venv, so both sides
do the same work:

    python probe.py BUNDLE WINDOWS.npz OUT.npz

It prints `first_inference` as soon as the first window's embedding exists (the caller times
start-up from process launch to that line), then embeds every window, applies the bundle's
head, and writes the embeddings and predicted classes to OUT.npz. The last line is JSON:
backend, numpy version, machine, peak RSS (`ru_maxrss`) and the in-process timings.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()


def main(argv: list[str]) -> int:
    bundle_path, windows_path, out_path = argv
    import numpy as np

    from edge_runtime.device_loop import read_bundle_parts
    from edge_runtime.interpreter import BACKEND_NAME

    imported = time.perf_counter()
    parts = read_bundle_parts(Path(bundle_path))  # signature and sha256 checked, head loaded
    model = parts.backbone()
    with np.load(windows_path, allow_pickle=False) as data:
        windows = parts.bundle.normalise(data["X"])
    first = model.run(windows[0]).reshape(-1)
    first_s = time.perf_counter() - STARTED
    print("first_inference", flush=True)
    rest = [model.run(window).reshape(-1) for window in windows[1:]]
    embeddings = np.stack([first, *rest]).astype(np.float32)
    predictions = parts.head.predict_proba(embeddings).argmax(axis=1)
    np.savez(out_path, embeddings=embeddings, predictions=predictions)
    print(json.dumps({
        "backend": BACKEND_NAME,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "windows": len(embeddings),
        "import_s": round(imported - STARTED, 3),
        "first_inference_s": round(first_s, 3),
        "total_s": round(time.perf_counter() - STARTED, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
