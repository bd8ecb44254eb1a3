"""zstd compression of an envelope's body, kept only where it makes the message smaller.

The envelope names it (`"z": "zstd"`); the signature covers the compressed bytes, so a receiver
checks who sent a message before it spends anything on decompressing it. Decompression is
bounded: a body that would grow past the receiver's size limit, holds more than one frame, or is
not zstd at all is refused with one line. `zstandard` is a pinned dependency of the `edge` extra.
"""

from __future__ import annotations

import zstandard

from fleet_protocol.errors import MalformedMessageError, MessageTooLargeError

ZSTD = "zstd"
LEVEL = 19  # bodies are a few kB: the strongest level costs well under a millisecond
_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_frame(data: bytes) -> bytes:
    """`data` as one zstd frame that declares its size and carries a checksum."""
    return bytes(zstandard.ZstdCompressor(level=LEVEL, write_checksum=True).compress(data))


def compress_body(body: bytes) -> bytes | None:
    """The body as one zstd frame, or None when that is not smaller than the body itself."""
    compressed = zstd_frame(body)
    return compressed if len(compressed) < len(body) else None


def decompress_body(data: bytes, max_bytes: int) -> bytes:
    """The body a zstd frame holds, refusing anything above `max_bytes` before it is built."""
    if not data.startswith(_MAGIC):
        raise MalformedMessageError("envelope body flagged zstd is not a zstd frame")
    try:
        params = zstandard.get_frame_parameters(data)
        if params.content_size > max_bytes:  # unknown size reads as 2**64 - 1: refused too
            raise MessageTooLargeError(f"compressed body declares more than {max_bytes} bytes")
        reader = zstandard.ZstdDecompressor().decompressobj()
        body = reader.decompress(data)
    except zstandard.ZstdError as error:
        raise MalformedMessageError(f"envelope body is not valid zstd: {error}") from None
    if not reader.eof or reader.unused_data:
        raise MalformedMessageError("envelope body must be exactly one complete zstd frame")
    if len(body) != params.content_size:
        raise MalformedMessageError("zstd frame size differs from its header")
    return body
