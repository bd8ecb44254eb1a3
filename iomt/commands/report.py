"""`iomt report`: an encrypted patient summary for a clinician; `keygen` and `open` for them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError

HELP = "patient summary (HTML) encrypted to a clinician's key; keygen / open for the clinician"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device-store", type=Path, help="the device's SQLite sample store")
    parser.add_argument("--recipient", type=Path, help="clinician's public key (clinician.pub)")
    parser.add_argument("--out", type=Path, help="encrypted report to write (report.enc)")
    parser.add_argument(
        "--title",
        default="Patient activity and stress summary",
        help="report heading (default: %(default)s)",
    )
    parser.add_argument(
        "--patient",
        help="patient or device id printed on the report (default: the store's file name)",
    )
    parser.add_argument("--bucket", choices=("day", "hour"), help="default: by the period")
    actions = parser.add_subparsers(dest="report_action", metavar="ACTION")
    keygen = actions.add_parser("keygen", help="make the clinician's X25519 key pair")
    keygen.add_argument("--out", type=Path, required=True, help="directory for the pair")
    opener = actions.add_parser("open", help="decrypt a report with the clinician's key")
    opener.add_argument("report", type=Path, help="the encrypted report")
    opener.add_argument("--key", type=Path, required=True, help="clinician.key")
    opener.add_argument("--out", type=Path, required=True, help="HTML file to write")
    opener.add_argument("--device-key", help="refuse unless signed by this device (64 hex chars)")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from edge_runtime.errors import EdgeRuntimeError

    action = getattr(args, "report_action", None)
    handlers = {"keygen": _keygen, "open": _open, None: _build}
    try:
        return handlers[action](env, args)
    except EdgeRuntimeError as exc:
        raise UsageError(str(exc)) from exc


def _keygen(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from edge_runtime.sealed_report import PRIVATE_FILE, PUBLIC_FILE, write_clinician_keys
    from iomt.input_checks import check_key_directory

    check_key_directory("--out", args.out, (PRIVATE_FILE, PUBLIC_FILE))
    files = write_clinician_keys(args.out)
    env.print(f"private key {files.private_path} (keep it secret; opens reports)")
    env.print(f"public key  {files.public_path} (give it to patients' devices)")
    return ExitStatus.SUCCESS


def _open(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from edge_runtime.sealed_report import load_private_key, open_sealed, verify_document

    if not args.report.exists():
        raise UsageError(f"no report {args.report}")
    expected = _hex_key(args.device_key) if args.device_key else None
    opened = open_sealed(args.report.read_bytes(), load_private_key(args.key))
    signed = verify_document(opened, expected)
    args.out.write_bytes(signed.document)
    env.print(str(args.out))
    env.warn(f"iomt report: signed by device key {signed.signer_public_key.hex()}")
    return ExitStatus.SUCCESS


def _hex_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UsageError("--device-key must be 64 hex characters (`iomt edge keygen` prints it)")
    return key


def _build(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from edge_runtime.device_loop import device_directory
    from edge_runtime.fed_client import load_or_create_key
    from edge_runtime.model_privacy import privacy_sentence, read_model_privacy
    from edge_runtime.patient_report import read_report_windows, render_html, summarize
    from edge_runtime.sealed_report import load_public_key, seal, sign_document

    missing = [name for name in ("device_store", "recipient", "out") if getattr(args, name) is None]
    if missing:
        raise UsageError("missing " + ", ".join(f"--{m.replace('_', '-')}" for m in missing))
    recipient = load_public_key(args.recipient)  # before reading anything sensitive
    windows, names = read_report_windows(args.device_store)
    summary = summarize(windows, names, args.bucket)
    patient = args.patient or args.device_store.stem
    privacy = privacy_sentence(read_model_privacy(args.device_store))
    document = render_html(summary, args.title, time.time(), patient, privacy).encode()
    device_key = load_or_create_key(device_directory(args.device_store))  # its update key
    sealed = seal(sign_document(document, device_key), recipient)
    args.out.write_bytes(sealed)  # the HTML exists only in memory here
    env.print(str(args.out))
    return ExitStatus.SUCCESS
