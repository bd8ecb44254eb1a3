"""Per-site aggregation on real Mosquittos: a central broker, two site brokers bridged to it.

Each site runs its own Mosquitto (`LocalBroker(bridge_to=...)`, the config `iomt broker
--bridge` writes), whose bridge brings the coordinator's round and models down; a site
aggregator (`iomt aggregator --role site --upstream CENTRAL`) validates, commits and acks its
devices' updates there and sends its signed partial sum to the central broker, where the
coordinator adds the sites' sums. Devices are one paho client per site speaking for six
devices each (the real signed wire format, checked against a registry), as in the workers' test.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aggregator.broker import LocalBroker, find_mosquitto
from aggregator.device_registry import DeviceRegistry
from bench.fleet_round import write_setup
from bundle_format.signing import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    load_public_key_bytes,
    write_key_pair,
)
from tests.integration.partial_sum_fleet import (
    DEVICES,
    FleetSim,
    aggregator_args,
    assert_same_head,
    closed_metrics,
    make_head,
    round_args,
    single_aggregator_head,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]

SITES = {"siteA": DEVICES[:6], "siteB": DEVICES[6:]}


@pytest.fixture(scope="module")
def central() -> Iterator[LocalBroker]:
    with LocalBroker() as running:
        yield running


@pytest.fixture(scope="module")
def reference_head(central, process_group_class, tmp_path_factory) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The head one `--role single` aggregator makes of the twelve updates."""
    root = tmp_path_factory.mktemp("single")
    return single_aggregator_head(process_group_class, root, central.url, central.url, "one")


def _site_brokers(central: LocalBroker, fleet: str) -> dict[str, LocalBroker]:
    return {name: LocalBroker(bridge_to=central.url, acl_fleet=fleet).start() for name in SITES}


def _site_args(broker: LocalBroker, central: LocalBroker, fleet: str, setup: Any,
               state: Path, site: str) -> list[str]:  # fmt: skip
    return [*aggregator_args(broker.url, fleet, setup, state), "--role", "site",
            "--worker-id", site, "--upstream", central.url]  # fmt: skip


class _Keys:
    """A key pair per site and the coordinator's (`iomt keys`), the sites' public keys in a
    `--partial-signers` registry (`iomt fleet add`); `used` says which pair a site runs with."""

    def __init__(self, root: Path, used: dict[str, str] | None = None) -> None:
        self.root, self.used = root, {site: site for site in SITES} | (used or {})
        for name in ("coordinator", *SITES, *self.used.values()):
            if not (root / name).exists():
                write_key_pair(root / name)
        self.registry = root / "signers.json"
        registry = DeviceRegistry(self.registry)
        for site in SITES:
            registry.add(site, load_public_key_bytes(root / site / PUBLIC_KEY_FILE))
        registry.save()

    def site(self, site: str) -> list[str]:
        own = self.root / self.used[site] / PRIVATE_KEY_FILE
        return ["--worker-key", str(own),
                "--aggregator-key", str(self.root / "coordinator" / PUBLIC_KEY_FILE)]  # fmt: skip

    def coordinator(self) -> list[str]:
        return ["--model-signing-key", str(self.root / "coordinator" / PRIVATE_KEY_FILE),
                "--partial-signers", str(self.registry)]  # fmt: skip

    def ack_key(self, site: str) -> bytes:
        return load_public_key_bytes(self.root / self.used[site] / PUBLIC_KEY_FILE)


def _updates_in(state: Path) -> set[str]:
    with sqlite3.connect(state) as db:
        return {row[0] for row in db.execute("SELECT device_id FROM worker_update")}


class _Sites:
    """Site brokers, site aggregators and the per-site device clients of one test."""

    def __init__(self, central: LocalBroker, processes: Any, fleet: str, root: Path,
                 keys: _Keys | None = None) -> None:  # fmt: skip
        self.central, self.processes, self.fleet, self.root = central, processes, fleet, root
        self.keys = keys
        self.setup = write_setup(root, DEVICES, make_head())
        self.brokers = _site_brokers(central, fleet)
        self.aggregators = {site: self.start_site(site) for site in SITES}
        for aggregator in self.aggregators.values():  # subscribed before any device sends
            aggregator.wait_for("0 committed updates")
        self.sims = {site: FleetSim(self.brokers[site].url, fleet,
                                       (keys.ack_key(site),) if keys else ())
                     for site in SITES}  # fmt: skip

    def start_site(self, site: str, name: str | None = None) -> Any:
        args = _site_args(self.brokers[site], self.central, self.fleet, self.setup,
                          self.root / f"{site}.sqlite", site)  # fmt: skip
        return self.processes.start(name or site, args + (self.keys.site(site) if self.keys
                                                          else []))  # fmt: skip

    def start_coordinator(self) -> Any:
        return self.processes.start("coord", [
            *aggregator_args(self.central.url, self.fleet, self.setup, self.root / "c.s"),
            *round_args(self.setup), "--role", "coordinator",
            *(self.keys.coordinator() if self.keys else []),
        ])  # fmt: skip

    def close(self) -> None:
        for sim in self.sims.values():
            sim.close()
        for broker in self.brokers.values():
            broker.stop()


