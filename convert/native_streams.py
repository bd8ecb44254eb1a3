"""Capture what native code (TFLite converter, TFLM) writes straight to file descriptors.

Python-level redirection misses C++ `printf`/`fprintf(stderr)`, so the descriptor itself is
pointed at a temporary file for the duration of the block.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def captured_fd(fd: int) -> Iterator[Callable[[], str]]:
    """Redirect `fd` (1 or 2) into a temp file; the yielded callable gives the text afterwards."""
    text: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(fd)
        try:
            os.dup2(sink.fileno(), fd)
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))
