"""Sites under a TLS central broker, on real Mosquittos: the central broker runs with client
certificates and the generated ACL (`iomt broker --tls`); each site's own broker is plain and
bridged up with a client certificate (`iomt broker --bridge mqtts://... --bridge-tls DIR
--bridge-identity NAME`); each site aggregator sends its partial sum up over TLS as
`aggregator.SITE` (`iomt certs aggregator SITE`). Devices are one paho client per site, as in
the plain sites' test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aggregator.broker import LocalBroker, find_mosquitto
from aggregator.broker_bridge import BridgeTls
from aggregator.certs import CertDirectory, init_directory, issue_client, member_identity
from bench.fleet_round import write_setup
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

FLEET = "tls-sites"
SITES = {"siteA": DEVICES[:6], "siteB": DEVICES[6:]}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertDirectory:
    directory = init_directory(tmp_path_factory.mktemp("certs"))
    for site in SITES:
        issue_client(directory, member_identity(site))  # the site aggregator's upstream link
        issue_client(directory, f"{site}-bridge")  # its broker's bridge: a device certificate
    return directory


@pytest.fixture(scope="module")
def reference_head(process_group_class, tmp_path_factory) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The head one `--role single` aggregator on a plain broker makes of the twelve updates."""
    root = tmp_path_factory.mktemp("single")
    with LocalBroker() as plain:
        return single_aggregator_head(process_group_class, root, plain.url, plain.url, "one")


def _bridged(central: LocalBroker, certs: CertDirectory, site: str) -> LocalBroker:
    name = f"{site}-bridge"
    tls = BridgeTls(certs.ca_cert, certs.client_cert(name), certs.client_key(name))
    return LocalBroker(bridge_to=central.url, acl_fleet=FLEET, bridge_tls=tls).start()


@pytest.fixture
def central(certs: CertDirectory) -> Iterator[LocalBroker]:
    with LocalBroker(tls_dir=certs.root, acl_fleet=FLEET) as running:
        yield running


def test_sites_under_a_tls_central_broker_give_the_single_aggregators_head(
    central, certs, processes, reference_head, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Prepare: the coordinator on the TLS central broker, a bridged plain broker per site
    setup = write_setup(tmp_path, DEVICES, make_head())
    tls = ["--tls", str(certs.root)]
    brokers = {site: _bridged(central, certs, site) for site in SITES}
    sims: dict[str, FleetSim] = {}
    try:
        aggregators = [processes.start(site, [
            *aggregator_args(brokers[site].url, FLEET, setup, tmp_path / f"{site}.sqlite"),
            "--role", "site", "--worker-id", site, "--upstream", central.url, *tls,
        ]) for site in SITES]  # fmt: skip
        for aggregator in aggregators:
            aggregator.wait_for("0 committed updates")
        coordinator = processes.start("coord", [
            *aggregator_args(central.url, FLEET, setup, tmp_path / "c.s"), *round_args(setup),
            "--role", "coordinator", *tls,
        ])  # fmt: skip
        sims = {site: FleetSim(brokers[site].url, FLEET) for site in SITES}

        # Execute: each site's devices send to their own broker; the round came down the bridge
        for site, devices in SITES.items():
            sims[site].send(devices)
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        for sim in sims.values():
            sim.close()
        for broker in brokers.values():
            broker.stop()

    # Assert: both sites' sums crossed into the TLS broker as their own identities
    assert metrics["participants"] == len(DEVICES)
    assert_same_head(tmp_path / "c.s", reference_head)
