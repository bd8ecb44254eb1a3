"""Secure aggregation per site on real Mosquittos: the site learns only its devices' sum.

Site A's aggregator (`iomt aggregator --role site --secure-agg`, a real process) runs the masked
round's phases with its six devices on its own broker and sends the unmasked sum upstream as its
partial sum; site B is a plain site. The devices of site A are `SecAggParticipant`s over MQTT in
the test process (the protocol's own participant, as `iomt edge --secure-agg` runs it), each
verifying the site's phase messages with the site's own key; their inputs are exactly the
updates the single aggregator decoded, so the coordinator's head must be the single
aggregator's up to the fixed-point step. A second test runs real `iomt edge --secure-agg
--site-key` processes behind a secure site for two rounds.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from aggregator.broker import LocalBroker, find_mosquitto
from aggregator.device_registry import DeviceRegistry, parse_public_key
from bench.fleet_devices import device_signing_key
from bench.fleet_round import write_setup
from bundle_format.signing import PUBLIC_KEY_FILE
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.messages import ModelUpdate
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.wire import decode_message, encode_message
from iomt.cli import main
from iomt.environment import Environment
from tests.integration.partial_sum_fleet import (
    DEVICES,
    SHAPES,
    FleetSim,
    aggregator_args,
    closed_metrics,
    head_of,
    make_head,
    round_args,
)
from tests.integration.test_integration_sites import (  # noqa: F401 (fixtures)
    SITES,
    _Keys,
    _site_args,
    _site_brokers,
    central,
    reference_head,
)
from tests.integration.test_security_secure_aggregation_mqtt import run_participant

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]

FIXED_POINT_TOLERANCE = 1e-4  # 16 fraction bits: a step of 1.5e-5 per summed value


def _decoded_update(fleet: str, device: str, base_version: int) -> ModelUpdate:
    """The update `FleetSim` sends for `device`, as the aggregator decodes it (int8 and all)."""
    index = int(device[3:])
    rng = np.random.default_rng(index)
    delta = [rng.normal(0, 0.05, s).astype(np.float32) for s in SHAPES]
    update = ModelUpdate(fleet, 1, base_version, device, 1, 10 + 3 * index, delta)
    payload = encode_message(update, codec="int8", signing_key=device_signing_key(device),
                             rng=np.random.default_rng(100 + index))  # fmt: skip
    decoded = decode_message(payload)
    assert isinstance(decoded, ModelUpdate)
    return decoded


class _MaskedDevices:
    """Site A's devices: a participant and an MQTT link each, answering phases in a thread."""

    def __init__(self, url: str, fleet: str, devices: tuple[str, ...], site_key: bytes) -> None:
        self.stop, self.errors = threading.Event(), list[str]()
        self.links, self.threads = [], []
        verify_site = aggregator_verifier(site_key)
        for device in devices:
            update = _decoded_update(fleet, device, 0)

            def encode(round_id: int, config: SecAggConfig, u: ModelUpdate = update) -> np.ndarray:
                return encode_weighted_update(u.delta, u.num_examples, config)

            participant = SecAggParticipant(fleet, device, encode, device_signing_key(device),
                                            verify_site)  # fmt: skip
            link = MqttLink(LinkConfig(url, f"sa-{device}", participant.subscriptions(),
                                       persistent_session=False)).start()  # fmt: skip
            self.links.append(link)
            work = (link, participant, self.stop, self.errors)
            self.threads.append(threading.Thread(target=run_participant, args=work, daemon=True))
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for link in self.links:
            link.stop()


