"""Board profiles: datasheet numbers, lookup errors and the pure fit check."""

from __future__ import annotations

import dataclasses

import pytest

from hardware.board_profiles import KIB, MIB, board_names, check_fit, get_board
from hardware.errors import BoardFitError, UnknownBoardError


def test_known_boards_and_datasheet_numbers() -> None:
    assert board_names() == ["pi4", "pi-zero-2w", "nano33ble", "esp32s3"]
    nano, esp = get_board("nano33ble"), get_board("esp32s3")
    assert (nano.ram_bytes, nano.flash_bytes, nano.clock_hz) == (256 * KIB, MIB, 64_000_000)
    assert (esp.ram_bytes, esp.flash_bytes, esp.clock_hz) == (512 * KIB, 8 * MIB, 240_000_000)
    assert nano.is_mcu and not get_board("pi4").is_mcu


def test_profiles_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_board("pi4").ram_bytes = 1  # type: ignore[misc]


def test_unknown_board_lists_known_names() -> None:
    with pytest.raises(UnknownBoardError, match="known boards: pi4, pi-zero-2w, nano33ble"):
        get_board("uno")


def test_model_that_fits_nano33ble() -> None:
    report = check_fit(get_board("nano33ble"), model_bytes=100_000, arena_bytes=60_000)
    assert report.fits and report.flash_short_by == 0 and report.ram_short_by == 0
    assert "fits nano33ble" in report.describe()
    report.raise_if_not_fit()


def test_miss_says_by_how_many_bytes() -> None:
    # Prepare
    board = get_board("nano33ble")
    model_bytes = board.model_flash_budget + 10
    arena_bytes = board.model_ram_budget + 2048
    # Execute
    report = check_fit(board, model_bytes, arena_bytes)
    # Assert
    assert (report.flash_short_by, report.ram_short_by) == (10, 2048)
    with pytest.raises(BoardFitError, match="flash short by 10 B, RAM short by 2048 B"):
        report.raise_if_not_fit()


def test_linux_board_holds_model_in_ram_too() -> None:
    board = get_board("pi-zero-2w")
    report = check_fit(board, model_bytes=board.model_ram_budget, arena_bytes=1)
    assert report.ram_short_by == 1 and report.flash_short_by == 0
