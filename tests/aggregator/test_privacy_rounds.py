"""Epsilon per device and per version through the round core, its state file and
`iomt aggregator status --json`; sampling and the per-device budget refuse updates."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from aggregator.core_config import AggregatorConfig
from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.privacy_ledger import PrivacyLedger, PrivacyPlan
from aggregator.round_core import AggregatorCore
from aggregator.round_events import Effect, MessageArrived, StoreClosedRound
from aggregator.round_memory import read_snapshot
from aggregator.service import apply_to_store
from aggregator.state_store import StateStore
from aggregator.strategies.dp_fedavg import DpFedAvg
from bench.synthetic_bundle import write_synthetic_bundle
from bundle_format.reader import load_bundle
from edge_runtime.head import Head
from fleet_protocol.device_sampling import is_sampled
from fleet_protocol.differential_privacy import DpConfig
from fleet_protocol.messages import (
    DeviceStatus,
    GlobalModel,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.topics import ack_topic, model_topic, round_topic, status_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message
from iomt.cli import main
from iomt.environment import Environment

FLEET = "dpf"
HEAD = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
KEY = b"k" * 32


class _Fleet:
    """A core with a privacy ledger whose effects go to a real state file."""

    def __init__(self, state: Path, config: DpConfig, max_epsilon: float | None = None,
                 head: list[np.ndarray] | None = None) -> None:  # fmt: skip
        self.head = head or HEAD
        self.store = StateStore(state)
        plan = PrivacyPlan(config, KEY, max_epsilon)
        ledger = PrivacyLedger(plan, self.store.privacy.devices(), self.store.privacy.versions())
        settings = AggregatorConfig(FLEET, 3, 2, 30.0, codec="float32")
        strategy = DpFedAvg(config, rng=np.random.default_rng(0), expected_count=None)
        self.core = AggregatorCore(settings, strategy, read_snapshot(self.store), self.head,
                                   privacy=ledger)  # fmt: skip
        self.effects: list[Effect] = []
        self.now = 0.0

    def run(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            apply_to_store(self.store, effect, self.now)
        self.effects += effects
        return effects

    def start(self) -> RoundAnnouncement:
        return _announcement(self.run(self.core.start(self.now)))

    def send(self, topic: str, payload: bytes) -> list[Effect]:
        self.now += 1.0
        return self.run(self.core.handle(MessageArrived(topic, payload), self.now))

    def online(self, *devices: str) -> None:
        for device in devices:
            self.send(status_topic(FLEET, device),
                      encode_message(DeviceStatus(FLEET, device, True, 0)))  # fmt: skip

    def update(self, device: str, round_: RoundAnnouncement) -> list[Effect]:
        delta = [np.full(w.shape, 0.01, np.float32) for w in self.head]
        update = ModelUpdate(FLEET, round_.round_id, round_.model_version, device,
                             round_.round_id, 10, delta)  # fmt: skip
        return self.send(update_topic(FLEET, device), encode_message(update, codec="float32"))


def _announcement(effects: list[Effect]) -> RoundAnnouncement:
    rounds = [e for e in effects if getattr(e, "topic", None) == round_topic(FLEET)]
    message = decode_message(rounds[-1].payload)  # type: ignore[attr-defined]
    assert isinstance(message, RoundAnnouncement)
    return message


def _acks(effects: list[Effect], device: str) -> list[UpdateAck]:
    topic = ack_topic(FLEET, device)
    acks = [decode_message(e.payload) for e in effects if getattr(e, "topic", None) == topic]  # type: ignore[attr-defined]
    return [a for a in acks if isinstance(a, UpdateAck)]


def _models(effects: list[Effect]) -> list[GlobalModel]:
    topics = {model_topic(FLEET, v) for v in range(1, 5)}
    models = [decode_message(e.payload) for e in effects
              if getattr(e, "topic", None) in topics and e.payload]  # type: ignore[attr-defined]  # fmt: skip
    return [m for m in models if isinstance(m, GlobalModel)]


def _status(state: Path, *extra: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main(["aggregator", "status", "--state", str(state), *extra],
                Environment(stdout=out, stderr=err))  # fmt: skip
    assert code == 0, err.getvalue()
    return out.getvalue()


def _status_json(state: Path) -> dict[str, object]:
    return json.loads(_status(state, "--json"))  # type: ignore[no-any-return]


def test_epsilon_per_device_is_stored_published_and_shown_by_status(tmp_path: Path) -> None:
    # Prepare
    config = DpConfig(noise_multiplier=1.0, clip_norm=0.5)
    fleet = _Fleet(tmp_path / "agg.sqlite", config)
    round_ = fleet.start()
    fleet.online("a", "b")

    # Execute: one released round with a and b
    fleet.update("a", round_)
    closing = fleet.update("b", round_)
    fleet.store.close()
    status = _status_json(tmp_path / "agg.sqlite")

    # Assert
    expected = PrivacyAccountant(config).epsilon(1)
    devices = {row["device_id"]: row for row in status["privacy"]["devices"]}  # type: ignore[index]
    assert set(devices) == {"a", "b"}
    assert devices["a"]["epsilon"] == pytest.approx(expected)
    assert devices["a"]["rounds_included"] == 1 and not devices["a"]["budget_spent"]
    [version] = status["privacy"]["versions"]  # type: ignore[index]
    assert version["version"] == 1 and version["epsilon"] == pytest.approx(expected)
    text = _status(tmp_path / "agg.sqlite")
    assert f"(epsilon, delta) = ({expected:.2f}, 1e-05)" in text
    assert f"device a                epsilon {expected:.3f}" in text
    [model] = _models(closing)
    assert model.dp_epsilon == pytest.approx(expected) and model.dp_delta == 1e-5


def test_a_device_past_max_epsilon_is_refused_and_told_why(tmp_path: Path) -> None:
    # Prepare: z = 1 spends 4.75 after one round and 7.09 after two; the budget is 6
    fleet = _Fleet(tmp_path / "agg.sqlite", DpConfig(1.0, 0.5), max_epsilon=6.0)
    first = fleet.start()
    fleet.online("a", "b")
    fleet.update("a", first)
    second = _announcement(fleet.update("b", first))

    # Execute
    refused = fleet.update("a", second)

    # Assert
    assert second.round_id == 2
    [ack] = _acks(refused, "a")
    assert not ack.accepted and ack.reason == "privacy_budget"
    assert fleet.store.privacy.devices()["a"].budget_spent


def test_with_sampling_only_drawn_devices_are_accepted_and_all_in_the_population_pay(
    tmp_path: Path,
) -> None:
    # Prepare
    config = DpConfig(1.0, 0.5, sampling_probability=0.5)
    fleet = _Fleet(tmp_path / "agg.sqlite", config)
    round_ = fleet.start()
    devices = [f"d{i}" for i in range(12)]
    fleet.online(*devices)
    assert round_.sampling_rate == 0.5 and round_.sampling_seed
    drawn = [d for d in devices
             if is_sampled(round_.sampling_seed, round_.round_id, d, 0.5)]  # fmt: skip
    left_out = [d for d in devices if d not in drawn]
    assert len(drawn) >= 2 and left_out

    # Execute
    refused = fleet.update(left_out[0], round_)
    closing: list[Effect] = []
    for device in drawn:
        closing = fleet.update(device, round_)

    # Assert
    [ack] = _acks(refused, left_out[0])
    assert ack.reason == "not_sampled"
    [closed] = [e for e in closing if isinstance(e, StoreClosedRound)]
    assert closed.metrics.participants == len(drawn)
    assert closed.metrics.dropped == 0  # devices not drawn were never expected
    rows = fleet.store.privacy.devices()
    assert set(rows) == set(devices)  # every online device could have been drawn
    amplified = PrivacyAccountant(config).epsilon(1)
    assert rows[left_out[1]].epsilon == pytest.approx(amplified)
    assert rows[left_out[1]].epsilon_sample_known == 0.0
    assert rows[drawn[0]].epsilon_sample_known > rows[drawn[0]].epsilon


def test_an_exported_bundle_carries_the_version_s_epsilon_in_its_manifest(tmp_path: Path) -> None:
    # Prepare: a signed bundle whose head the fleet trains for one released round
    bundle = write_synthetic_bundle(tmp_path / "bundle")
    head = Head.from_npz(load_bundle(bundle).verified_head_path).weights
    config = DpConfig(noise_multiplier=2.0, clip_norm=0.5)
    fleet = _Fleet(tmp_path / "agg.sqlite", config, head=head)
    round_ = fleet.start()
    fleet.online("a", "b")
    fleet.update("a", round_)
    fleet.update("b", round_)
    fleet.store.close()

    # Execute
    out, err = io.StringIO(), io.StringIO()
    code = main(["aggregator", "export", "--state", str(tmp_path / "agg.sqlite"), "--bundle",
                 str(bundle), "--out", str(tmp_path / "exported")],
                Environment(stdout=out, stderr=err))  # fmt: skip

    # Assert
    assert code == 0, err.getvalue()
    manifest = load_bundle(tmp_path / "exported").manifest
    assert manifest["federated_version"] == 1
    stamp = manifest["differential_privacy"]
    assert stamp["epsilon"] == pytest.approx(PrivacyAccountant(config).epsilon(1))
    assert stamp["delta"] == 1e-5 and stamp["rounds"] == 1
