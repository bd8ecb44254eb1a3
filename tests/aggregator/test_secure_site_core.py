"""A secure site's core: the masked round with its devices, their sum upstream as one partial sum.

The core and the protocol's own participants exchange their phase messages in memory (no
broker): what the core publishes on a broadcast topic reaches every device, an inbox message
its one device, and what devices publish goes back to the core.
"""

from __future__ import annotations

import numpy as np

from aggregator.round_events import Log
from aggregator.secure_aggregation.service_round import SecureAggOptions
from aggregator.secure_site_core import SecureSiteConfig, SecureSiteCore
from aggregator.worker_core import WorkerTrust
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.messages import GlobalModel, RoundAnnouncement
from fleet_protocol.partial_sum import decode_partial_sum
from fleet_protocol.publish import Publish
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.fixed_point import flatten
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.secure_aggregation.participant import SecAggParticipant
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes
from fleet_protocol.topics import model_topic, partial_topic, round_topic
from fleet_protocol.wire import encode_message

FLEET, SITE = "ward", "site-north"
SHAPES = [(4, 3), (3,)]
HEAD = [np.zeros(s, np.float32) for s in SHAPES]
DEVICES = ("dev1", "dev2", "dev3")
COORDINATOR, SITE_KEY = generate_signing_key(), generate_signing_key()
DEVICE_KEYS = {d: generate_signing_key() for d in DEVICES}


def _updates() -> dict[str, tuple[list[np.ndarray], int]]:
    rng = np.random.default_rng(3)
    return {d: ([rng.normal(0, 0.1, s).astype(np.float32) for s in SHAPES], 20 + 5 * i)
            for i, d in enumerate(DEVICES)}  # fmt: skip


def _core(quorum: int = 3) -> SecureSiteCore:
    coordinator = aggregator_verifier(public_key_to_bytes(COORDINATOR.public_key()))
    devices = {d: k.public_key() for d, k in DEVICE_KEYS.items()}
    trust = WorkerTrust(devices.get, coordinator, SITE_KEY)
    options = SecureAggOptions(phase_timeout_s=5.0)
    return SecureSiteCore(SecureSiteConfig(FLEET, SITE, quorum, options), trust)


def _round_and_head(deadline: float = 100.0) -> list[tuple[str, bytes]]:
    announcement = RoundAnnouncement(FLEET, 1, 0, "0" * 64, deadline, 3)
    return [(round_topic(FLEET), encode_message(announcement, signing_key=COORDINATOR)),
            (model_topic(FLEET, 0), encode_message(GlobalModel(FLEET, 0, HEAD, None, 0),
                                                   signing_key=COORDINATOR))]  # fmt: skip


def _participants(updates: dict[str, tuple[list[np.ndarray], int]]) -> list[SecAggParticipant]:
    verify_site = aggregator_verifier(public_key_to_bytes(SITE_KEY.public_key()))
    participants = []
    for device, (delta, examples) in updates.items():

        def encode(round_id: int, config: SecAggConfig, d=delta, n=examples) -> np.ndarray:  # type: ignore[no-untyped-def]
            return encode_weighted_update(d, n, config)

        participants.append(SecAggParticipant(FLEET, device, encode, DEVICE_KEYS[device],
                                              verify_site))  # fmt: skip
    return participants


def _run(core: SecureSiteCore, participants: list[SecAggParticipant],
         now: float = 1.0) -> list[Publish | Log]:  # fmt: skip
    """Deliver messages both ways until nothing moves; every effect of the core."""
    seen: list[Publish | Log] = []
    inbound = _round_and_head()
    for _ in range(20):
        effects = core.handle(inbound, now)
        seen += effects
        inbound = []
        for effect in effects:
            if not isinstance(effect, Publish) or "/sa/" not in effect.topic:
                continue
            for participant in participants:
                if effect.topic not in participant.subscriptions():
                    continue  # another device's inbox
                replies = participant.handle(effect.topic, effect.payload)
                inbound += [(m.topic, m.payload) for m in replies]
        if not inbound and not effects:
            break
    return seen


def test_the_unmasked_sum_of_the_sites_devices_goes_upstream_signed_by_the_site() -> None:
    # Prepare
    updates = _updates()

    # Execute
    effects = _run(_core(), _participants(updates))

    # Assert: one partial sum, the site's signature, Σ n·Δ / Σ n to the fixed-point step
    sent = [e for e in effects if isinstance(e, Publish) and e.topic == partial_topic(FLEET, SITE)]
    assert len(sent) == 1 and sent[0].retain
    site_public = SITE_KEY.public_key()
    partial = decode_partial_sum(sent[0].payload, verify_key={SITE: site_public}.get)
    want = sum(flatten(delta) * n for delta, n in updates.values())
    assert partial.participants == DEVICES and partial.total_weight == sum(
        n for _, n in updates.values()
    )
    total = partial.total_weight
    step_bound = len(DEVICES) * 2.0**-16 / 2 / (total / 100.0)  # the mean's fixed-point error
    np.testing.assert_allclose(partial.weighted_sum / total, want / total, atol=step_bound)
    assert any("secure sum of 3 devices" in e.line for e in effects if isinstance(e, Log))


def test_too_few_devices_by_the_deadline_send_nothing_upstream() -> None:
    # Prepare: a quorum of 3, only two devices answer
    core = _core(quorum=3)
    updates = dict(list(_updates().items())[:2])
    _run(core, _participants(updates))

    # Execute: the phase deadlines pass (the round's own, 100 - 1 s, too)
    late = core.handle([], 50.0) + core.handle([], 99.5)

    # Assert
    assert not [e for e in late if isinstance(e, Publish) and "/partial/" in e.topic]
    assert any("secure aggregation failed" in e.line for e in late if isinstance(e, Log))
    assert core.wake_at() is None


def test_a_round_not_signed_by_the_coordinator_starts_nothing() -> None:
    # Prepare
    core = _core()
    forged = RoundAnnouncement(FLEET, 1, 0, "0" * 64, 100.0, 3)
    head = GlobalModel(FLEET, 0, HEAD, None, 0)

    # Execute
    effects = core.handle([(round_topic(FLEET), encode_message(forged, signing_key=SITE_KEY)),
                           (model_topic(FLEET, 0), encode_message(head, signing_key=SITE_KEY))],
                          1.0)  # fmt: skip

    # Assert
    assert effects == [] and core.round_id is None
    assert core.counts == {"round_signature": 1, "model_signature": 1}
