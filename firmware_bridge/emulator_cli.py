"""Builds an emulated MCU on a pty from `iomt bridge emulate` options."""

from __future__ import annotations

import argparse

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel, load_emulator_model
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.errors import BridgeError
from firmware_bridge.faults import parse_fault_spec
from firmware_bridge.sensor_source import (
    ImuActivitySource,
    PpgStressSource,
    ReplaySource,
    SampleSource,
    load_window_dataset,
)
from firmware_bridge.transport import PtyEndpoint
from hardware.board_profiles import get_board


def _model(args: argparse.Namespace) -> EmulatorModel | None:
    if args.bundle:
        return load_emulator_model(args.bundle)
    if args.model:
        try:
            with open(args.model, "rb") as handle:
                return EmulatorModel(model_bytes=handle.read())
        except OSError as exc:
            raise BridgeError(f"cannot read model {args.model}: {exc}") from None
    return None


def sensors_from_args(args: argparse.Namespace) -> SampleSource:
    """The sensor `--replay` or `--sensors` asks for."""
    if args.replay:
        return ReplaySource(load_window_dataset(args.replay))
    if getattr(args, "sensors", "imu") == "ppg":
        return PpgStressSource(seed=args.seed)
    return ImuActivitySource(seed=args.seed)


def build_emulator(args: argparse.Namespace) -> tuple[EmulatorService, PtyEndpoint]:
    """An emulator service (not started) serving on a fresh pty."""
    board = get_board(args.board)
    faults = parse_fault_spec(args.fault, seed=args.seed)
    mcu = EmulatedMcu(board, _model(args), sensors_from_args(args))
    endpoint = PtyEndpoint(baudrate=args.baud)
    return EmulatorService(mcu, endpoint, faults), endpoint
