"""Epsilon per device and per model version, the per-round sampling seed and the budget.

Individual accounting: a released round costs a device privacy only if the device could be in
it. Without sampling (rate 1) that is a round its update is in; with Poisson sampling (rate q <
1) it is every released round in which the device was in the population (online or sending),
drawn or not, and each costs the amplified sub-sampled Gaussian. Two figures per device:

- `epsilon`: against whoever sees only published models (clinicians, downloads of a bundle).
  With q < 1 they do not know who was drawn, so the amplification holds.
- `epsilon_sample_known`: against whoever can read the round announcements (another device, the
  broker). The seed tells them who was drawn, so only the rounds the device was in count, each
  at the full Gaussian cost.

`--max-epsilon` bounds `epsilon`: a device is refused (`privacy_budget`) once one more round
would take it past the bound, and from then on it no longer counts as in the population. A
model version's epsilon is the largest epsilon of any device after the round that made it.
Pure: the caller gives the secret sampling key and stores what `close_round` returns.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace

from aggregator.privacy_accountant import PrivacyAccountant
from fleet_protocol.device_sampling import NOT_SAMPLED, is_sampled
from fleet_protocol.differential_privacy import PRIVACY_BUDGET, DpConfig
from fleet_protocol.messages import RoundAnnouncement


@dataclass(frozen=True)
class DevicePrivacy:
    """One device's privacy spent so far (epsilons at the configured delta)."""

    device_id: str
    rounds_in_population: int  # released rounds it could have been drawn in
    rounds_included: int  # released rounds its update is in
    epsilon: float
    epsilon_sample_known: float
    budget_spent: bool = False


@dataclass(frozen=True)
class VersionPrivacy:
    """The (epsilon, delta) a published head was trained with, over how many DP rounds."""

    version: int
    epsilon: float
    delta: float
    rounds: int


@dataclass(frozen=True)
class PrivacyPlan:
    """How privacy is spent: the DP config, the budget and the secret for the sampling seeds."""

    config: DpConfig
    sampling_key: bytes
    max_epsilon: float | None = None


class PrivacyLedger:
    """Per-device and per-version epsilon; decides who may send in a round."""

    def __init__(
        self,
        plan: PrivacyPlan,
        devices: dict[str, DevicePrivacy] | None = None,
        versions: dict[int, VersionPrivacy] | None = None,
    ) -> None:
        self.plan = plan
        self.devices = dict(devices or {})
        self.versions = dict(versions or {})
        self._sampled = PrivacyAccountant(plan.config)
        self._known = PrivacyAccountant(replace(plan.config, sampling_probability=1.0))
        self._cache: dict[tuple[bool, int], float] = {}

    @property
    def sampling_rate(self) -> float:
        return self.plan.config.sampling_probability

    def sampling_seed(self, fleet: str, round_id: int) -> str:
        """The round's seed: unpredictable before it is announced, the same after a restart."""
        message = f"{fleet}/{round_id}".encode()
        return hmac.new(self.plan.sampling_key, message, hashlib.sha256).hexdigest()[:32]

    def sampled_announcement(self, announcement: RoundAnnouncement) -> RoundAnnouncement:
        """The announcement with the rate and seed that decide who takes part (rate < 1)."""
        if self.sampling_rate >= 1:
            return announcement
        seed = self.sampling_seed(announcement.fleet, announcement.round_id)
        return replace(announcement, sampling_rate=self.sampling_rate, sampling_seed=seed)

    def may_send(self, fleet: str, round_id: int, devices: set[str]) -> set[str]:
        """Those of `devices` that are drawn this round and have budget left."""
        seed = self.sampling_seed(fleet, round_id)
        return {d for d in devices if is_sampled(seed, round_id, d, self.sampling_rate)
                and not (d in self.devices and self.devices[d].budget_spent)}  # fmt: skip

    def refusal(self, fleet: str, round_id: int, device_id: str) -> str | None:
        """Why this device may not send in this round (None: it may)."""
        seed = self.sampling_seed(fleet, round_id)
        if not is_sampled(seed, round_id, device_id, self.sampling_rate):
            return NOT_SAMPLED
        row = self.devices.get(device_id)
        if row is not None and row.budget_spent:
            return PRIVACY_BUDGET
        after = self._advance(row, device_id, included=True)
        budget = self.plan.max_epsilon
        return PRIVACY_BUDGET if budget is not None and after.epsilon > budget else None

    def close_round(
        self, population: set[str], included: set[str], version: int | None
    ) -> tuple[list[DevicePrivacy], VersionPrivacy | None]:
        """Charge a released round (version not None) to the devices that could be in it."""
        if version is None:
            return [], None
        charged = included if self.sampling_rate >= 1 else population | included
        rows = []
        for device_id in sorted(charged):
            row = self.devices.get(device_id)
            if row is not None and row.budget_spent and device_id not in included:
                continue  # refused and silent: out of the population
            rows.append(self._advance(row, device_id, device_id in included))
        rows = [self._mark_spent(row) for row in rows]
        self.devices.update({row.device_id: row for row in rows})
        spent = max((r.epsilon for r in self.devices.values()), default=0.0)
        rounds = max((r.rounds_in_population for r in self.devices.values()), default=0)
        stamp = VersionPrivacy(version, spent, self.plan.config.delta, rounds)
        self.versions[version] = stamp
        return rows, stamp

    def _advance(self, row: DevicePrivacy | None, device_id: str, included: bool) -> DevicePrivacy:
        population = (row.rounds_in_population if row else 0) + 1
        rounds_in = (row.rounds_included if row else 0) + int(included)
        sampled = self.sampling_rate < 1
        epsilon = self._epsilon(sampled, population if sampled else rounds_in)
        return DevicePrivacy(device_id, population, rounds_in, epsilon,
                             self._epsilon(False, rounds_in))  # fmt: skip

    def _mark_spent(self, row: DevicePrivacy) -> DevicePrivacy:
        """Spent when one more round would take the device past the budget."""
        budget = self.plan.max_epsilon
        if budget is None:
            return row
        sampled = self.sampling_rate < 1
        next_rounds = (row.rounds_in_population if sampled else row.rounds_included) + 1
        return replace(row, budget_spent=self._epsilon(sampled, next_rounds) > budget)

    def _epsilon(self, sampled: bool, rounds: int) -> float:
        key = (sampled, rounds)
        if key not in self._cache:
            accountant = self._sampled if sampled else self._known
            self._cache[key] = accountant.epsilon(rounds)
        return self._cache[key]
