"""What each target board offers (RAM, flash, clock) and whether a model fits it.

Numbers are the datasheet figures of the chip (or the typical module for the ESP32-S3). The
firmware reserve is what the firmware itself (RTOS, BLE stack, TFLM runtime, buffers) takes
before the model and its tensor arena get anything; on a Linux board it stands for the OS.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.errors import BoardFitError, UnknownBoardError

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class BoardProfile:
    """A target board: memory, clock, CPU and what the firmware keeps for itself."""

    name: str
    ram_bytes: int
    flash_bytes: int
    clock_hz: int
    cpu: str
    firmware_reserve_ram: int
    firmware_reserve_flash: int
    is_mcu: bool

    @property
    def model_ram_budget(self) -> int:
        """RAM left for the tensor arena once the firmware has its share."""
        return self.ram_bytes - self.firmware_reserve_ram

    @property
    def model_flash_budget(self) -> int:
        """Flash (or storage) left for the model once the firmware has its share."""
        return self.flash_bytes - self.firmware_reserve_flash


BOARDS: dict[str, BoardProfile] = {
    "pi4": BoardProfile(
        name="pi4",
        ram_bytes=4 * 1024 * MIB,
        flash_bytes=32 * 1024 * MIB,
        clock_hz=1_800_000_000,
        cpu="4x Cortex-A72 (BCM2711)",
        firmware_reserve_ram=1024 * MIB,
        firmware_reserve_flash=8 * 1024 * MIB,
        is_mcu=False,
    ),
    "pi-zero-2w": BoardProfile(
        name="pi-zero-2w",
        ram_bytes=512 * MIB,
        flash_bytes=16 * 1024 * MIB,
        clock_hz=1_000_000_000,
        cpu="4x Cortex-A53 (RP3A0)",
        firmware_reserve_ram=256 * MIB,
        firmware_reserve_flash=6 * 1024 * MIB,
        is_mcu=False,
    ),
    "nano33ble": BoardProfile(
        name="nano33ble",
        ram_bytes=256 * KIB,
        flash_bytes=1 * MIB,
        clock_hz=64_000_000,
        cpu="Cortex-M4F (nRF52840)",
        firmware_reserve_ram=64 * KIB,
        firmware_reserve_flash=256 * KIB,
        is_mcu=True,
    ),
    "esp32s3": BoardProfile(
        name="esp32s3",
        ram_bytes=512 * KIB,
        flash_bytes=8 * MIB,
        clock_hz=240_000_000,
        cpu="2x Xtensa LX7 (ESP32-S3)",
        firmware_reserve_ram=128 * KIB,
        firmware_reserve_flash=1 * MIB,
        is_mcu=True,
    ),
}

UNKNOWN_BOARD = "unknown board {name!r}; known boards: {known}"


def board_names() -> list[str]:
    """Names accepted by `get_board`, in a stable order."""
    return list(BOARDS)


def get_board(name: str) -> BoardProfile:
    """The profile called `name`; an unknown name is an error listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoardError(
            UNKNOWN_BOARD.format(name=name, known=", ".join(board_names()))
        ) from None


@dataclass(frozen=True)
class FitReport:
    """Whether a model and its arena fit a board, and by how many bytes each budget misses."""

    board: str
    model_bytes: int
    arena_bytes: int
    flash_needed: int
    flash_budget: int
    ram_needed: int
    ram_budget: int

    @property
    def flash_short_by(self) -> int:
        """Bytes of flash missing (0 when it fits)."""
        return max(0, self.flash_needed - self.flash_budget)

    @property
    def ram_short_by(self) -> int:
        """Bytes of RAM missing (0 when it fits)."""
        return max(0, self.ram_needed - self.ram_budget)

    @property
    def fits(self) -> bool:
        """True when both flash and RAM suffice."""
        return self.flash_short_by == 0 and self.ram_short_by == 0

    def describe(self) -> str:
        """One line for a user: fits, or by how much each budget is missed."""
        if self.fits:
            return (
                f"fits {self.board}: flash {self.flash_needed}/{self.flash_budget} B, "
                f"RAM {self.ram_needed}/{self.ram_budget} B"
            )
        misses = []
        if self.flash_short_by:
            misses.append(f"flash short by {self.flash_short_by} B")
        if self.ram_short_by:
            misses.append(f"RAM short by {self.ram_short_by} B")
        return (
            f"does not fit {self.board}: {', '.join(misses)} "
            f"(model {self.model_bytes} B, arena {self.arena_bytes} B, "
            f"firmware reserve included)"
        )

    def raise_if_not_fit(self) -> None:
        """Raise `BoardFitError` with `describe()` when it does not fit."""
        if not self.fits:
            raise BoardFitError(self.describe())


def check_fit(board: BoardProfile, model_bytes: int, arena_bytes: int) -> FitReport:
    """Compare model (in flash, and in RAM too on Linux boards) plus arena with the budgets.

    On a microcontroller the model stays in flash and only the arena takes RAM; on a Linux
    board the model file is loaded into RAM next to the interpreter's tensors.
    """
    if model_bytes < 0 or arena_bytes < 0:
        raise ValueError("model_bytes and arena_bytes must be >= 0")
    ram_needed = arena_bytes if board.is_mcu else arena_bytes + model_bytes
    return FitReport(
        board=board.name,
        model_bytes=model_bytes,
        arena_bytes=arena_bytes,
        flash_needed=model_bytes,
        flash_budget=board.model_flash_budget,
        ram_needed=ram_needed,
        ram_budget=board.model_ram_budget,
    )
