"""Shared fixtures: isolated user directories for every test, and a real Mosquitto.

Every test runs with its own config and cache directories (keys, cached bundles).

Set in the environment, so the `iomt` processes a test starts inherit them too: no test reads
or writes the user's `~/.config/iomt` or `~/.cache/iomt`.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.broker import LocalBroker, find_mosquitto

# A shell without job control starts a background job (`make test &`, `nohup ...&`) with Ctrl-C
# ignored, and every process it starts inherits that: the tests that stop an `iomt` process with
# SIGINT, as a user's Ctrl-C would, then wait forever. Catch it here, so children start with the
# default (a caught signal is reset on exec; an ignored one is not).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_user_directories(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("IOMT_CONFIG_DIR", str(Path(home) / "config"))
    monkeypatch.setenv("IOMT_CACHE_DIR", str(Path(home) / "cache"))


def _running_mosquitto() -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with LocalBroker() as running:
        yield running


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[LocalBroker]:
    """A real Mosquitto on a free loopback port for the whole session."""
    yield from _running_mosquitto()


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    """A real Mosquitto for one test module (no retained messages leak between modules)."""
    yield from _running_mosquitto()
