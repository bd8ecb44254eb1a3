"""`iomt bridge`: talk to a microcontroller over serial, or emulate one on a pty."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.trust import add_trust_arguments, trusted_keys

HELP = "talk to a microcontroller over serial (info, stream, infer, upload) or emulate one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-actions, each with the shared port options."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = _with_port(actions.add_parser("info", help="show board, firmware and model"))
    info.set_defaults(_action=_run_info)
    stream = _with_port(actions.add_parser("stream", help="print streamed sensor frames"))
    stream.add_argument("--seconds", type=float, default=5.0, help="how long to stream")
    stream.add_argument("--samples-per-frame", type=int, default=0, help="0: the board's choice")
    stream.set_defaults(_action=_run_stream)
    infer = _with_port(actions.add_parser("infer", help="run the device's model on windows"))
    infer.add_argument("--data", required=True, help="window dataset .npz")
    infer.add_argument("--count", type=int, default=10, help="windows to send")
    infer.set_defaults(_action=_run_infer)
    upload = _with_port(actions.add_parser("upload", help="write a model into the device"))
    upload.add_argument("model", help="a .tflite file or a bundle directory")
    upload.add_argument("--chunk-size", type=int, default=1024, help="bytes per frame")
    add_trust_arguments(upload)
    upload.set_defaults(_action=_run_upload)
    emulate = actions.add_parser("emulate", help="emulate a microcontroller on a pty")
    _add_emulate_arguments(emulate)
    add_trust_arguments(emulate)
    emulate.set_defaults(_action=_run_emulate)


def _with_port(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--port", required=True, help="serial port or any pyserial URL")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--timeout", type=float, default=0.5, help="reply timeout per attempt")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _add_emulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default="nano33ble", help="board profile to emulate")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--bundle", help="bundle directory (uses model.int8.tflite, mean/std)")
    model.add_argument("--model", help="a .tflite model")
    parser.add_argument("--replay", help="window dataset .npz to stream (else --sensors)")
    parser.add_argument(
        "--sensors", choices=("imu", "ppg"), default="imu", help="emulated sensor without --replay"
    )
    parser.add_argument("--fault", default="", help="e.g. bitflip=0.01,drop=0.01,reset=0.001")
    parser.add_argument("--seed", type=int, default=0, help="seed of the injected faults")
    parser.add_argument("--baud", type=int, default=0, help="pace the pty like a UART at BAUD")
    parser.add_argument("--json", action="store_true", help="print the port as JSON")
    parser.add_argument(
        "--qemu",
        action="store_true",
        help="run the C firmware under qemu-system-arm (mps2-an386) instead of the Python MCU",
    )
    parser.add_argument("--image", help="--qemu: firmware ELF (default build/firmware/BUNDLE/)")
    parser.add_argument("--flash", help="--qemu: model partition file kept across runs")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    """Dispatch to the chosen action."""
    return args._action(env, args)


def _connect(args: argparse.Namespace) -> Any:
    from firmware_bridge.host_driver import HostDriver
    from firmware_bridge.protocol.reliability import RetryPolicy

    return HostDriver.open(args.port, args.baud, RetryPolicy(timeout_s=args.timeout))


def _info_dict(info: Any) -> dict[str, Any]:
    return {
        "board": info.board,
        "firmware_version": info.firmware_version,
        "model_sha256": info.model_sha256.hex() if info.has_model else None,
        "model_bytes": info.model_bytes,
        "arena_bytes": info.arena_bytes,
        "window_length": info.window_length,
        "num_channels": info.num_channels,
        "num_classes": info.num_classes,
        "sample_rate_hz": info.sample_rate_hz,
    }


def _run_info(env: Environment, args: argparse.Namespace) -> ExitStatus:
    with _connect(args) as driver:
        details = _info_dict(driver.info())
    if args.json:
        env.print(json.dumps(details))
    else:
        for key, value in details.items():
            env.print(f"{key:>17}: {value}")
    return ExitStatus.SUCCESS


def _run_stream(env: Environment, args: argparse.Namespace) -> ExitStatus:
    import queue

    from firmware_bridge.errors import ConnectionLostError

    frames: queue.Queue[Any] = queue.Queue()
    with _connect(args) as driver:
        deadline = time.monotonic() + args.seconds
        with driver.stream(frames.put, args.samples_per_frame):
            while (left := deadline - time.monotonic()) > 0:
                if driver.lost is not None:
                    raise ConnectionLostError(f"serial link lost: {driver.lost}")
                try:
                    frame = frames.get(timeout=min(left, 0.2))
                except queue.Empty:
                    continue
                _print_sensor_frame(env, args, frame)
                _print_labels(env, args, driver)
    return ExitStatus.SUCCESS


def _print_sensor_frame(env: Environment, args: argparse.Namespace, frame: Any) -> None:
    if args.json:
        row = {"timestamp_us": frame.timestamp_us, "samples": frame.samples.tolist()}
        env.print(json.dumps(row))
    else:
        env.print(
            f"{frame.timestamp_us:>12} us  {frame.samples.shape[0]} samples  {frame.samples[0]}"
        )


def _print_labels(env: Environment, args: argparse.Namespace, driver: Any) -> None:
    while not driver.label_events.empty():
        event = driver.label_events.get_nowait()
        if args.json:
            env.print(json.dumps({"label": event.label, "timestamp_us": event.timestamp_us}))
        else:
            env.print(f"{event.timestamp_us:>12} us  button: label {event.label}")


def _run_infer(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from firmware_bridge.errors import BridgeError
    from firmware_bridge.sensor_source import load_window_dataset

    try:  # before the port is opened
        dataset = load_window_dataset(args.data)
    except BridgeError as exc:
        raise UsageError(f"--data: {exc}") from exc
    count = min(args.count, len(dataset.X))
    correct = 0
    with _connect(args) as driver:
        for index in range(count):
            result = driver.infer(dataset.X[index])
            correct += int(result.predicted_class == dataset.y[index])
            row = {
                "window": index,
                "predicted": result.predicted_class,
                "label": int(dataset.y[index]),
                "latency_us": result.latency_us,
            }
            env.print(
                json.dumps(row)
                if args.json
                else f"window {index}: class {row['predicted']} (label {row['label']}), "
                f"{row['latency_us']} us"
            )
    summary = {"windows": count, "accuracy": correct / count if count else 0.0}
    env.print(
        json.dumps(summary)
        if args.json
        else f"accuracy on {count} windows: {summary['accuracy']:.3f}"
    )
    return ExitStatus.SUCCESS


C_FIRMWARE_PREFIX = "iomt-fw"  # INFO.firmware_version of the C firmware (firmware/core)


def _verified_bundle(path: Any, trusted: tuple[bytes, ...] | None) -> Any:
    """The bundle at `path`, verified (signature, hashes, trusted signer) before any use."""
    from bundle_format.errors import BundleError
    from bundle_format.reader import load_bundle

    try:
        return load_bundle(path, trusted)
    except BundleError as exc:
        raise UsageError(f"refusing bundle: {exc}") from exc


def _check_upload(path_text: str, trusted: tuple[bytes, ...] | None) -> None:
    """Before touching the device: a bundle must verify; a bare model only if no signer is set."""
    from pathlib import Path

    path = Path(path_text)
    if not path.exists():
        raise UsageError(f"no bundle or model at {path}")
    if path.is_dir():
        _verified_bundle(path, trusted)
    elif trusted is not None:
        raise UsageError(f"{path} is a bare model with no signature: upload a signed bundle")


def _read_upload(path_text: str, info: Any) -> tuple[bytes, list[Any] | None]:
    """The model bytes to upload (and a head to set) for a file or a bundle directory.

    The C firmware runs the int8 backbone and the float head: a bundle sends it
    `backbone.int8.tflite` and then `head.npz`; the Python emulator runs `model.int8.tflite`.
    """
    from pathlib import Path

    path = Path(path_text)
    head = None
    if path.is_dir():
        backbone = info.firmware_version.startswith(C_FIRMWARE_PREFIX)
        if backbone:
            from firmware_bridge.emulator_model import load_head_tensors

            head = list(load_head_tensors(path)) or None
        path = path / ("backbone.int8.tflite" if backbone else "model.int8.tflite")
    if not path.is_file():
        raise UsageError(f"no model at {path}")
    return path.read_bytes(), head


def _run_upload(env: Environment, args: argparse.Namespace) -> ExitStatus:
    _check_upload(args.model, trusted_keys(env, args))
    with _connect(args) as driver:
        model, head = _read_upload(args.model, driver.info())
        if args.json or not env.interactive:
            report = driver.upload_model(model, None, args.chunk_size)
        else:
            report = _upload_with_progress(driver, model, args.chunk_size)
        if head is not None:
            driver.set_head(0, head)
    details = {
        "bytes": report.size,
        "sha256": report.sha256,
        "seconds": round(report.seconds, 3),
        "bytes_per_s": round(report.bytes_per_s, 1),
        "retransmissions": report.retransmissions,
        "head": head is not None,
    }
    env.print(
        json.dumps(details)
        if args.json
        else f"uploaded {report.size} B in {report.seconds:.2f} s "
        f"({report.bytes_per_s:.0f} B/s), sha256 {report.sha256[:16]}…, committed"
        + (", head set" if head is not None else "")
    )
    return ExitStatus.SUCCESS


def _upload_with_progress(driver: Any, model: bytes, chunk_size: int) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("upload", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task("upload", total=len(model))
        return driver.upload_model(
            model, lambda done, total: bar.update(task, completed=done), chunk_size
        )


def _run_emulate(env: Environment, args: argparse.Namespace) -> ExitStatus:
    _check_emulated_model(env, args)
    if args.qemu:
        return _run_emulate_qemu(env, args)
    import signal

    from firmware_bridge.emulator_cli import build_emulator

    service, endpoint = build_emulator(args)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # stopped like Ctrl-C: pty closed, exit 0
    env.print(
        json.dumps({"port": endpoint.path, "board": args.board}) if args.json else endpoint.path
    )
    try:
        service.serve()
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
    return ExitStatus.SUCCESS


def _check_emulated_model(env: Environment, args: argparse.Namespace) -> None:
    """A known board, a replay file that exists, and a bundle that verifies (against a trusted
    signer if one is set), before anything is emulated."""
    from pathlib import Path

    from hardware.board_profiles import get_board
    from hardware.errors import UnknownBoardError

    if args.qemu and not args.bundle:
        raise UsageError("--qemu needs --bundle (the image runs that bundle's backbone)")
    try:
        get_board(args.board)
    except UnknownBoardError as exc:
        raise UsageError(str(exc)) from exc
    if args.replay and not Path(args.replay).is_file():
        raise UsageError(f"--replay {args.replay}: no such file")
    trusted = trusted_keys(env, args)
    if args.bundle:
        _verified_bundle(args.bundle, trusted)
    elif args.model and trusted is not None:
        raise UsageError(f"{args.model} is a bare model with no signature: use a signed --bundle")


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # a terminated emulator powers QEMU off and cleans up too


def _run_emulate_qemu(env: Environment, args: argparse.Namespace) -> ExitStatus:
    import shutil
    import signal

    from firmware_bridge.qemu_cli import build_qemu_emulator

    service, endpoint = build_qemu_emulator(args)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    board = "qemu-mps2-an386"
    env.print(json.dumps({"port": endpoint.path, "board": board}) if args.json else endpoint.path)
    try:
        service.serve()
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
        shutil.rmtree(service.mcu.options.workdir, ignore_errors=True)
    return ExitStatus.SUCCESS
