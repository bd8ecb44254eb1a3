"""The emulated MCU's model flash: stage an upload, commit it only when its SHA-256 matches.

Pure logic. A retransmitted chunk (same offset as one already written) is accepted again
without change, so stop-and-wait retransmissions are harmless.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol.commands import ErrorCode


class FlashError(BridgeError):
    """An upload step the flash refuses; `code` is the ERROR code to send back."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ModelFlash:
    """Committed model bytes plus an optional staged upload."""

    capacity: int
    committed: bytes | None = None
    rejected_commits: int = 0
    _staged: bytearray | None = None
    _expected_size: int = 0
    _expected_sha256: bytes = b""

    @property
    def committed_sha256(self) -> bytes:
        """SHA-256 of the committed model (32 zero bytes when none)."""
        return hashlib.sha256(self.committed).digest() if self.committed else bytes(32)

    def begin(self, size: int, sha256: bytes) -> None:
        """Start a new upload, dropping any unfinished one."""
        if size > self.capacity:
            raise FlashError(
                ErrorCode.TOO_LARGE, f"model of {size} B exceeds flash budget {self.capacity} B"
            )
        self._staged = bytearray()
        self._expected_size, self._expected_sha256 = size, bytes(sha256)

    def write(self, offset: int, data: bytes) -> int:
        """Write a chunk at `offset`; return the next offset expected."""
        staged = self._require_upload()
        if offset > len(staged):
            raise FlashError(ErrorCode.BAD_OFFSET, f"chunk at {offset}, expected {len(staged)}")
        if offset + len(data) > self._expected_size:
            raise FlashError(ErrorCode.TOO_LARGE, "chunk runs past the announced size")
        if offset + len(data) > len(staged):
            staged[offset:] = data
        return len(staged)

    def commit(self) -> bytes:
        """Make the staged model the committed one if complete and its hash matches."""
        staged = self._require_upload()
        self._staged = None
        if len(staged) != self._expected_size:
            self.rejected_commits += 1
            raise FlashError(
                ErrorCode.BAD_OFFSET, f"upload incomplete: {len(staged)}/{self._expected_size} B"
            )
        if hashlib.sha256(staged).digest() != self._expected_sha256:
            self.rejected_commits += 1
            raise FlashError(ErrorCode.HASH_MISMATCH, "SHA-256 mismatch; model not committed")
        self.committed = bytes(staged)
        return self.committed

    def abort(self) -> None:
        """Forget the staged upload (a reset loses RAM)."""
        self._staged = None

    def _require_upload(self) -> bytearray:
        if self._staged is None:
            raise FlashError(ErrorCode.NO_UPLOAD, "no upload in progress (send MODEL_BEGIN)")
        return self._staged
