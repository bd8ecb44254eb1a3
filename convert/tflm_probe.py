"""Child process that tries one TFLM arena size: `python -m convert.tflm_probe MODEL WINDOW ARENA`.

tflite-micro's Python interpreter can crash (SIGSEGV) instead of failing cleanly when an
allocation misses by a little, so each arena size is tried in its own process; the parent
reads the exit status. Exit 0: allocated and invoked; 3: TFLM refused; a signal: crashed.
"""

from __future__ import annotations

import sys

ALLOCATED = 0
REFUSED = 3


def probe(model_path: str, window_path: str, arena_bytes: int) -> int:
    """Exit status for one attempt (see the module docstring)."""
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    with open(model_path, "rb") as handle:
        model = handle.read()
    window = np.load(window_path, allow_pickle=False)
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)
        interpreter.reset()
        interpreter.set_input(window, 0)
        interpreter.invoke()
    except (RuntimeError, ValueError):
        return REFUSED
    return ALLOCATED


if __name__ == "__main__":
    sys.exit(probe(sys.argv[1], sys.argv[2], int(sys.argv[3])))