def test_a_secure_site_sends_its_devices_sum_and_the_head_is_the_single_aggregators(
    central,  # noqa: F811 (a fixture of the sites' tests)
    processes,
    reference_head,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Prepare: keyed sites; A masks its round, B takes plain updates
    fleet = "securesites"
    keys = _Keys(tmp_path / "keys")
    setup = write_setup(tmp_path, DEVICES, make_head())
    brokers = _site_brokers(central, fleet)
    secure = processes.start("siteA", [
        *_site_args(brokers["siteA"], central, fleet, setup, tmp_path / "a.sqlite", "siteA"),
        *keys.site("siteA"), "--secure-agg", "--min-clients", str(len(SITES["siteA"])),
        "--secure-agg-phase-timeout", "20",
    ])  # fmt: skip
    plain = processes.start("siteB", [
        *_site_args(brokers["siteB"], central, fleet, setup, tmp_path / "b.sqlite", "siteB"),
        *keys.site("siteB"),
    ])  # fmt: skip
    for site in (secure, plain):
        site.wait_for("0 committed updates")
    masked = _MaskedDevices(brokers["siteA"].url, fleet, SITES["siteA"], keys.ack_key("siteA"))
    sim_b = FleetSim(brokers["siteB"].url, fleet, (keys.ack_key("siteB"),))
    coordinator = processes.start("coord", [
        *aggregator_args(central.url, fleet, setup, tmp_path / "c.s"), *round_args(setup),
        "--role", "coordinator", *keys.coordinator(),
    ])  # fmt: skip
    try:
        # Execute
        sim_b.send(SITES["siteB"])
        summed = secure.wait_for("secure sum of", timeout_s=90)
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        masked.close()
        sim_b.close()
        for broker in brokers.values():
            broker.stop()
    # Assert: every device in; the single aggregator's head up to the fixed-point step
    assert "secure sum of 6 devices (0 dropped)" in summed
    assert metrics["participants"] == len(DEVICES)
    assert not masked.errors
    assert not any("refused" in line for line in coordinator.output())
    head = head_of(tmp_path / "c.s")
    for got, want in zip(head, reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=FIXED_POINT_TOLERANCE, rtol=0)
    largest = max(float(np.max(np.abs(g - w))) for g, w in zip(head, reference_head, strict=True))
    print(f"largest difference from the single aggregator's head: {largest:.2e}")


@pytest.mark.tf
def test_iomt_edge_devices_run_masked_rounds_with_their_site(
    central,  # noqa: F811 (a fixture of the sites' tests)
    tiny_task,
    processes,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    # Prepare: two `iomt edge --secure-agg` processes behind site A, its own key, two rounds
    fleet, devices, rounds = "edgesites", ("ward-a", "ward-b"), 2
    keys = _Keys(tmp_path / "keys")
    registry = DeviceRegistry(tmp_path / "fleet.json")
    for device in devices:
        registry.add(device, _device_public_key(tmp_path / f"{device}.sqlite"))
    registry.save()
    site = LocalBroker(bridge_to=central.url, acl_fleet=fleet).start()
    common = ["--fleet", fleet, "--registry", str(registry.path), "--json"]
    started = [processes.start("siteA", [
        "aggregator", "--broker", site.url, *common, "--state", str(tmp_path / "a.sqlite"),
        "--role", "site", "--worker-id", "siteA", "--upstream", central.url, *keys.site("siteA"),
        "--secure-agg", "--min-clients", str(len(devices)),
    ])]  # fmt: skip
    started[0].wait_for("0 committed updates")
    coordinator = processes.start("coord", [
        "aggregator", "--broker", central.url, *common, "--state", str(tmp_path / "c.s"),
        "--bundle", str(tiny_task.bundle_path), "--rounds", str(rounds),
        "--min-clients", str(len(devices)), "--deadline", "60", "--role", "coordinator",
        *keys.coordinator(), "--metrics-out", str(tmp_path / "metrics.jsonl"),
    ])  # fmt: skip
    for index, device in enumerate(devices):
        started.append(processes.start(device, [
            "edge", "--broker", site.url, "--fleet", fleet, "--device-id", device,
            "--aggregator-key", str(keys.root / "coordinator" / PUBLIC_KEY_FILE),
            "--site-key", str(keys.root / "siteA" / PUBLIC_KEY_FILE), "--secure-agg",
            "--bundle", str(tiny_task.bundle_path), "--store", str(tmp_path / f"{device}.sqlite"),
            "--replay", str(tiny_task.data_path), "--subject", str(index), "--speed", "0",
            "--max-rounds", str(rounds), "--json",
        ]))  # fmt: skip
    try:
        # Execute
        exit_codes = [process.finish(timeout_s=180) for process in (coordinator, *started[1:])]
    finally:
        site.stop()

    # Assert: both rounds hold both devices, whose logs hold no delta in clear
    assert exit_codes == [0] * (len(devices) + 1)
    closed = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["round"], r["status"], r["participants"]) for r in closed] == [
        (1, "aggregated", 2), (2, "aggregated", 2)
    ]  # fmt: skip
    site_log = "\n".join(started[0].output())
    assert site_log.count("secure sum of 2 devices (0 dropped) sent upstream") == rounds
    for process in started[1:]:
        events = [json.loads(line).get("event") for line in process.output()
                  if line.startswith("{")]  # fmt: skip
        assert events.count("secure_round") == rounds and "update" not in events
        assert not {"bad_message", "secure_agg_skipped"} & set(events)  # verified: --site-key


def _device_public_key(store: Path) -> bytes:
    out = io.StringIO()
    assert main(["edge", "keygen", "--store", str(store)], Environment(stdout=out)) == 0
    return parse_public_key(out.getvalue())
