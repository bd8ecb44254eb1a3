"""Little-endian payload reading and writing with a clear error on short or extra bytes."""

from __future__ import annotations

import struct

from firmware_bridge.errors import PayloadError


class PayloadWriter:
    """Builds a payload field by field."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def pack(self, fmt: str, *values: object) -> PayloadWriter:
        """Append fixed-size fields (struct format, little-endian)."""
        self._parts.append(struct.pack("<" + fmt, *values))
        return self

    def text(self, value: str) -> PayloadWriter:
        """Append a UTF-8 string prefixed by its length (u8)."""
        data = value.encode("utf-8")[:255]
        self._parts.append(bytes([len(data)]) + data)
        return self

    def raw(self, data: bytes) -> PayloadWriter:
        """Append bytes as they are."""
        self._parts.append(bytes(data))
        return self

    def to_bytes(self) -> bytes:
        """The payload so far."""
        return b"".join(self._parts)


class PayloadReader:
    """Reads fields back in the order they were written; short data is a `PayloadError`."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._offset = 0
        self._what = what

    def unpack(self, fmt: str) -> tuple[object, ...]:
        """Read fixed-size fields (struct format, little-endian)."""
        size = struct.calcsize("<" + fmt)
        values = struct.unpack_from("<" + fmt, self.take(size))
        return values

    def u8(self) -> int:
        """One unsigned byte."""
        return int(self.take(1)[0])

    def text(self) -> str:
        """A u8-length-prefixed UTF-8 string."""
        data = self.take(self.u8())
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError(f"{self._what}: text is not UTF-8") from None

    def take(self, size: int) -> bytes:
        """The next `size` bytes."""
        if size < 0 or self._offset + size > len(self._data):
            raise PayloadError(
                f"{self._what}: payload of {len(self._data)} B is too short "
                f"(needs {self._offset + size} B)"
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def rest_length(self) -> int:
        """How many bytes are not read yet."""
        return len(self._data) - self._offset

    def rest(self) -> bytes:
        """Everything not read yet."""
        chunk = self._data[self._offset :]
        self._offset = len(self._data)
        return chunk

    def done(self) -> None:
        """Raise when bytes are left over (a payload longer than its layout)."""
        if self._offset != len(self._data):
            raise PayloadError(
                f"{self._what}: {len(self._data) - self._offset} unexpected trailing bytes"
            )
