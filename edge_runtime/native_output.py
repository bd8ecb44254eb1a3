"""Keep known chatter of native libraries off the user's stderr, and nothing else.

LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ straight to
file descriptor 2 every time an interpreter is made: on a device that is one line per start
and per model swap, saying nothing. Python cannot filter what C writes, so the descriptor is
pointed at a temporary file for the call, and afterwards every line that is not known noise
is written back: a real native error still reaches the user.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

NOISE = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$")


def keep_line(line: bytes, noise: re.Pattern[bytes] = NOISE) -> bool:
    """Whether a line a native library wrote is worth showing."""
    return noise.match(line.rstrip(b"\r\n")) is None


@contextlib.contextmanager
def quiet_native_stderr(noise: re.Pattern[bytes] = NOISE) -> Iterator[None]:
    """Run the block with fd 2 captured; replay what is not known noise when it ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured if keep_line(line, noise))
            if kept:
                os.write(2, kept)