def test_two_sites_give_the_single_aggregators_head(
    central, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare
    sites = _Sites(central, processes, "sites", tmp_path)
    coordinator = sites.start_coordinator()
    try:
        # Execute: each site's devices send to their own broker only
        for site, devices in SITES.items():
            sites.sims[site].send(devices)
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sites.close()
    # Assert: the same head to 1e-6; each site holds exactly its own devices
    assert_same_head(tmp_path / "c.s", reference_head)
    assert metrics["participants"] == len(DEVICES)
    for site, devices in SITES.items():
        assert _updates_in(tmp_path / f"{site}.sqlite") == set(devices)


def test_kill_9_of_a_site_aggregator_mid_round_loses_no_acknowledged_update(
    central, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare: half of site A's devices acked, then site A's aggregator dies by SIGKILL
    sites = _Sites(central, processes, "sitekill", tmp_path)
    coordinator = sites.start_coordinator()
    first, rest = SITES["siteA"][:3], SITES["siteA"][3:]
    try:
        sites.sims["siteA"].send(first)
        site_a = sites.aggregators["siteA"]
        site_a.popen.send_signal(signal.SIGKILL)
        assert site_a.finish() == -signal.SIGKILL
        # Execute: the rest of site A arrives while it is down; it restarts from its file
        sites.sims["siteA"].send(rest, wait=False)
        restarted = sites.start_site("siteA", "siteA-2")
        restarted.wait_for("3 committed updates in its file")
        sites.sims["siteA"].wait_acked(SITES["siteA"])
        sites.sims["siteB"].send(SITES["siteB"])
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sites.close()
    # Assert: every acked update is in the head, which is the single aggregator's
    assert set(first) <= _updates_in(tmp_path / "siteA.sqlite")
    assert metrics["participants"] == len(DEVICES)
    assert_same_head(tmp_path / "c.s", reference_head)


def test_sites_with_keys_of_their_own_give_the_same_head_and_hold_no_coordinator_secret(
    central, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare: each site signs with its own key; the coordinator checks them in its registry
    keys = _Keys(tmp_path / "keys")
    sites = _Sites(central, processes, "sitekeys", tmp_path, keys)
    coordinator = sites.start_coordinator()
    try:
        # Execute
        for site, devices in SITES.items():
            sites.sims[site].send(devices)  # acks counted only if the site's key signed them
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sites.close()
    # Assert: the single aggregator's head; no site process was given the coordinator's secret
    assert_same_head(tmp_path / "c.s", reference_head)
    assert metrics["participants"] == len(DEVICES)
    assert all(sim.forged_acks == 0 for sim in sites.sims.values())
    assert not any("refused" in line for line in coordinator.output())
    for aggregator in sites.aggregators.values():
        assert str(keys.root / "coordinator" / PRIVATE_KEY_FILE) not in aggregator.popen.args


def test_a_partial_sum_signed_by_an_unregistered_key_is_refused_with_one_line(
    central, processes, tmp_path: Path
) -> None:
    # Prepare: site B runs with a key the coordinator's registry does not have for it
    keys = _Keys(tmp_path / "keys", used={"siteB": "mallory"})
    sites = _Sites(central, processes, "sitebadkey", tmp_path, keys)
    coordinator = sites.processes.start("coord", [
        *aggregator_args(central.url, "sitebadkey", sites.setup, tmp_path / "c.s"),
        "--bundle", str(sites.setup.bundle), "--rounds", "1", "--min-clients", "6",
        "--deadline", "120", "--codec", "int8", "--role", "coordinator", *keys.coordinator(),
    ])  # fmt: skip
    try:
        # Execute: site B's devices first (its growing sum is sent again and again), then A's
        sites.sims["siteB"].send(SITES["siteB"])
        refusal = coordinator.wait_for("partial sum on partial/siteB refused")
        sites.sims["siteA"].send(SITES["siteA"])
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sites.close()
    # Assert: one line, naming the reason; the round holds site A's devices only
    assert "(signature)" in refusal and "does not verify" in refusal
    assert sum("refused" in line for line in coordinator.output()) == 1
    assert metrics["participants"] == len(SITES["siteA"])
