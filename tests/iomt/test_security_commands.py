"""`iomt certs` and `iomt report` argument handling, in process."""

from __future__ import annotations

import io
from pathlib import Path

from iomt.cli import main
from iomt.environment import Environment


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Environment(stdout=out, stderr=err, interactive=False))
    return code, out.getvalue(), err.getvalue()


def test_certs_init_then_devices(tmp_path: Path) -> None:
    assert _run("certs", "init", "--out", str(tmp_path / "c"))[0] == 0
    code, out, _ = _run("certs", "device", "watch-01", "watch-02", "--out", str(tmp_path / "c"))
    assert code == 0 and len(out.splitlines()) == 2
    assert (tmp_path / "c" / "clients" / "watch-02.key").exists()
    code, out, err = _run("certs", "revoke", "watch-02", "--out", str(tmp_path / "c"))
    assert code == 0 and out.strip().endswith("ca.crl") and "restart the broker" in err


def test_certs_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = _run("certs", "device", "watch-01", "--out", str(tmp_path / "none"))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "iomt certs init" in err
    _run("certs", "init", "--out", str(tmp_path / "c"))
    code, _, err = _run("certs", "device", "bad/id", "--out", str(tmp_path / "c"))
    assert code != 0 and len(err.strip().splitlines()) == 1
    code, _, err = _run("certs", "init", "--out", str(tmp_path / "c"))
    assert code != 0 and "refusing" in err


def test_report_needs_its_three_options(tmp_path: Path) -> None:
    code, _, err = _run("report", "--out", str(tmp_path / "r.enc"))
    assert code != 0 and "--device-store" in err and "--recipient" in err


def test_edge_tls_needs_existing_files(tmp_path: Path) -> None:
    code, _, err = _run("edge", "--broker", "mqtts://127.0.0.1:1", "--fleet", "f",
                        "--device-id", "d", "--bundle", str(tmp_path), "--store",
                        str(tmp_path / "s.sqlite"), "--tls", str(tmp_path / "nocerts"))  # fmt: skip
    assert code != 0 and "missing TLS file" in err
